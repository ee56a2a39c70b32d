"""The KS-Lottery winning tickets (step 3 of the paper): only the embedding rows whose KS shift was
significant train, from the base model (peft TrainableTokens)."""

from kslottery.config.registry import Method


def ticket_rows(ticket_rows: list[int], vocab_size: int, seed: int, tokens) -> list[int]:
    """The tickets themselves."""
    return list(ticket_rows)


METHOD = Method("ticket", section="ticket", surgery="prepare_tokens", saved_as="adapter", rows=ticket_rows)
