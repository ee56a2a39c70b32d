"""The two-sample Kolmogorov-Smirnov test, row by row over an embedding matrix.

Pure array functions: no model, no files (which rows win is tickets.py). `ks_2samp_rows(before, after)` equals
`scipy.stats.ks_2samp(before[i], after[i])` (two-sided, method='auto') for every row i, bit for bit,
without a Python loop over the V rows:

* the statistic: both rows of a pair are merged and sorted together; walking the merged order, a
  running count goes +1 for a `before` value and -1 for an `after` value. With n values on each side
  the ECDF difference at a point is count/n, and D = max |count| / n, read only at the last element
  of each run of tied values (that is what scipy's searchsorted(side='right') does with ties).
* the sort: each float32 value becomes one int64 whose high word sorts like the float and whose low
  word is the step (+1 or -1), so one plain sort of integers carries the labels along; no argsort,
  no gather. Rows are done a few at a time so that the keys stay in cache. Rows that did not move
  are not sorted at all (D = 0, p = 1). Tensors on a GPU are sorted there by torch; CPU tensors
  go through numpy, whose AVX-512 sort is several times faster than torch's on the CPU.
* the p-value: with equal sample sizes D only takes the n+1 values h/n, so the exact p-value is a
  function of the integer h alone. We compute it once per distinct h with scipy's own recurrence
  (same float operations, same order) and look every row up in that table.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.stats import ks_2samp, kstwo

EXACT_MAX_N = 10_000  # scipy's MAX_AUTO_N: method='auto' is exact up to this many values per sample
CHUNK_VALUES = 2**16  # merged values sorted per chunk on the CPU: 512 KiB of int64 keys, in L2
CHUNK_VALUES_GPU = 2**25  # on a GPU: enough to fill it; 256 MiB of keys, about 1 GiB at the peak
LOW, HIGH = (0, 1) if sys.byteorder == "little" else (1, 0)  # the int32 halves of an int64


def ks_2samp_rows(before, after) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided two-sample KS test of before[i] vs after[i] for every row.

    before, after: (V, n) real arrays, or torch tensors (on a GPU the work runs there).
    Returns (statistic, pvalue), each a numpy float64 array of shape (V,).
    """
    torch = sys.modules.get("torch")  # a tensor can only exist if torch is already imported
    on_gpu = torch is not None and any(isinstance(x, torch.Tensor) and x.device.type != "cpu" for x in (before, after))
    if not on_gpu:
        before, after = _to_numpy(before), _to_numpy(after)
    if before.shape != after.shape or before.ndim != 2:
        raise ValueError("before and after must both be (V, n) arrays of one shape; "
                         f"got {tuple(before.shape)} and {tuple(after.shape)}")
    n = before.shape[1]
    if n == 0:
        raise ValueError("rows are empty: each row needs at least one value")
    if n > EXACT_MAX_N:
        # scipy's asymptotic branch reports D as a difference of two rounded fractions a/n - b/n,
        # which is not always h/n to the last bit; for such wide rows we let scipy do it.
        return _scipy_rows(*(_to_numpy(x) for x in (before, after)))
    h = _ecdf_gaps_torch(before, after) if on_gpu else _ecdf_gaps(before, after)
    gaps, which = np.unique(h, return_inverse=True)
    return h / n, exact_pvalues(n, gaps)[which]


def _ecdf_gaps(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """max over x of |#{before <= x} - #{after <= x}| per row; (V, n), (V, n) -> (V,) int64."""
    _refuse_non_finite(np.isfinite(before).all() and np.isfinite(after).all())
    before32, after32 = _exactly_float32(before), _exactly_float32(after)
    if before32 is None or after32 is None:  # e.g. float64 values that float32 cannot hold
        max_gap = _max_ecdf_gap_any
    else:
        before, after, max_gap = before32, after32, _max_ecdf_gap_float32
    h = np.zeros(len(before), dtype=np.int64)
    moved = np.flatnonzero((before != after).any(axis=1))  # unchanged rows: D = 0, p = 1, no sort
    rows_per_chunk = max(1, CHUNK_VALUES // (2 * before.shape[1]))
    for start in range(0, len(moved), rows_per_chunk):
        rows = moved[start:start + rows_per_chunk]
        h[rows] = max_gap(before[rows], after[rows])
    return h


def _max_ecdf_gap_float32(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """_ecdf_gaps for a few float32 rows (R, n), (R, n) -> (R,), by one integer sort."""
    rows, n = before.shape
    keys = np.empty((rows, 2 * n), dtype=np.int64)
    words = keys.view(np.int32).reshape(rows, 2 * n, 2)  # (R, 2n, 2): the two int32 halves of each key
    words[:, :n, HIGH] = _order_key(before)
    words[:, n:, HIGH] = _order_key(after)
    # The low word only has to ride along: order inside a run of ties does not change the count
    # at the run's end. As unsigned it sorts 1 < 0xFFFFFFFF; read as int32 it is the step +1 / -1.
    words[:, :n, LOW] = 1
    words[:, n:, LOW] = -1
    keys.sort(axis=1)
    count = np.cumsum(words[:, :, LOW], axis=1, dtype=np.int32)  # (R, 2n): #before - #after so far
    value = words[:, :, HIGH]
    np.abs(count, out=count)
    count[:, :-1] *= value[:, 1:] != value[:, :-1]  # keep only the last element of each run of ties
    return count.max(axis=1)


def _order_key(values: np.ndarray) -> np.ndarray:
    """float32 -> int32 with the same order, -0.0 and +0.0 equal: sign and magnitude to two's complement."""
    bits = values.view(np.int32)
    sign = bits >> 31  # 0 or -1
    key = bits & np.int32(0x7FFFFFFF)  # the magnitude; ordered like |value| for finite floats
    key ^= sign
    key -= sign  # -magnitude where the sign bit was set
    return key


def _max_ecdf_gap_any(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """_ecdf_gaps for rows of any real dtype, by a stable argsort of the merged rows (slower)."""
    n = before.shape[1]
    merged = np.concatenate([before, after], axis=1)  # (R, 2n)
    order = np.argsort(merged, axis=1, kind="stable")
    values = np.take_along_axis(merged, order, axis=1)
    count = np.cumsum(np.where(order < n, 1, -1), axis=1)  # (R, 2n)
    # Only the last element of a run of ties is a point where both ECDFs have absorbed the run.
    run_end = np.ones_like(count, dtype=bool)
    run_end[:, :-1] = values[:, 1:] != values[:, :-1]
    return np.where(run_end, np.abs(count), 0).max(axis=1)


def _exactly_float32(values: np.ndarray) -> np.ndarray | None:
    """values as float32 if that loses nothing (float16, small ints, float64 that fits), else None."""
    if values.dtype == np.float32:
        return values
    if values.dtype.kind not in "fiu":
        return None
    with np.errstate(over="ignore"):  # beyond float32's range: inf, and so not equal
        values32 = values.astype(np.float32)
    if values.dtype.itemsize <= 2 or (values.dtype.kind == "f" and np.array_equal(values32, values)):
        return values32
    return None


def _ecdf_gaps_torch(before, after) -> np.ndarray:
    """_ecdf_gaps for torch tensors, computed with torch on their device; returns numpy int64."""
    import torch

    device = (before if isinstance(before, torch.Tensor) else after).device
    before, after = torch.as_tensor(before, device=device), torch.as_tensor(after, device=device)
    _refuse_non_finite(all(_all_finite_torch(x) for x in (before, after)))
    before32, after32 = before.float(), after.float()  # exact for bfloat16 and float16
    exact = {torch.float32, torch.bfloat16, torch.float16}
    for x, x32 in ((before, before32), (after, after32)):
        if x.dtype not in exact and not torch.equal(x32.to(x.dtype), x):
            return _ecdf_gaps(_to_numpy(before), _to_numpy(after))  # float64 beyond float32, int64: numpy's argsort
    h = torch.zeros(len(before), dtype=torch.int64, device=device)
    moved = torch.nonzero((before32 != after32).any(dim=1)).flatten()
    chunk = CHUNK_VALUES if device.type == "cpu" else CHUNK_VALUES_GPU
    rows_per_chunk = max(1, chunk // (2 * before.shape[1]))
    for start in range(0, len(moved), rows_per_chunk):
        rows = moved[start:start + rows_per_chunk]
        h[rows] = _max_ecdf_gap_torch(before32[rows], after32[rows])
    return h.cpu().numpy()


def _max_ecdf_gap_torch(before, after):
    """_max_ecdf_gap_float32 in torch: the same keys, (R, n), (R, n) float32 -> (R,) int64 tensor."""
    import torch

    def order_key(values):  # as _order_key
        bits = values.view(torch.int32)
        sign = bits >> 31
        return ((bits & 0x7FFFFFFF) ^ sign) - sign

    keys = torch.cat([(order_key(before).long() << 32) | 1, (order_key(after).long() << 32) | 0xFFFFFFFF], dim=1)
    keys = torch.sort(keys, dim=1).values
    words = keys.view(torch.int32).view(*keys.shape, 2)  # (R, 2n, 2)
    count = torch.cumsum(words[:, :, LOW], dim=1, dtype=torch.int32).abs()
    value = words[:, :, HIGH]
    count[:, :-1] *= value[:, 1:] != value[:, :-1]
    return count.amax(dim=1).long()


def _all_finite_torch(values) -> bool:
    """torch.isfinite(values).all() in one pass with no (V, n) temporary: NaN makes the min and max
    NaN, and an inf is the min or the max. (On the CPU, isfinite().all() is 25x slower.)"""
    import torch

    if values.numel() == 0:
        return True
    low, high = torch.aminmax(values)
    return bool(torch.isfinite(low) & torch.isfinite(high))


def _refuse_non_finite(finite: bool) -> None:
    if not finite:
        raise ValueError("before/after contain NaN or inf; the KS test needs finite values (did training diverge?)")


def _to_numpy(values) -> np.ndarray:
    """A torch tensor's values as numpy (bfloat16, which numpy lacks, as float32: exact); arrays as they are."""
    if not hasattr(values, "detach"):
        return np.asarray(values)
    values = values.detach().cpu()
    return (values.float() if str(values.dtype) == "torch.bfloat16" else values).numpy()


def _scipy_rows(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy itself on the moved rows (rows wider than EXACT_MAX_N); unchanged rows D = 0, p = 1."""
    _refuse_non_finite(np.isfinite(before).all() and np.isfinite(after).all())
    statistic, pvalue = np.zeros(len(before)), np.ones(len(before))
    moved = np.flatnonzero((before != after).any(axis=1))
    if len(moved):
        result = ks_2samp(before[moved], after[moved], axis=1)
        statistic[moved], pvalue[moved] = result.statistic, result.pvalue
    return statistic, pvalue


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
    return _asymptotic_pvalue(n, h)


def _asymptotic_pvalue(n: int, h: int) -> float:
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


def exact_pvalues(n: int, gaps: np.ndarray) -> np.ndarray:
    """[exact_pvalue(n, h) for h in gaps] for distinct gaps, bit for bit, without a Python loop per h.

    exact_pvalue costs about n float operations per h, in Python: 2 s for all h at n = 4096. Here
    the same operations run elementwise: one lane per (h, k), k = 0..n//h, holding the product
    A_k = prod_{j<h} (n - kh - j) / (n + kh + j + 1); the lanes are ordered by decreasing h so that
    at step j the lanes still multiplying (h > j) are a prefix. Then the Horner sum over k runs
    for all h at once. Every value sees the same float64 operations in the same order as in
    exact_pvalue, and numpy's elementwise float64 arithmetic is IEEE like Python's.
    """
    gaps = np.asarray(gaps, dtype=np.int64)
    pvalue = np.ones(len(gaps))
    wanted = np.flatnonzero(gaps > 0)
    if n > EXACT_MAX_N or len(wanted) == 0:
        pvalue[wanted] = [_asymptotic_pvalue(n, int(h)) for h in gaps[wanted]]
        return pvalue
    wanted = wanted[np.argsort(-gaps[wanted], kind="stable")]  # decreasing h
    h = gaps[wanted]  # (G,)
    lanes_per_gap = n // h + 1  # k = 0..n//h (n // h == floor(n / h) for these sizes)
    first_lane = np.concatenate([[0], np.cumsum(lanes_per_gap)[:-1]])  # (G,)
    lane_h = np.repeat(h, lanes_per_gap)  # (L,), decreasing
    lane_k = np.arange(len(lane_h)) - np.repeat(first_lane, lanes_per_gap)
    numerator = (n - lane_k * lane_h).astype(np.float64)  # exact: small integers
    denominator = (n + lane_k * lane_h + 1).astype(np.float64)
    still_multiplying = np.searchsorted(-lane_h, -np.arange(h.max()), side="left")  # lanes with h > j
    p1 = np.ones(len(lane_h))
    for j, active in enumerate(still_multiplying):
        a = slice(0, active)
        p1[a] = (numerator[a] - j) * p1[a] / (denominator[a] + j)
    P = np.zeros(len(h))
    for k in range(lanes_per_gap.max() - 1, -1, -1):
        a = slice(np.searchsorted(lanes_per_gap, k + 1), len(h))  # the gaps with n // h >= k
        P[a] = p1[first_lane[a] + k] * (1.0 - P[a])
    prob = 2 * P
    outside = ~((0 <= prob) & (prob <= 1))  # scipy's cue for its asymptotic fallback
    prob[outside] = [_asymptotic_pvalue(n, int(g)) for g in h[outside]]
    pvalue[wanted] = prob
    return pvalue
