"""A control, prompt-tuning-like: the rows of the prompt template's own tokens (those in every
training prompt), however many; trained with the ticket's settings."""

from kslottery.config.registry import Method


def template_rows(ticket_rows: list[int], vocab_size: int, seed: int, tokens) -> list[int]:
    """The tokens of every training prompt (k is not used)."""
    template = tokens.template().tolist()
    if not template:
        raise ValueError("no token occurs in every training prompt, so the template-tokens control has no "
                         "rows: give `prompt.template` fixed words around {source}, or leave this control out")
    return template


METHOD = Method("template-tokens", section="ticket", surgery="prepare_tokens", saved_as="adapter",
                rows=template_rows)
