"""Certification by measurement: how much of embedding tuning do the ticket rows alone carry?

Take the embedding-tuned model, put every non-ticket row back to its base value, and compare it
with the embedding-tuned model on the test set:

* next-token agreement: teacher-forced on the reference translations, the share of target
  positions where both models' greedy next token is the same (1.0 = indistinguishable there);
* each model's next-token accuracy against the reference;
* the score difference of their translations (computed by the stage with translate + scoring).

This is a measurement on one test set, not a theorem.

The second half of the module holds pure numpy helpers for what the KS statistic does and does not
bound (docs/certification.md has the statements and proofs, T1-T4):

* `window_share` / `ks_shift_bound`: the T3 bound D <= w_x(||after - before||_inf);
* `critical_statistic` / `ticket_free_radius`: the smallest D that can be a ticket at level alpha,
  and the l-inf move below which a row cannot reach it (T3, corollary);
* `reverted_shift_summary`: the size of what certify reverts (a measurement).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from kslottery.progress import progress
from kslottery.lottery.ks import exact_pvalue, ks_2samp_rows
from kslottery.data.prompts import IGNORE_INDEX, Example, collate


def keep_rows(base: torch.Tensor, tuned: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """(V, d): `tuned` on `rows`, `base` everywhere else."""
    if base.shape != tuned.shape:
        raise ValueError(f"embedding shapes differ: {tuple(base.shape)} vs {tuple(tuned.shape)}")
    kept = base.clone()
    index = torch.as_tensor(rows, dtype=torch.long)
    kept[index] = tuned[index]
    return kept


@torch.no_grad()
@torch.inference_mode()
def greedy_next_tokens(model, examples: list[Example], pad_token_id: int, batch_size: int, desc: str) -> list[torch.Tensor]:
    """Per example, the model's argmax next token at every target position (teacher-forced).

    The output layer runs only at the columns that predict a target token of some row."""
    device = next(model.parameters()).device
    predictions = []
    for start in progress(range(0, len(examples), batch_size), desc=desc, unit="batch"):
        chunk = examples[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_token_id).items()}
        targets = batch["labels"][:, 1:]  # position t predicts token t + 1
        columns = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       logits_to_keep=columns).logits  # (B, len(columns), V)
        predicted = logits.argmax(-1)
        targets = targets[:, columns]
        for row in range(len(chunk)):
            predictions.append(predicted[row][targets[row] != IGNORE_INDEX].cpu())
    return predictions


def agreement(predictions_a: list[torch.Tensor], predictions_b: list[torch.Tensor]) -> float:
    """Share of target positions where two models predict the same next token."""
    same = sum(int((a == b).sum()) for a, b in zip(predictions_a, predictions_b))
    total = sum(len(a) for a in predictions_a)
    return same / total if total else 1.0


def accuracy(predictions: list[torch.Tensor], examples: list[Example]) -> float:
    """Share of target positions where the greedy next token is the reference token."""
    correct = total = 0
    for predicted, example in zip(predictions, examples):
        reference = torch.tensor([t for t in example.labels[1:] if t != IGNORE_INDEX])
        correct += int((predicted == reference).sum())
        total += len(reference)
    return correct / total if total else 0.0


# ---------------------------------------------------------------------------------------------
# What the KS statistic bounds (docs/certification.md). Pure numpy, no model.
#
# Notation: a row before tuning x in R^d, after y = x + delta; D = sup_t |F_x(t) - F_y(t)| with
# F the empirical CDF over the d coordinates. T3: if max_i |delta_i| <= eps then D <= w_x(eps),
#     w_x(eps) = max_i #{j : x_i <= x_j < x_i + eps} / d      (0 for eps = 0).
# The code counts the closed window instead, #{j : x_i <= x_j, fl(x_j - x_i) <= eps}, with the
# difference rounded in float64: never smaller than the half-open count (rounding is monotone, so
# x_j - x_i < eps implies fl(x_j - x_i) <= fl(eps)), equal to it unless two coordinates differ by
# exactly eps. So the returned value is an upper bound on D even with rounding.


def _closed_window_counts(sorted_rows: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """max_k #{j >= k : s[j] - s[k] <= eps} per row; sorted_rows (R, d) float64 ascending, eps (R,) -> (R,) int.

    A bisection for every (row, k) at once: j -> fl(s[j] - s[k]) is non-decreasing in j, so the
    first j where it exceeds eps is found in ceil(log2(d + 1)) vectorized steps.
    """
    rows, d = sorted_rows.shape
    k = np.broadcast_to(np.arange(d), (rows, d))
    lo = k + 1  # (R, d): s[k] - s[k] = 0 <= eps, so the window holds at least index k
    hi = np.full((rows, d), d)  # invariant: the predicate holds on [k, lo) and fails on [hi, d)
    limit = eps[:, None]
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        inside = (np.take_along_axis(sorted_rows, np.minimum(mid, d - 1), axis=1) - sorted_rows) <= limit
        lo = np.where(active & inside, mid + 1, lo)
        hi = np.where(active & ~inside, mid, hi)
    return (lo - k).max(axis=1)


def window_share(row: np.ndarray, eps: float) -> float:
    """w_x(eps) of T3 for one row x (d,): the largest share of x's coordinates in a window of length eps.

    Returns 0.0 for eps == 0 (then y = x and D = 0); otherwise the closed-window count
    max_i #{j : x_i <= x_j <= x_i + eps} / d (see the comment above: >= the half-open w_x(eps),
    equal unless two coordinates differ by exactly eps). O(d log d).
    """
    row = np.asarray(row, dtype=np.float64)
    if row.ndim != 1 or row.size == 0:
        raise ValueError(f"row must be a non-empty 1-D array, got shape {row.shape}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if eps == 0:
        return 0.0
    counts = _closed_window_counts(np.sort(row)[None, :], np.array([float(eps)]))
    return float(counts[0] / row.size)


def ks_shift_bound(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per row, the T3 upper bound on the KS statistic: w_x(||after_row - before_row||_inf).

    before, after: (V, d). Returns (V,) float64 with ks_2samp_rows(before, after)[0] <= bound for
    every row; 0 where a row did not move. eps is max |after - before| rounded in float64, i.e.
    fl(true eps), and the window test compares rounded differences with it, so the bound holds for
    the float values as stored. Sorted in chunks of about 2**20 values.
    """
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    if before.shape != after.shape or before.ndim != 2 or before.shape[1] == 0:
        raise ValueError(f"before and after must both be (V, d) arrays of one shape; got {before.shape} and {after.shape}")
    n_rows, d = before.shape
    eps = np.abs(after - before).max(axis=1)  # (V,)
    bound = np.zeros(n_rows, dtype=np.float64)
    moved = np.flatnonzero(eps > 0)
    for chunk in np.array_split(moved, max(1, math.ceil(len(moved) * d / 2**20))):
        if len(chunk):
            bound[chunk] = _closed_window_counts(np.sort(before[chunk], axis=1), eps[chunk]) / d
    return bound


@functools.lru_cache(maxsize=256)
def _critical_count(n: int, alpha: float) -> int:
    """Smallest h in 1..n with exact_pvalue(n, h) < alpha; n + 1 if there is none."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    # A scan, not a bisection: "smallest" then holds by construction, with no appeal to the
    # float p-values being monotone in h. It stops at the answer, about 1.4 * sqrt(2n) for alpha = 0.05.
    for h in range(1, n + 1):
        if exact_pvalue(n, h) < alpha:
            return h
    return n + 1


def critical_statistic(n: int, alpha: float) -> float:
    """D_crit(alpha, n): the smallest D = h/n whose p-value (kslottery.lottery.ks.exact_pvalue) is < alpha.

    n values per side (n = d, the embedding width). A row with D < D_crit has p >= alpha and is not
    a ticket. math.inf when no D reaches p < alpha (tiny n with tiny alpha: no row can be a ticket).
    """
    h = _critical_count(int(n), float(alpha))
    return math.inf if h > n else h / n


def ticket_free_radius(row: np.ndarray, alpha: float) -> float:
    """eps*(x) of the T3 corollary: moving every coordinate of x by at most this cannot make a ticket.

    With h = D_crit(alpha, d) * d and x_(1) <= ... <= x_(d) the sorted row,
    eps*(x) = min_i (x_(i+h-1) - x_(i)), the narrowest span of h sorted coordinates: if
    max |delta_i| <= eps*(x) then D <= (h-1)/d < D_crit, so p >= alpha; for any eps > eps*(x)
    some move with max |delta_i| <= eps reaches D >= h/d. math.inf when no row can be a ticket.
    The spans are differences rounded in float64 (exact for float32 rows, unless two values
    differ in magnitude by more than 2**28).
    """
    row = np.sort(np.asarray(row, dtype=np.float64))  # (d,)
    if row.ndim != 1 or row.size == 0:
        raise ValueError(f"row must be a non-empty 1-D array, got shape {row.shape}")
    d = row.size
    h = _critical_count(d, float(alpha))
    if h > d:
        return math.inf
    return float((row[h - 1:] - row[:d - h + 1]).min())


def _significant(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


def reverted_shift_summary(before: np.ndarray, after: np.ndarray, ticket_rows) -> dict:
    """How far the rows that certify reverts had moved, next to the ticket rows: a measurement.

    before, after: (V, d) base and embedding-tuned input embeddings (numpy; from torch use
    `.float().numpy()`); ticket_rows: the ticket token ids. Reverted rows = rows with any coordinate
    changed that are not tickets. Returns JSON-ready numbers (6 significant digits); statistics of an
    empty set are 0.0, next to a count of 0.
    """
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    if before.shape != after.shape or before.ndim != 2:
        raise ValueError(f"before and after must both be (V, d) arrays of one shape; got {before.shape} and {after.shape}")
    tickets = np.unique(np.asarray(list(ticket_rows), dtype=np.int64))
    if tickets.size and (tickets.min() < 0 or tickets.max() >= before.shape[0]):
        raise ValueError(f"ticket rows must be in [0, {before.shape[0]}), got {tickets.min()}..{tickets.max()}")
    is_ticket = np.zeros(before.shape[0], dtype=bool)
    is_ticket[tickets] = True
    reverted = np.flatnonzero((before != after).any(axis=1) & ~is_ticket)  # (r,)

    def l2(rows: np.ndarray) -> np.ndarray:
        return np.linalg.norm(after[rows] - before[rows], axis=1)  # (len(rows),)

    reverted_l2, ticket_l2 = l2(reverted), l2(tickets)
    summary = {
        "reverted_rows": int(reverted.size),
        "reverted_l2_max": float(reverted_l2.max()) if reverted.size else 0.0,
        "reverted_l2_mean": float(reverted_l2.mean()) if reverted.size else 0.0,
        "reverted_linf_max": float(np.abs(after[reverted] - before[reverted]).max()) if reverted.size else 0.0,
        "reverted_ks_max": float(ks_2samp_rows(before[reverted], after[reverted])[0].max()) if reverted.size else 0.0,
        "ticket_rows": int(tickets.size),
        "ticket_l2_max": float(ticket_l2.max()) if tickets.size else 0.0,
        "ticket_l2_mean": float(ticket_l2.mean()) if tickets.size else 0.0,
    }
    return {k: v if isinstance(v, int) else _significant(v) for k, v in summary.items()}


def shift_certificate(before: np.ndarray, after: np.ndarray, ticket_rows, alpha: float) -> dict:
    """What certify reverts, and what the KS statistic proves about it (docs/certification.md).

    before, after: (V, d) base and embedding-tuned input embeddings; ticket_rows: the ticket ids.
    Returns reverted_shift_summary's measurements plus `critical_D` (the smallest D that is a ticket
    at level alpha) and `reverted_rows_below_T3_bound`: how many of the reverted (moved, non-ticket)
    rows moved too little for their D to reach critical_D at all (T3), i.e. are non-tickets by size
    alone, whatever the shape of their move.
    """
    before = np.asarray(before)
    after = np.asarray(after)
    reverted = (before != after).any(axis=1)  # (V,)
    reverted[np.asarray(list(ticket_rows), dtype=np.int64)] = False
    d_crit = critical_statistic(before.shape[1], alpha)
    below = int((ks_shift_bound(before[reverted], after[reverted]) < d_crit).sum())
    return {"critical_D": round(d_crit, 6), "reverted_rows_below_T3_bound": below,
            **reverted_shift_summary(before, after, ticket_rows)}
