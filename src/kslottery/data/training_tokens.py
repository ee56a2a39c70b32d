"""What the token methods' row rules and the ticket classes read of the training data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrainingTokens:
    """The token ids of every training input as the model sees it (prompt, source and target) and of
    every prompt alone."""

    inputs: list[list[int]]
    prompts: list[list[int]]
    stops: tuple[int, ...] = ()
    """The ids a translation ends with: the tokenizer's end of text (which ends every training
    target) and its newline (which ends the first line, the first-line protocol's cut); empty
    when the tokenizer has neither."""

    @classmethod
    def of(cls, examples, tokenizer) -> TrainingTokens:
        """The tokens of encoded training examples (data.prompts.Example), with the tokenizer's stops."""
        stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        newline = newline_id(tokenizer)
        return cls(inputs=[e.input_ids for e in examples], prompts=[e.prompt_ids for e in examples],
                   stops=tuple(dict.fromkeys(stops + ([newline] if newline is not None else []))))

    def counts(self) -> dict[int, int]:
        """How often each token id occurs in the training inputs."""
        counts: dict[int, int] = {}
        for ids in self.inputs:
            for token in ids:
                counts[token] = counts.get(token, 0) + 1
        return counts

    def most_frequent(self, k: int) -> np.ndarray:
        """The k most frequent token ids of the inputs (ties broken by the smaller id); fewer if fewer occur."""
        if k <= 0:
            raise ValueError(f"k={k} must be positive")
        ranked = sorted(self.counts().items(), key=lambda item: (-item[1], item[0]))
        return np.array([token for token, _ in ranked[:k]], dtype=np.int64)

    def seen(self) -> np.ndarray:
        """The distinct token ids of the training inputs, sorted: the rows embedding tuning moves."""
        return np.unique(np.concatenate([np.asarray(ids, dtype=np.int64) for ids in self.inputs]))

    def template(self) -> np.ndarray:
        """The token ids that occur in every prompt, sorted: the template's own tokens (its words, the
        language names, special tokens), however each source is tokenized."""
        common = set(self.prompts[0]).intersection(*map(set, self.prompts[1:]))
        return np.array(sorted(common), dtype=np.int64)


def newline_id(tokenizer) -> int | None:
    r"""The id of a newline that ends a line of text: what "a\n" adds to "a" when that is one token
    (a SentencePiece tokenizer's "\n" alone would bring its word-start piece along; a tokenizer
    that merges the newline with the text before it has no such id: None)."""
    line = tokenizer("a", add_special_tokens=False)["input_ids"]
    ended = tokenizer("a\n", add_special_tokens=False)["input_ids"]
    added = ended[len(line):] if ended[:len(line)] == line else []
    return added[0] if len(added) == 1 else None
