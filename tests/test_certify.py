"""docs/certification.md, checked: T2 (D is blind to permutations), T3 (small moves give small D,
and the bound is tight), the critical statistic, and the reverted-shift summary."""

import json
import math

import numpy as np
import pytest
import torch

from kslottery.lottery.certify import (critical_statistic, keep_rows, ks_shift_bound, reverted_shift_summary,
                               ticket_free_radius, window_share)
from kslottery.lottery.ks import exact_pvalue, ks_2samp_rows
from conftest import build_tiny_model


def reverse_sorted_pairing(row):
    """The permutation of a row's coordinates that moves it the most in l2: largest <-> smallest."""
    order = np.argsort(row, kind="stable")
    permuted = row.copy()
    permuted[order] = row[order[::-1]]
    return permuted


def closed_window_brute_force(row, eps):
    """max_i #{j : x_i <= x_j <= x_i + eps} / d by comparing all pairs; 0 for eps = 0."""
    if eps == 0:
        return 0.0
    diff = row[None, :] - row[:, None]  # (d, d): x_j - x_i
    return ((diff >= 0) & (diff <= eps)).sum(axis=1).max() / len(row)


def shift_window_down(row, start, eps):
    """T3, step 4: every coordinate in [start, start + eps) moves down by eps (below `start`)."""
    moved = row.copy()
    inside = (row >= start) & (row < start + eps)
    moved[inside] -= eps
    return moved


# ---------------------------------------------------------------------------------------------
# T2


def test_permuted_row_has_d0_p1_but_a_large_l2_change():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(20, 576))
    permuted = np.stack([reverse_sorted_pairing(r) for r in rows])
    statistic, pvalue = ks_2samp_rows(rows, permuted)
    assert (statistic == 0).all() and (pvalue == 1).all()
    change = np.linalg.norm(permuted - rows, axis=1)
    assert (change > 1.9 * np.linalg.norm(rows, axis=1)).all()  # about 2||x|| for a symmetric row
    random_permutations = np.stack([r[rng.permutation(576)] for r in rows])
    assert (change >= np.linalg.norm(random_permutations - rows, axis=1)).all()  # rearrangement inequality
    signs = np.repeat([[1.0, -1.0]], 8, axis=0).reshape(1, 16)  # +a/-a halves: the move is exactly -2x
    flipped = reverse_sorted_pairing(signs[0])
    np.testing.assert_array_equal(flipped, -signs[0])
    assert ks_2samp_rows(signs, flipped[None])[0][0] == 0


def test_permuting_one_row_changes_the_model_while_the_test_sees_nothing(tiny_tokenizer):
    model = build_tiny_model(len(tiny_tokenizer), tie=False)
    ids = torch.tensor([tiny_tokenizer("The file menu opens a dialog.")["input_ids"]])  # (1, T)
    position = 2
    token = int(ids[0, position])
    embedding = model.get_input_embeddings().weight
    base = embedding.detach().clone()
    tuned = base.clone()
    tuned[token] = torch.from_numpy(reverse_sorted_pairing(base[token].numpy()))

    statistic, pvalue = ks_2samp_rows(base.numpy(), tuned.numpy())
    assert statistic[token] == 0 and pvalue[token] == 1  # so this row can never be a ticket
    summary = reverted_shift_summary(base.numpy(), tuned.numpy(), ticket_rows=[])
    assert summary["reverted_rows"] == 1 and summary["reverted_ks_max"] == 0 and summary["reverted_l2_max"] > 0

    with torch.no_grad():
        embedding.copy_(tuned)
        tuned_logits = model(input_ids=ids).logits  # (1, T, V)
        embedding.copy_(keep_rows(base, tuned, []))  # what certify does with a non-ticket row: revert it
        reverted_logits = model(input_ids=ids).logits
    change = (tuned_logits - reverted_logits).abs()
    assert change[:, :position].max() == 0  # causal: positions before the token do not see it
    assert change[:, position:].max() > 0.1 * tuned_logits.abs().max()


# ---------------------------------------------------------------------------------------------
# T3


def grid_row(rng, d, step):
    """Gaussian values rounded to a dyadic grid: exact arithmetic below, and ties."""
    return np.round(rng.normal(size=d) / step) * step


@pytest.mark.parametrize("d", [1, 2, 5, 16, 64, 576])
def test_small_moves_give_small_d(d):
    rng = np.random.default_rng(d)
    step = 1 / 64
    for trial in range(40):
        x = grid_row(rng, d, step * rng.choice([1, 8, 32]))  # coarser grids: heavier ties
        m = int(rng.integers(0, 40))
        eps = m * step
        moves = [
            rng.integers(-m, m + 1, size=d) * step,  # anywhere in [-eps, eps]
            rng.choice([-1.0, 1.0], size=d) * eps,  # every coordinate at the limit
            shift_window_down(x, x[rng.integers(d)], eps) - x if eps else np.zeros(d),  # the worst case
        ]
        bound = window_share(x, eps)
        assert bound == closed_window_brute_force(x, eps)
        for delta in moves:
            assert np.abs(delta).max(initial=0) <= eps
            statistic = ks_2samp_rows(x[None], (x + delta)[None])[0][0]
            assert statistic <= bound + 1e-12, (trial, eps)


def test_shift_bound_holds_row_wise_and_is_zero_for_unmoved_rows():
    rng = np.random.default_rng(7)
    before = rng.normal(size=(300, 64)).astype(np.float32)
    scale = rng.choice([0.0, 1e-3, 0.05, 0.5, 3.0], size=(300, 1))
    after = (before + scale * rng.normal(size=before.shape)).astype(np.float32)
    after[:20, :5] += 1.0  # a few coordinates moved far
    statistic, _ = ks_2samp_rows(before, after)
    bound = ks_shift_bound(before, after)
    assert (statistic <= bound).all()
    unmoved = (scale[:, 0] == 0) & (np.arange(300) >= 20)
    assert unmoved.any() and (bound[unmoved] == 0).all() and (bound[~unmoved] > 0).all()
    eps = np.abs(after.astype(np.float64) - before.astype(np.float64)).max(axis=1)
    for i in rng.choice(np.flatnonzero(~unmoved), size=10, replace=False):
        assert bound[i] == window_share(before[i], eps[i])


def test_shift_bound_is_reached():
    """Not vacuous: the move of T3, step 4 attains D = w_x(eps)."""
    rng = np.random.default_rng(3)
    before = rng.integers(0, 30, size=(50, 40)).astype(np.float64)  # integers: many ties
    eps = 2.5  # off the integer grid, so the closed and half-open windows agree
    after = np.empty_like(before)
    for r, x in enumerate(before):
        starts = np.unique(x)
        counts = [((x >= s) & (x < s + eps)).sum() for s in starts]
        after[r] = shift_window_down(x, starts[int(np.argmax(counts))], eps)
    statistic, _ = ks_2samp_rows(before, after)
    bound = ks_shift_bound(before, after)
    np.testing.assert_array_equal(np.abs(after - before).max(axis=1), eps)
    np.testing.assert_array_equal(statistic, bound)
    assert (bound > 2 / 40).all()


def test_ticket_free_radius_is_sharp():
    """Moves up to eps*(x) never make a ticket; a move just beyond it can."""
    rng = np.random.default_rng(11)
    step, alpha = 1 / 64, 0.05
    rows = [grid_row(rng, 576, step) for _ in range(4)]  # with ties
    rows += [rng.permutation(np.cumsum(rng.integers(1, 20, size=576))) * step for _ in range(3)]  # without
    for x in rows:
        radius = ticket_free_radius(x, alpha)
        assert 0 < radius < np.inf and radius % step == 0
        h = round(critical_statistic(576, alpha) * 576)
        starts = np.unique(x)
        # the definition: no half-open window of length eps*(x) holds h_c coordinates, a closed one does
        assert max(((x >= s) & (x < s + radius)).sum() for s in starts) < h
        assert max(((x >= s) & (x <= s + radius)).sum() for s in starts) >= h
        below = [shift_window_down(x, start, radius) for start in starts]  # every worst case
        below += [x + rng.choice([-1.0, 1.0], size=576) * radius for _ in range(5)]
        _, pvalue = ks_2samp_rows(np.repeat(x[None], len(below), axis=0), np.stack(below))
        assert (pvalue >= alpha).all()
        # just beyond: the h_c coordinates of the narrowest span fit in a window of length eps
        s = np.sort(x)
        i = int(np.argmin(s[h - 1:] - s[:577 - h]))
        beyond = shift_window_down(x, s[i], radius + step / 2)
        statistic, pvalue = ks_2samp_rows(x[None], beyond[None])
        assert statistic[0] >= h / 576 and pvalue[0] < alpha


def test_window_share_edges():
    x = np.array([0.0, 0.0, 1.0, 2.0])
    assert window_share(x, 0.0) == 0.0  # no move, D = 0
    assert window_share(x, 1e-9) == 0.5  # the tie at 0: moving it by a hair already gives D = 1/2
    assert window_share(x, 1.0) == 0.75  # closed window [0, 1]; the half-open [0, 1) holds 0.5
    assert window_share(x, 10.0) == 1.0
    with pytest.raises(ValueError):
        window_share(x, -1.0)
    with pytest.raises(ValueError):
        window_share(np.zeros((2, 2)), 1.0)


# ---------------------------------------------------------------------------------------------
# The critical statistic


@pytest.mark.parametrize("n", [4, 16, 64, 576])
def test_critical_statistic_is_the_smallest_significant_d(n):
    previous = 0.0
    for alpha in [0.2, 0.1, 0.05, 0.01, 0.001]:
        critical = critical_statistic(n, alpha)
        if math.isinf(critical):
            assert all(exact_pvalue(n, h) >= alpha for h in range(n + 1))
            previous = critical
            continue
        h = round(critical * n)
        assert h / n == critical
        assert exact_pvalue(n, h) < alpha <= exact_pvalue(n, h - 1)
        assert critical >= previous  # a smaller alpha needs at least as large a D
        previous = critical


def test_tickets_are_exactly_the_rows_with_d_at_least_critical_for_d576():
    # What docs/certification.md (T1) states about the float p-values: {h : p(h) < alpha} = {h >= h_c}.
    table = np.array([exact_pvalue(576, h) for h in range(577)])
    for alpha in [0.1, 0.05, 0.01, 1e-4, 1e-8]:
        h = round(critical_statistic(576, alpha) * 576)
        np.testing.assert_array_equal(np.flatnonzero(table < alpha), np.arange(h, 577))
    assert critical_statistic(576, 0.05) == 47 / 576 and critical_statistic(576, 0.01) == 56 / 576


def test_no_ticket_possible_for_tiny_rows():
    assert exact_pvalue(1, 1) == 1.0
    assert math.isinf(critical_statistic(1, 0.05)) and math.isinf(ticket_free_radius(np.array([0.3]), 0.05))
    with pytest.raises(ValueError):
        critical_statistic(10, 0.0)


# ---------------------------------------------------------------------------------------------
# What certify reverts


def test_reverted_shift_summary_on_a_hand_made_example():
    before = np.zeros((6, 4))
    after = before.copy()
    after[1] = [3, 4, 0, 0]  # not a ticket: l2 5, linf 4, D = 1/2
    after[2] = [1, 0, 0, 0]  # not a ticket: l2 1, linf 1, D = 1/4
    after[3] = [0, 0, 0, 2]  # ticket: l2 2
    after[4] = [6, 8, 0, 0]  # ticket: l2 10
    after[5] = [1, 1, 0, 0]  # not a ticket: l2 sqrt(2), D = 1/2
    summary = reverted_shift_summary(before, after, ticket_rows=[4, 3, 3])  # duplicates count once
    assert summary == {
        "reverted_rows": 3,
        "reverted_l2_max": 5.0,
        "reverted_l2_mean": float(f"{(5 + 1 + math.sqrt(2)) / 3:.6g}"),
        "reverted_linf_max": 4.0,
        "reverted_ks_max": 0.5,
        "ticket_rows": 2,
        "ticket_l2_max": 10.0,
        "ticket_l2_mean": 6.0,
    }
    assert summary["reverted_l2_mean"] == 2.4714  # 7.41421... / 3, six significant digits
    assert json.loads(json.dumps(summary)) == summary

    nothing = reverted_shift_summary(before, before, ticket_rows=[])
    assert nothing["reverted_rows"] == 0 and nothing["ticket_rows"] == 0
    assert all(v == 0 for v in nothing.values())
    with pytest.raises(ValueError, match="ticket rows"):
        reverted_shift_summary(before, after, ticket_rows=[6])


def test_greedy_next_tokens_are_the_argmax_of_the_full_logits(tiny_tokenizer):
    """Teacher-forced predictions from the target columns only equal those of the whole (B, T, V)."""
    from kslottery.lottery.certify import greedy_next_tokens
    from kslottery.data.corpus import SentencePair
    from kslottery.data.prompts import IGNORE_INDEX, collate, encode_pairs
    from conftest import tiny_pairs

    model = build_tiny_model(len(tiny_tokenizer), tie=False, seed=1)
    with torch.no_grad():  # a model whose argmax varies from position to position
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    examples = encode_pairs(tiny_tokenizer, [SentencePair(s, t) for s, t in tiny_pairs(7)], "en-ca",
                            "{src} to {tgt}: {source}\n", 64)
    ours = greedy_next_tokens(model, examples, tiny_tokenizer.pad_token_id, 4, "test")
    expected = []
    for start in range(0, len(examples), 4):
        batch = collate(examples[start:start + 4], tiny_tokenizer.pad_token_id)
        with torch.no_grad():
            predicted = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].argmax(-1)
        for row, labels in zip(predicted, batch["labels"][:, 1:]):
            expected.append(row[labels != IGNORE_INDEX])
    assert len(ours) == len(examples)
    assert all(torch.equal(a, b) for a, b in zip(ours, expected))
    assert len({int(t) for p in ours for t in p}) > 3
