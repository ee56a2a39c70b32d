"""What makes a ticket (studies/traits.py): the traits measure what they say, the KS test sees
coherent nudges at first order and independent ones hardly, and `ksl traits` runs on a pipeline run."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from kslottery.lottery.certify import critical_statistic
from kslottery.studies.traits import (TRAITS, gradient_mass, logistic_fit, rank_summary, row_traits, simulate,
                                      update_shares)


def rows(n=20, d=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_update_shares_split_location_scale_and_the_rest():
    before = rows()
    centred = before - before.mean(axis=1, keepdims=True)
    location, scale = update_shares(before, before + 0.3)
    assert np.allclose(location, 1) and np.allclose(scale, 0, atol=1e-6)
    location, scale = update_shares(before, before + 0.2 * centred)
    assert np.allclose(scale, 1, atol=1e-5) and np.allclose(location, 0, atol=1e-6)
    noise = np.random.default_rng(1).standard_normal(before.shape).astype(np.float32)
    location, scale = update_shares(before, before + 0.01 * noise)
    assert (location + scale).mean() < 0.1  # independent nudges: ~2/d of the energy
    assert update_shares(before, before.copy())[0].tolist() == [0.0] * len(before)  # no update, no share


def test_row_traits_lists_the_moved_rows_with_ks_and_ticket_status():
    before = rows(n=10, d=256)
    after = before.copy()
    after[2] += 0.5 * before[2].std()  # a coherent shift: a ticket by D
    after[5] += 0.05 * np.random.default_rng(2).standard_normal(256).astype(np.float32) * before[5].std()
    counts, gradient = np.arange(10), np.linspace(0, 1, 10)
    frame = row_traits(before, after, [2], counts, gradient)
    assert frame["row"].tolist() == [2, 5] and frame["is_ticket"].tolist() == [True, False]
    assert set(TRAITS) <= set(frame.columns)
    assert frame.loc[0, "D"] >= critical_statistic(256, 0.05) > frame.loc[1, "D"]
    assert frame.loc[0, "coherence"] > 0.99 and frame.loc[1, "coherence"] < 0.1
    assert frame["inputs"].tolist() == [2, 5] and frame.loc[0, "update"] == pytest.approx(0.5, rel=1e-3)


def test_the_simulation_grows_d_with_the_nudge_and_a_location_shift_most():
    """Measured, not assumed: at d = 576 every nudge raises D with its size; a shift of location
    raises it most, so it turns significant at a smaller size than independent nudges do."""
    frame = simulate(rows(n=100, d=576), (0.05, 0.1, 0.18, 0.5), seed=0).set_index(["nudge", "size"])
    d, significant = frame["mean_D"], frame["significant"]
    for nudge in ("location", "scale", "independent"):
        assert d[nudge, 0.05] < d[nudge, 0.1] < d[nudge, 0.18] < d[nudge, 0.5], nudge
    assert d["location", 0.1] > 1.3 * d["independent", 0.1] and d["location", 0.1] > 1.3 * d["scale", 0.1]
    assert significant["location", 0.18] > 0.5 > significant["independent", 0.18]
    assert significant["location", 0.5] == significant["independent", 0.5] == 1.0
    assert significant["location", 0.05] == 0.0


def test_rank_summary_and_logistic_fit_find_the_trait_that_decides():
    generator = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({name: generator.uniform(0.01, 1, n) for name in TRAITS})
    frame["is_ticket"] = frame["coherence"] > 0.7
    frame["D"] = frame["coherence"] + 0.01 * generator.standard_normal(n)
    summary = rank_summary(frame).set_index("trait")
    assert summary.loc["coherence", "AUC for tickets"] == 1.0 and summary.loc["coherence", "spearman with D"] > 0.95
    assert abs(summary.loc["inputs", "AUC for tickets"] - 0.5) < 0.1
    fit = logistic_fit(frame).set_index("trait")["coefficient (per std of log)"]
    assert fit["coherence"] > 2 and fit.drop(["coherence", "(intercept)"]).abs().max() < fit["coherence"] / 3


def test_gradient_mass_is_zero_for_unseen_rows_and_leaves_the_model_as_it_was(tiny_model_dir):
    from conftest import tiny_pairs
    from kslottery.config.params import ModelParams
    from kslottery.data.corpus import SentencePair
    from kslottery.data.prompts import encode_pairs
    from kslottery.model.loading import load_source_model

    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    flags = [p.requires_grad for p in model.parameters()]
    pairs = [SentencePair(s, t) for s, t in tiny_pairs(8)]
    examples = encode_pairs(tokenizer, pairs, "en-ca", "{src} {tgt}: {source}\n", 64)
    mass = gradient_mass(model, examples, batch_size=4, seed=0, pad_token_id=tokenizer.pad_token_id)
    seen = {t for e in examples for t in e.input_ids[:-1]}
    assert mass.shape == (len(tokenizer),) and (mass[sorted(seen)] > 0).all()
    assert (np.delete(mass, sorted(seen)) == 0).all()
    assert [p.requires_grad for p in model.parameters()] == flags and model.get_input_embeddings().weight.grad is None


def test_ksl_traits_reads_pipeline_runs_and_writes_tables_and_a_figure(tmp_path, tiny_model_dir, monkeypatch):
    from click.testing import CliRunner

    from conftest import trial_project
    from kslottery.cli import main
    from kslottery.config.registry import KS_SOURCE
    from kslottery.model.loading import load_saved
    from kslottery.model.saved import save_trained

    project = trial_project(tmp_path, tiny_model_dir)
    monkeypatch.chdir(project)
    missing = CliRunner().invoke(main, ["traits", "en-ca", "--seed", "0"])
    assert missing.exit_code != 0 and "dvc repro embed-finetune@en-ca-0" in missing.output
    model, tokenizer = load_saved(project / "models" / "base")
    ids = tokenizer("Click the button", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[ids[0]] += weight[ids[0]].std()  # coherent
        weight[ids[1]] += 0.01 * torch.randn(weight.shape[1], generator=torch.Generator().manual_seed(0))
    for seed in (0, 1):
        save_trained(model, KS_SOURCE, project / "models" / "en-ca" / f"s{seed}" / KS_SOURCE, {})
        (project / "models" / "en-ca" / f"s{seed}" / "tickets.json").write_text(json.dumps(
            {"alpha": 0.05, "n_tickets": 1, "tickets": [{"token_id": ids[0]}]}))
    result = CliRunner().invoke(main, ["traits", "en-ca", "--seed", "0", "--seed", "1", "--rows", "2"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(project / "results" / "traits" / "en-ca-s1.csv")
    assert sorted(frame["row"]) == sorted(ids[:2]) and frame.set_index("row").loc[ids[0], "is_ticket"]
    assert ((frame["gradient"] > 0) == (frame["inputs"] > 0)).all()  # a row gets gradient where its token is an input
    markdown = (project / "results" / "traits.md").read_text()
    assert "Seed 0: 2 moved rows, 1 tickets." in markdown and "Logistic fit" in markdown
    assert (project / "results" / "traits.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(project / "results" / "traits" / "en-ca-simulation.csv")) == 27
