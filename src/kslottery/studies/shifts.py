"""Which rows embedding tuning moves, by how often their token occurs in training: the view that
explains which tokens become KS tickets.

A token in every training input gets a gradient at every step; a token in one input gets one
gradient, at one step. `shift_by_frequency` groups the vocabulary rows by the number of training
inputs their token occurs in (at a position that feeds a prediction: not as the input's last token)
and gives, per group, the rows that moved, the tickets among them, the median KS statistic D and
the median size of the change relative to the row's own spread (mean |after - before| /
std(before)). `ksl shifts` writes it for a pipeline run, with that run's tickets (`run_shifts`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kslottery.data.corpus import read_pairs
from kslottery.data.prompts import encode_pairs
from kslottery.lottery.ks import ks_2samp_rows
from kslottery.lottery.tickets import read_tickets_file, ticket_rows
from kslottery.model.saved import embedding_rows

BUCKETS = ((0, 0), (1, 1), (2, 3), (4, 10), (11, 30), (31, 100), (101, 300), (301, None))
"""Groups of "training inputs the token occurs in", as (lowest, highest); None: no upper bound."""


def input_counts(inputs: list[list[int]], vocab_size: int) -> np.ndarray:
    """For every row, the number of training inputs that hold its token before their last position
    (the last token's row feeds no prediction, so it gets no gradient from there)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for ids in inputs:
        counts[np.unique(np.asarray(ids[:-1], dtype=np.int64))] += 1
    return counts


def relative_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per row: mean |after - before| over the row's std before tuning (0 for a constant row)."""
    spread = before.std(axis=1)
    change = np.abs(after - before).mean(axis=1)
    return np.divide(change, spread, out=np.zeros_like(change), where=spread > 0)


def shift_by_frequency(before: np.ndarray, after: np.ndarray, statistic: np.ndarray, ticket_ids,
                       counts: np.ndarray) -> pd.DataFrame:
    """One line per BUCKETS group that holds any row: how many rows, moved rows and tickets, the share
    of moved rows that are tickets, and the medians of D and of relative_change over the moved rows.
    before, after: (V, d); statistic and counts: per row; ticket_ids: the rows that are tickets."""
    moved = np.any(after != before, axis=1)
    ticket = np.zeros(len(moved), dtype=bool)
    ticket[np.asarray(ticket_ids, dtype=np.int64)] = True
    change = relative_change(before, after)
    lines = []
    for low, high in BUCKETS:
        group = (counts >= low) & (counts <= (counts.max() if high is None else high))
        if not group.any():
            continue
        group_moved = group & moved
        lines.append({
            "inputs with the token": f"{low}" if low == high else f"{low}+" if high is None else f"{low}-{high}",
            "rows": int(group.sum()),
            "moved": int(group_moved.sum()),
            "tickets": int((group & ticket).sum()),
            "% of moved that are tickets": round(100 * (group & ticket).sum() / group_moved.sum(), 1)
            if group_moved.any() else None,
            "median D (moved)": round(float(np.median(statistic[group_moved])), 4) if group_moved.any() else None,
            "median change / std (moved)": round(float(np.median(change[group_moved])), 4)
            if group_moved.any() else None,
        })
    return pd.DataFrame(lines)


def shifts_markdown(frame: pd.DataFrame, pair: str, seed: int, n_inputs: int, alpha: float, n_tickets: int) -> str:
    """shift_by_frequency's table as markdown, under a heading that says what it was computed from."""
    return (f"### {pair}, seed {seed}: rows moved by embedding tuning, by how many of the {n_inputs:,} training "
            f"inputs hold the token\n\nThe run's tuned embedding and its {n_tickets:,} tickets (alpha {alpha:g}). "
            "`change / std`: the mean absolute change (after - before) over the row's std before tuning.\n\n"
            + frame.to_markdown(index=False) + "\n")


def run_shifts(base: Path, embed: Path, tickets: Path, train: Path, pair: str, seed: int, template: str,
               max_length: int) -> tuple[pd.DataFrame, str]:
    """shift_by_frequency for one pipeline run, and its markdown: from the base model, the run's tuned
    embedding (`embed`), its tickets.json and the training split it was tuned on, encoded as the
    stage encodes it (`template`, `max_length`)."""
    _, tokenizer, before, after = embedding_rows(base, embed)
    statistic, _ = ks_2samp_rows(before, after)
    record = read_tickets_file(tickets)
    examples = encode_pairs(tokenizer, read_pairs(train), pair, template, max_length)
    counts = input_counts([example.input_ids for example in examples], before.shape[0])
    frame = shift_by_frequency(before, after, statistic, ticket_rows(record), counts)
    return frame, shifts_markdown(frame, pair, seed, len(examples), record["alpha"], record["n_tickets"])
