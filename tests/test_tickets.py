"""Which rows win (select_tickets, ranking, top_k), and which rows the controls train."""

import json

import numpy as np
import pytest

from kslottery.lottery.ks import ks_2samp_rows
from kslottery.config.registry import method
from kslottery.data.training_tokens import TrainingTokens
from kslottery.lottery.tickets import histogram_csv, row_shift, select_tickets, ticket_rows


def rule(name):
    """The row rule of a token method (its file under src/kslottery/methods/)."""
    return method(name).rows


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


def test_ticket_record_writes_null_for_an_unknown_shift():
    tickets = select_tickets(np.array([0.9, 0.1]), np.array([0.001, 0.9]), alpha=0.05)  # no shift given
    record = tickets.record(["▁hola"], alpha=0.05, top_k=None, rank_by="p", vocab_size=2)
    assert record["tickets"][0]["l2"] is None
    assert '"l2": null' in json.dumps(record, allow_nan=False)  # valid JSON: no NaN


def test_control_rows_are_chosen_as_documented():
    random_rows = rule("random-k")
    rows = random_rows(list(range(20)), vocab_size=1000, seed=3)
    assert len(set(rows)) == 20 and min(rows) >= 0 and max(rows) < 1000 and rows == sorted(rows)
    assert rows == random_rows(list(range(20)), 1000, seed=3) != random_rows(list(range(20)), 1000, seed=4)
    # by count, ties by the smaller id: 5 and 9 ten times, 7 three times, 11 once
    tokens = TrainingTokens(inputs=[[5] * 10 + [9] * 10 + [7] * 3 + [11]], prompts=[[5]])
    assert tokens.most_frequent(3).tolist() == [5, 9, 7] == rule("frequent-k")([0, 0, 0], 100, 0, tokens)
    assert tokens.most_frequent(10).tolist() == [5, 9, 7, 11]
    with pytest.raises(ValueError):
        random_rows(list(range(11)), 10, seed=0)


def test_each_token_method_rule_picks_its_rows_with_k_from_the_tickets(tiny_tokenizer):
    """On a real (tiny) tokenizer and the real prompt: the seen rows, the frequency over the whole
    inputs (prompt, source and target) and the template rows."""
    from kslottery.data.corpus import SentencePair
    from kslottery.data.prompts import encode_pairs
    from conftest import tiny_pairs

    template = "Translate this from {src} to {tgt}:\n{src}: {source}\n{tgt}:"
    examples = encode_pairs(tiny_tokenizer, [SentencePair(s, t) for s, t in tiny_pairs(12)], "en-ca", template, 64)
    tokens = TrainingTokens.of(examples, tiny_tokenizer)
    assert (tokens.inputs, tokens.prompts) == ([e.input_ids for e in examples], [e.prompt_ids for e in examples])
    seen = {t for e in examples for t in e.input_ids}
    vocab = len(tiny_tokenizer)
    assert len(seen) < vocab  # some rows never occur: random_seen must avoid them, random need not
    tickets = [5, 9, 40, 41, 42, 43]

    def rows(name, seed=0):
        return rule(name)(tickets, vocab, seed=seed, tokens=tokens)

    assert rows("ticket") == tickets
    assert rows("random-k") == sorted(np.random.default_rng(0).choice(vocab, len(tickets), replace=False).tolist())
    drawn = rows("random-seen-k")
    assert len(drawn) == len(tickets) and set(drawn) <= seen and drawn != rows("random-seen-k", seed=1)
    counts = {}
    for e in examples:  # every input token: prompt, source, target, eos
        for t in e.input_ids:
            counts[t] = counts.get(t, 0) + 1
    frequent = rows("frequent-k")
    assert frequent == sorted(counts, key=lambda t: (-counts[t], t))[:len(tickets)]
    prompt_only = {t for e in examples for t in e.prompt_ids} - {t for e in examples for t in e.input_ids[len(e.prompt_ids):]}
    assert set(frequent) & prompt_only  # the template's tokens count: they are in every input
    template_rows = rows("template-tokens")
    words = set(tiny_tokenizer("Translate this from English to Catalan:", add_special_tokens=False)["input_ids"])
    assert words <= set(template_rows)  # the template's words are in every prompt
    assert all(all(t in e.prompt_ids for e in examples) for t in template_rows)
    assert not set(template_rows) & {t for e in examples[:1] for t in e.input_ids[len(e.prompt_ids):]} - set(
        t for e in examples for t in e.prompt_ids)  # no target-only token
    # stop-tokens: the id every target ends with (eos) and the newline's, which decoding cuts the first line at
    stop = rows("stop-tokens")
    newline = tiny_tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert {e.input_ids[-1] for e in examples} == {tiny_tokenizer.eos_token_id} and len(newline) == 1
    assert stop == sorted({tiny_tokenizer.eos_token_id, *newline}) and len(stop) == 2


def test_stop_control_refuses_tokens_built_without_the_tokenizer():
    with pytest.raises(ValueError, match="TrainingTokens.of"):
        rule("stop-tokens")([1, 2], 10, seed=0, tokens=TrainingTokens(inputs=[[1, 2]], prompts=[[1]]))


class PieceTokenizer:
    """A SentencePiece-like tokenizer (a word-start piece before text, newline as a byte piece), and
    one that merges a newline into the word before it: what newline_id must cope with."""

    def __init__(self, merges: bool = False, eos: int | None = 2):
        self.merges, self.eos_token_id = merges, eos

    def __call__(self, text, add_special_tokens=False):
        pieces = {"a": [5, 6], "a\n": [5, 6, 13], "\n": [5, 13]}  # 5: the word-start piece "▁"
        if self.merges:
            pieces["a\n"] = [5, 7]
        return {"input_ids": pieces[text]}


def test_the_newline_row_is_what_a_newline_adds_to_a_line():
    from kslottery.data.training_tokens import newline_id

    assert newline_id(PieceTokenizer()) == 13  # not the word-start piece "\n" alone would bring along
    assert newline_id(PieceTokenizer(merges=True)) is None
    assert TrainingTokens.of([], PieceTokenizer()).stops == (2, 13)
    assert TrainingTokens.of([], PieceTokenizer(merges=True, eos=None)).stops == ()
    with pytest.raises(ValueError, match="no stop rows"):
        rule("stop-tokens")([1], 20, seed=0, tokens=TrainingTokens.of([], PieceTokenizer(merges=True, eos=None)))


def test_template_control_refuses_prompts_with_no_common_token():
    """A template that is only `{source}` leaves no token in every prompt: the control says so
    (naming the key to fix) instead of training an empty set of rows."""
    tokens = TrainingTokens(inputs=[[1, 2, 3], [4, 5, 6]], prompts=[[1, 2], [4, 5]])
    with pytest.raises(ValueError, match="prompt.template"):
        rule("template-tokens")([1, 2], 10, seed=0, tokens=tokens)


def test_random_seen_takes_every_seen_row_when_k_is_larger():
    tokens = TrainingTokens(inputs=[[3, 8], [9, 8]], prompts=[[3], [9]])
    assert rule("random-seen-k")(list(range(10)), 100, seed=0, tokens=tokens) == [3, 8, 9]


def test_histogram_counts_rows_and_tickets_per_distinct_d():
    statistic = np.array([0.0, 0.25, 0.5, 0.25, 0.5, 0.75])
    csv = histogram_csv(statistic, np.array([2, 5]))
    assert csv.splitlines() == ["D,rows,tickets", "0.250000,2,0", "0.500000,2,1", "0.750000,1,1"]  # D = 0 left out


def test_ticket_rows_read_a_record_in_rank_order():
    tickets = select_tickets(np.array([0.5, 0.9]), np.array([0.01, 0.001]), alpha=0.05)
    assert ticket_rows(tickets.record(["a", "b"], 0.05, None, "p", vocab_size=2)) == [1, 0]
