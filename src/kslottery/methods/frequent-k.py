"""A control: as many embedding rows as the ticket, the most frequent tokens of the training inputs
(prompt, source and target); fewer if fewer occur."""

from kslottery.config.registry import Method


def frequent_rows(ticket_rows: list[int], vocab_size: int, seed: int, tokens) -> list[int]:
    """The k = len(ticket_rows) most frequent input tokens (ties: the smaller id first)."""
    return tokens.most_frequent(len(ticket_rows)).tolist()


METHOD = Method("frequent-k", section="ticket", surgery="prepare_tokens", saved_as="adapter", rows=frequent_rows)
