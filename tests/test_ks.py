import numpy as np
import pytest
import scipy.stats
import torch

from kslottery.lottery import ks
from kslottery.lottery.ks import exact_pvalue, exact_pvalues, ks_2samp_rows


def scipy_rows(before, after):
    results = [scipy.stats.ks_2samp(b, a) for b, a in zip(before, after)]
    return np.array([r.statistic for r in results]), np.array([r.pvalue for r in results])


def assert_matches_scipy(before, after):
    statistic, pvalue = ks_2samp_rows(before, after)
    expected_statistic, expected_pvalue = scipy_rows(before, after)
    np.testing.assert_array_equal(statistic, expected_statistic)  # bit for bit, not approximately
    np.testing.assert_array_equal(pvalue, expected_pvalue)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 576])
def test_random_rows_match_scipy(n):
    rng = np.random.default_rng(n)
    before = rng.normal(size=(40, n)).astype(np.float32)
    # a mix of small and large shifts, and some rows left alone
    scale = rng.choice([0.0, 0.01, 0.3, 2.0], size=(40, 1))
    after = (before + scale * rng.normal(size=(40, n))).astype(np.float32)
    assert_matches_scipy(before, after)


def test_ties_within_and_across_samples_match_scipy():
    rng = np.random.default_rng(1)
    before = rng.integers(0, 4, size=(60, 50)).astype(np.float64)  # heavy ties
    after = rng.integers(0, 5, size=(60, 50)).astype(np.float64)
    after[:10] = before[:10][:, ::-1]  # same multiset, other order: D = 0
    assert_matches_scipy(before, after)


def test_signs_zeros_and_values_shared_across_samples_match_scipy():
    # The integer sort keys flip the order of negative floats and must make -0.0 and +0.0 one tie,
    # as numpy's comparisons (and so scipy) do; values equal across the samples are ties too.
    rng = np.random.default_rng(3)
    pool = np.array([-3.5, -1.0, -1e-40, -0.0, 0.0, 1e-40, 1.0, 2.0, np.finfo(np.float32).max,
                     -np.finfo(np.float32).max], dtype=np.float32)  # includes subnormals
    before = rng.choice(pool, size=(200, 24))
    after = rng.choice(pool, size=(200, 24))
    reversed_rows = before[:20, ::-1]  # same values in another order, each zero's sign flipped: D = 0
    after[:20] = np.where(reversed_rows == 0, -reversed_rows, reversed_rows)
    after[20:40] = np.where(rng.random((20, 24)) < 0.5, before[20:40], after[20:40])  # half shared
    after[40:50] = -before[40:50]
    assert_matches_scipy(before, after)
    statistic, _ = ks_2samp_rows(before[:20], after[:20])
    assert (statistic == 0).all() and (before[:20] != after[:20]).any(axis=1).all()  # sorted, not skipped
    assert ks_2samp_rows(np.float32([[-0.0, -0.0, 1, 2]]), np.float32([[0.0, 0.0, 2, 1]]))[0][0] == 0


def test_many_exact_ties_and_negative_shifts_match_scipy():
    rng = np.random.default_rng(4)
    levels = rng.normal(size=7).astype(np.float32)
    before = rng.choice(levels, size=(300, 64))
    after = np.where(rng.random((300, 64)) < 0.3, rng.choice(levels, size=(300, 64)), before)
    after[:50] = before[:50] - np.float32(0.25)  # everything moved down
    assert_matches_scipy(before, after.astype(np.float32))


def test_float64_input_matches_scipy_whether_or_not_float32_holds_it():
    rng = np.random.default_rng(6)
    exact = rng.normal(size=(50, 40)).astype(np.float32).astype(np.float64)  # goes the float32 way
    assert_matches_scipy(exact, exact + rng.choice([0.0, 0.5], size=(50, 1)))
    fine = rng.normal(size=(50, 40))  # float32 would round these: the argsort way
    moved = fine + rng.normal(scale=1e-9, size=(50, 40))  # differences below float32's resolution
    assert_matches_scipy(fine, moved)
    assert ks.ks_2samp_rows(fine, moved)[0].max() > 0
    huge = fine * 1e300  # beyond float32's range
    assert_matches_scipy(huge, huge[:, ::-1] * 2)


def test_torch_tensors_give_the_numpy_result():
    rng = np.random.default_rng(7)
    before = rng.normal(size=(120, 48)).astype(np.float32)
    after = before + rng.choice([0.0, 0.01, 1.0], size=(120, 1)) * rng.normal(size=(120, 48)).astype(np.float32)
    after[:10, :5] = -0.0
    before[:10, :5] = 0.0
    expected = ks_2samp_rows(before, after)
    for dtype in (torch.float32, torch.bfloat16):
        b, a = torch.from_numpy(before).to(dtype), torch.from_numpy(after).to(dtype)
        on_numpy = ks_2samp_rows(b.float().numpy(), a.float().numpy())
        got = ks_2samp_rows(b, a)  # CPU tensors go through numpy
        np.testing.assert_array_equal(got[0], on_numpy[0])
        np.testing.assert_array_equal(got[1], on_numpy[1])
        # the torch sort that GPU tensors use, run here on the CPU: the same h for every row
        np.testing.assert_array_equal(ks._ecdf_gaps_torch(b, a), np.rint(on_numpy[0] * 48).astype(np.int64))
    fine = rng.normal(size=(20, 48))  # float64 that float32 cannot hold: the GPU path hands it to numpy
    moved = fine + rng.normal(scale=1e-9, size=(20, 48))
    np.testing.assert_array_equal(ks._ecdf_gaps_torch(torch.from_numpy(fine), torch.from_numpy(moved)),
                                  np.rint(ks_2samp_rows(fine, moved)[0] * 48).astype(np.int64))
    statistic, pvalue = ks_2samp_rows(torch.from_numpy(before), after)  # a tensor and an array mixed
    np.testing.assert_array_equal(statistic, expected[0])
    np.testing.assert_array_equal(pvalue, expected[1])
    assert ks_2samp_rows(torch.from_numpy(before), after)[0].dtype == np.float64


def test_identical_rows_give_d0_p1():
    before = np.random.default_rng(2).normal(size=(5, 16))
    statistic, pvalue = ks_2samp_rows(before, before.copy())
    assert (statistic == 0).all() and (pvalue == 1).all()


def test_fully_separated_rows_reach_d1():
    before = np.zeros((1, 30))
    after = np.ones((1, 30))
    statistic, pvalue = ks_2samp_rows(before, after)
    assert statistic[0] == 1.0
    assert pvalue[0] == scipy.stats.ks_2samp(before[0], after[0]).pvalue
    assert pvalue[0] < 1e-10


def test_small_d_falls_back_to_asymptotic_like_scipy():
    # Interleaved samples give D = 1/n; at n = 200 and 1000 scipy's exact recurrence then leaves
    # [0, 1] by a rounding error and it switches to the asymptotic kstwo distribution.
    before = np.stack([np.arange(1000.0), np.arange(1000.0) * 2])
    after = before + 0.5
    with pytest.warns(RuntimeWarning, match="Exact calculation unsuccessful"):
        expected_statistic, expected_pvalue = scipy_rows(before, after)
    statistic, pvalue = ks_2samp_rows(before, after)
    np.testing.assert_array_equal(statistic, expected_statistic)
    np.testing.assert_array_equal(pvalue, expected_pvalue)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 200, 577, 1000])
def test_exact_pvalues_equal_exact_pvalue_bit_for_bit(n):
    gaps = np.random.default_rng(n).permutation(n + 1)  # every h, in any order, 0 included
    if n == 1000:
        gaps = gaps[:150]  # the scalar reference is slow
    expected = [exact_pvalue(n, int(h)) for h in gaps]
    np.testing.assert_array_equal(exact_pvalues(n, gaps), expected)


def test_rows_wider_than_scipys_exact_limit_match_scipy():
    # n > 10000: scipy's asymptotic branch, whose D is a/n - b/n in floats; ks hands these rows to scipy
    rng = np.random.default_rng(8)
    before = rng.normal(size=(3, 10_007)).astype(np.float32)
    after = before.copy()
    after[1:] += rng.normal(scale=0.05, size=(2, 10_007)).astype(np.float32)
    assert_matches_scipy(before, after)


def test_exact_pvalue_table_is_monotone():
    values = [exact_pvalue(100, h) for h in range(0, 101)]
    assert values[0] == 1.0
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one shape"):
        ks_2samp_rows(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        ks_2samp_rows(np.full((1, 3), np.nan), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="inf"):
        ks_2samp_rows(np.array([[1.0, np.inf]]), np.array([[1.0, np.inf]]))  # even in an unchanged row
    with pytest.raises(ValueError, match="inf"):
        ks_2samp_rows(torch.tensor([[1.0, -np.inf]]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="NaN"):
        ks._ecdf_gaps_torch(torch.zeros(2, 2), torch.tensor([[0.0, 0.0], [np.nan, 1.0]]))  # the GPU path's check
    with pytest.raises(ValueError, match="empty"):
        ks_2samp_rows(np.zeros((2, 0)), np.zeros((2, 0)))
