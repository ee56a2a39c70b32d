"""A control for the stopping share of a gain: only the rows a translation ends with, the end of
text and the newline, however many (two on the default model); trained with the ticket's settings.
What it recovers is what learning to stop alone is worth (docs/experiments.md)."""

from kslottery.config.registry import Method


def stop_rows(ticket_rows: list[int], vocab_size: int, seed: int, tokens) -> list[int]:
    """The tokenizer's end-of-text and newline ids (k is not used)."""
    if not tokens.stops:
        raise ValueError("no stop rows: the tokenizer names no end-of-text token and no single newline token "
                         "(or the training tokens were not built with TrainingTokens.of); leave stop-tokens out of "
                         "dvc.yaml's ticket-finetune and evaluate matrices for this model")
    return sorted(tokens.stops)


METHOD = Method("stop-tokens", section="ticket", surgery="prepare_tokens", saved_as="adapter", rows=stop_rows)
