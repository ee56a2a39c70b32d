import numpy as np
import pytest
import scipy.stats

from kslottery.ks import exact_pvalue, ks_2samp_rows, row_shift, select_tickets


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


def test_exact_pvalue_table_is_monotone():
    values = [exact_pvalue(100, h) for h in range(0, 101)]
    assert values[0] == 1.0
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one shape"):
        ks_2samp_rows(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        ks_2samp_rows(np.full((1, 3), np.nan), np.zeros((1, 3)))


def test_select_tickets_orders_by_p_and_caps():
    statistic = np.array([0.0, 0.5, 0.9, 0.5, 0.2])
    pvalue = np.array([1.0, 0.01, 0.001, 0.01, 0.2])
    tickets = select_tickets(statistic, pvalue, alpha=0.05)
    assert tickets.token_ids.tolist() == [2, 1, 3]  # by p; equal p -> lower id first (equal D)
    assert tickets.n_significant == 3 and tickets.n_moved == 4
    capped = select_tickets(statistic, pvalue, alpha=0.05, top_k=2)
    assert capped.token_ids.tolist() == [2, 1] and capped.n_significant == 3
    assert select_tickets(statistic, pvalue, alpha=0.0001).token_ids.tolist() == []
    with pytest.raises(ValueError):
        select_tickets(statistic, pvalue, alpha=1.5)


def test_ranking_by_d_equals_ranking_by_p_and_l2_ranks_by_distance():
    rng = np.random.default_rng(5)
    before = rng.normal(size=(300, 32))
    after = before.copy()
    moved = rng.choice(300, size=120, replace=False)
    after[moved] += rng.normal(scale=rng.uniform(0.05, 2.0, size=(120, 1)), size=(120, 32))
    after[moved[:40]] = before[moved[:40]] + 3.0  # whole rows shifted: D near 1
    after[moved[40:60], :12] += 50.0  # a third of the values moved far: D = 12/32, p ~ 0.02, large l2
    statistic, pvalue = ks_2samp_rows(before, after)
    shift = row_shift(before, after)
    by_p = select_tickets(statistic, pvalue, 0.05, top_k=30, shift=shift)
    by_d = select_tickets(statistic, pvalue, 0.05, top_k=30, rank_by="D", shift=shift)
    by_l2 = select_tickets(statistic, pvalue, 0.05, top_k=30, rank_by="l2", shift=shift)
    # same d for every row: p is a non-increasing function of D, so the two orders coincide
    assert by_p.token_ids.tolist() == by_d.token_ids.tolist()
    assert np.all(np.diff(by_l2.shift) <= 0) and by_l2.n_significant == by_p.n_significant
    significant = np.flatnonzero(pvalue < 0.05)
    assert set(by_l2.token_ids) == set(significant[np.argsort(-shift[significant], kind="stable")][:30])
    assert set(by_l2.token_ids) != set(by_p.token_ids)  # the ablation does choose other rows here
    full = select_tickets(statistic, pvalue, 0.05, rank_by="l2", shift=shift)
    assert set(full.token_ids) == set(significant)  # without top_k: same set, other order
    with pytest.raises(ValueError, match="needs the row shifts"):
        select_tickets(statistic, pvalue, 0.05, rank_by="l2")
    with pytest.raises(ValueError, match="unknown"):
        select_tickets(statistic, pvalue, 0.05, rank_by="L1", shift=shift)


def test_ticket_record_is_json_ready():
    tickets = select_tickets(np.array([0.9, 0.1]), np.array([0.001, 0.9]), alpha=0.05, shift=np.array([2.5, 0.1]))
    record = tickets.record(["▁hola"], alpha=0.05, top_k=None, rank_by="p", vocab_size=2)
    assert record["n_tickets"] == 1 and record["rank_by"] == "p"
    assert record["tickets"] == [{"token_id": 0, "token": "▁hola", "D": 0.9, "p": 0.001, "l2": 2.5}]
