"""The two-sample Kolmogorov-Smirnov test, row by row over an embedding matrix, and ticket selection.

Pure array functions: no model, no files. `ks_2samp_rows(before, after)` equals
`scipy.stats.ks_2samp(before[i], after[i])` (two-sided, method='auto') for every row i, bit for bit,
without a Python loop over the V rows:

* the statistic: both rows of a pair are merged and sorted together; walking the merged order, a
  running count goes +1 for a `before` value and -1 for an `after` value. With n values on each side
  the ECDF difference at a point is count/n, and D = max |count| / n, read only at the last element
  of each run of tied values (that is what scipy's searchsorted(side='right') does with ties).
* the p-value: with equal sample sizes D only takes the n+1 values h/n, so the exact p-value is a
  function of the integer h alone. We compute it once per distinct h with scipy's own recurrence
  (same float operations, same order) and look every row up in that table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import kstwo

EXACT_MAX_N = 10_000  # scipy's MAX_AUTO_N: method='auto' is exact up to this many values per sample


def ks_2samp_rows(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided two-sample KS test of before[i] vs after[i] for every row.

    before, after: (V, n) real arrays. Returns (statistic, pvalue), each float64 of shape (V,).
    """
    before = np.asarray(before)
    after = np.asarray(after)
    if before.shape != after.shape or before.ndim != 2:
        raise ValueError(f"before and after must both be (V, n) arrays of one shape; got {before.shape} and {after.shape}")
    n_rows, n = before.shape
    if n == 0:
        raise ValueError("rows are empty: each row needs at least one value")
    if not (np.isfinite(before).all() and np.isfinite(after).all()):
        raise ValueError("before/after contain NaN or inf; the KS test needs finite values (did training diverge?)")

    h = np.zeros(n_rows, dtype=np.int64)  # max |ECDF difference| * n, per row
    moved = np.flatnonzero((before != after).any(axis=1))  # unchanged rows: D = 0, p = 1, no sort
    for chunk in np.array_split(moved, max(1, math.ceil(len(moved) * n / 2**22))):
        if len(chunk):
            h[chunk] = _max_ecdf_gap(before[chunk], after[chunk])

    statistic = h / n
    pvalue = np.ones(n_rows, dtype=np.float64)
    for gap in np.unique(h[h > 0]):
        pvalue[h == gap] = exact_pvalue(n, int(gap))
    return statistic, pvalue


def _max_ecdf_gap(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """max over x of |#{before <= x} - #{after <= x}| per row; (R, n), (R, n) -> (R,) int."""
    rows, n = before.shape
    merged = np.concatenate([before, after], axis=1)  # (R, 2n)
    order = np.argsort(merged, axis=1, kind="stable")
    values = np.take_along_axis(merged, order, axis=1)
    step = np.where(order < n, 1, -1).astype(np.int32)  # +1 for a before value, -1 for an after value
    count = np.cumsum(step, axis=1)  # (R, 2n)
    # Only the last element of a run of ties is a point where both ECDFs have absorbed the run.
    run_end = np.ones_like(count, dtype=bool)
    run_end[:, :-1] = values[:, 1:] != values[:, :-1]
    return np.where(run_end, np.abs(count), 0).max(axis=1)


def exact_pvalue(n: int, h: int) -> float:
    """P(D >= h/n) for two samples of n values each: scipy's exact result, or its fallback.

    Mirrors scipy.stats.ks_2samp (two-sided, method='auto'): exact for n <= 10000 via the same
    recurrence as scipy's _compute_prob_outside_square; where that overflows or leaves [0, 1],
    scipy falls back to the asymptotic kstwo distribution, and so do we.
    """
    if h == 0:
        return 1.0
    if n <= EXACT_MAX_N:
        try:
            with np.errstate(invalid="raise", over="raise"):
                prob = _prob_outside_square(n, h)
            if 0 <= prob <= 1:
                return float(prob)
        except (FloatingPointError, OverflowError):
            pass
    prob = kstwo.sf(h / n, np.round(n * n / (n + n)))
    return float(np.clip(prob, 0, 1))


def _prob_outside_square(n: int, h: int) -> float:
    # P = 2 * A0 * (1 - A1 * (1 - A2 * (...))), the Horner form scipy uses; kept operation for
    # operation so that the float result is identical.
    P = 0.0
    k = int(np.floor(n / h))
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        P = p1 * (1.0 - P)
        k -= 1
    return 2 * P


# ---------------------------------------------------------------------------------------------
# Selection


@dataclass(frozen=True)
class Tickets:
    """Winning tickets: rows with p < alpha, in the order of the ranking that chose them."""

    token_ids: np.ndarray  # (k,) int64
    statistic: np.ndarray  # (k,)
    pvalue: np.ndarray  # (k,)
    shift: np.ndarray  # (k,) l2 norm of each ticket row's change
    n_significant: int  # rows with p < alpha before any top_k cap
    n_moved: int  # rows that changed at all

    def record(self, token_strings: list[str], alpha: float, top_k: int | None, rank_by: str, vocab_size: int) -> dict:
        """The JSON form written to tickets.json: summary counts, then one entry per ticket, in rank order."""
        return {
            "alpha": alpha,
            "top_k": top_k,
            "rank_by": rank_by,
            "vocab_size": vocab_size,
            "n_moved": self.n_moved,
            "n_significant": self.n_significant,
            "n_tickets": len(self.token_ids),
            "tickets": [
                {"token_id": int(t), "token": s, "D": float(d), "p": float(p), "l2": round(float(l2), 6)}
                for t, s, d, p, l2 in zip(self.token_ids, token_strings, self.statistic, self.pvalue, self.shift)
            ],
        }


def row_shift(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(V, d), (V, d) -> (V,): the Euclidean norm of each row's change, in float64."""
    return np.linalg.norm(np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64), axis=1)


def select_tickets(statistic: np.ndarray, pvalue: np.ndarray, alpha: float, top_k: int | None = None,
                   rank_by: str = "p", shift: np.ndarray | None = None) -> Tickets:
    """Rows whose KS shift is significant at level alpha, ranked, then capped at top_k.

    rank_by: `p` (smallest first, then larger D, then token id), `D` (largest first, then smaller p,
    then token id) or `l2` (largest `shift` first, then token id). Every row has the same number of
    values d, so p is a non-increasing function of D and `p` and `D` give the same order; `l2` is
    the ablation that ranks by how far a row moved rather than by how its values' distribution
    changed. Without top_k the ranking changes the order of the tickets, not the set.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if shift is None:
        if rank_by == "l2":
            raise ValueError("rank_by='l2' needs the row shifts (shift=row_shift(before, after))")
        shift = np.full(len(pvalue), np.nan)
    ids = np.arange(len(pvalue))
    keys = {  # np.lexsort: the last key is the primary one
        "p": (ids, -statistic, pvalue),
        "D": (ids, pvalue, -statistic),
        "l2": (ids, -shift),
    }
    if rank_by not in keys:
        raise ValueError(f"rank_by={rank_by!r} is unknown; use one of {', '.join(keys)}")
    order = np.lexsort(keys[rank_by])
    significant = order[pvalue[order] < alpha]
    chosen = significant if top_k is None else significant[:top_k]
    return Tickets(
        token_ids=chosen.astype(np.int64),
        statistic=statistic[chosen],
        pvalue=pvalue[chosen],
        shift=shift[chosen],
        n_significant=int(len(significant)),
        n_moved=int((statistic > 0).sum()),
    )


# ---------------------------------------------------------------------------------------------
# Controls: rows chosen without the KS test, k at a time (k = the ticket count)


def random_rows(vocab_size: int, k: int, seed: int) -> np.ndarray:
    """k distinct rows drawn uniformly from the vocabulary, seeded; sorted."""
    if not 0 < k <= vocab_size:
        raise ValueError(f"k={k} must be in [1, {vocab_size}] (the vocabulary size)")
    return np.sort(np.random.default_rng(seed).choice(vocab_size, size=k, replace=False)).astype(np.int64)


def most_frequent_rows(counts: dict[int, int], k: int) -> np.ndarray:
    """The k most frequent token ids (ties broken by the smaller id); fewer if fewer occur."""
    if k <= 0:
        raise ValueError(f"k={k} must be positive")
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return np.array([token for token, _ in ranked[:k]], dtype=np.int64)
