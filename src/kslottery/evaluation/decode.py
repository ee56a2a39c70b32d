"""Translate sentences with the evaluate settings, and score them: the one decode-and-score.

The evaluate stage (the test split), certify (the embedding with only its ticket rows), the dev
score after every training epoch and `ksl translate` all decode through `decode`, so that a change
of prompt or decoding settings reaches every one of them alike.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kslottery.atomic import write_text
from kslottery.data.corpus import SentencePair
from kslottery.config.params import EvalParams
from kslottery.data.prompts import format_prompt
from kslottery.evaluation.scoring import first_line, score_protocols, whole
from kslottery.evaluation.translate import translate


def decode(model, tokenizer, sources: list[str], pair: str, template: str, settings: EvalParams,
           desc: str = "translate") -> list[str]:
    """One continuation per source sentence (until eos or max_new_tokens): the prompt filled for
    `pair`, decoded as `settings` say. scoring.PROTOCOLS say which part of it is the translation."""
    prompts = [format_prompt(template, pair, source) for source in sources]
    return translate(model, tokenizer, prompts, settings.batch_size, settings.max_new_tokens, desc=desc,
                     num_beams=settings.num_beams)


def decode_and_score(model, tokenizer, pairs: list[SentencePair], pair: str, template: str, settings: EvalParams,
                     desc: str = "translate") -> tuple[list[str], dict]:
    """(continuations, scores) of the sentence pairs: BLEU, chrF++, spBLEU where its model is on
    disk, under every scoring protocol (scoring.score_protocols)."""
    continuations = decode(model, tokenizer, [p.source for p in pairs], pair, template, settings, desc)
    return continuations, score_protocols(continuations, [p.target for p in pairs], settings.spbleu_tokenizer)


def dev_scorer(tokenizer, dev_pairs: list[SentencePair], pair: str, template: str, settings: EvalParams,
               desc: str) -> Callable[[object], dict]:
    """model -> {chrf++, bleu} on the dev pairs, decoded as the evaluate stage decodes the test set
    (the training loop calls it after every epoch)."""
    def evaluate(model) -> dict:
        scores = decode_and_score(model, tokenizer, dev_pairs, pair, template, settings, desc)[1]
        return {"chrf++": scores["chrf++"], "bleu": scores["bleu"]}

    return evaluate


def write_translations(path: str | Path, pairs: list[SentencePair], continuations: list[str]) -> None:
    """TSV of source, reference, hypothesis (the continuation's first line) and continuation (all of
    it, newlines as spaces); tabs and newlines inside a field become spaces."""
    def clean(text: str) -> str:
        return " ".join(text.replace("\t", " ").splitlines())

    rows = "".join(f"{clean(p.source)}\t{clean(p.target)}\t{clean(first_line(c))}\t{clean(whole(c))}\n"
                   for p, c in zip(pairs, continuations))
    write_text(path, "source\treference\thypothesis\tcontinuation\n" + rows)
