"""A control: as many embedding rows as the ticket, drawn at random from the whole
vocabulary, trained with the ticket's settings."""

import numpy as np

from kslottery.config.registry import Method


def random_rows(ticket_rows: list[int], vocab_size: int, seed: int, tokens=None) -> list[int]:
    """k = len(ticket_rows) distinct rows drawn uniformly from the vocabulary, seeded; sorted."""
    k = len(ticket_rows)
    if not 0 < k <= vocab_size:
        raise ValueError(f"k={k} must be in [1, {vocab_size}] (the vocabulary size)")
    return sorted(np.random.default_rng(seed).choice(vocab_size, size=k, replace=False).tolist())


METHOD = Method("random-k", section="ticket", surgery="prepare_tokens", saved_as="adapter", rows=random_rows)
