"""A control: as many embedding rows as the ticket, drawn at random among the tokens of the training
inputs (the rows embedding tuning moves at all); fewer if fewer distinct tokens occur."""

import numpy as np

from kslottery.config.registry import Method


def random_seen_rows(ticket_rows: list[int], vocab_size: int, seed: int, tokens) -> list[int]:
    """min(k, seen) distinct rows drawn uniformly among tokens.seen(), seeded; sorted."""
    k, seen = len(ticket_rows), tokens.seen()
    if k <= 0:
        raise ValueError(f"k={k} must be positive")
    return sorted(np.random.default_rng(seed).choice(seen, size=min(k, len(seen)), replace=False).tolist())


METHOD = Method("random-seen-k", section="ticket", surgery="prepare_tokens", saved_as="adapter",
                rows=random_seen_rows)
