"""The shift-by-frequency view: counts per training input, groups, and what each group reports."""

import json

import numpy as np
import pandas as pd

from kslottery.lottery.ks import ks_2samp_rows
from kslottery.studies.shifts import input_counts, relative_change, shift_by_frequency


def test_input_counts_counts_inputs_not_occurrences_and_skip_the_last_token():
    counts = input_counts([[1, 1, 2, 4], [2, 3, 0], [2, 0]], vocab_size=5)
    assert counts.tolist() == [0, 1, 3, 1, 0]  # 4 and 0 only ever stand last: no gradient reaches them


def test_relative_change_is_mean_absolute_change_over_the_row_spread():
    before = np.array([[0.0, 2.0], [1.0, 1.0]])
    after = np.array([[1.0, 2.0], [2.0, 1.0]])
    assert relative_change(before, after).tolist() == [0.5, 0.0]  # row 2 is constant: reported as 0


def test_groups_separate_rare_from_frequent_rows_and_count_tickets():
    rng = np.random.default_rng(0)
    before = rng.normal(size=(6, 64)).astype(np.float32)
    after = before.copy()
    after[1] += 3.0                     # a token of one input, moved far: a ticket
    after[4] += 1e-3 * rng.normal(size=64).astype(np.float32)  # a token of every input, barely moved
    counts = np.array([0, 1, 1, 2, 500, 500])
    statistic, pvalue = ks_2samp_rows(before, after)
    frame = shift_by_frequency(before, after, statistic, np.flatnonzero(pvalue < 0.05), counts)
    by_group = frame.set_index("inputs with the token")
    assert list(by_group.index) == ["0", "1", "2-3", "301+"]  # empty groups are left out
    assert by_group.loc["1", "rows"] == 2 and by_group.loc["1", "moved"] == 1 and by_group.loc["1", "tickets"] == 1
    assert by_group.loc["301+", "moved"] == 1 and by_group.loc["301+", "tickets"] == 0
    assert by_group.loc["1", "median change / std (moved)"] > 1 > by_group.loc["301+", "median change / std (moved)"]
    assert by_group.loc["2-3", "moved"] == 0 and np.isnan(by_group.loc["2-3", "% of moved that are tickets"])


def test_ksl_shifts_reads_a_pipeline_run_and_names_the_missing_stage(tmp_path, tiny_model_dir, monkeypatch):
    """On the layout `dvc repro` leaves: first without the embedding tuning (the error names the
    stage to run), then with a tuned embedding in which one seen row moved far."""
    import torch
    from click.testing import CliRunner

    from conftest import trial_project
    from kslottery.cli import main
    from kslottery.config.registry import KS_SOURCE
    from kslottery.model.loading import load_saved
    from kslottery.model.saved import save_trained

    project = trial_project(tmp_path, tiny_model_dir)
    monkeypatch.chdir(project)
    missing = CliRunner().invoke(main, ["shifts", "en-ca"])
    assert missing.exit_code != 0 and "dvc repro embed-finetune@en-ca-0" in missing.output
    model, tokenizer = load_saved(project / "models" / "base")
    seen = tokenizer("Click", add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        model.get_input_embeddings().weight[seen] += 5.0
    save_trained(model, KS_SOURCE, project / "models" / "en-ca" / "s0" / KS_SOURCE, {})
    no_tickets = CliRunner().invoke(main, ["shifts", "en-ca"])
    assert no_tickets.exit_code != 0 and "dvc repro ks-select@en-ca-0" in no_tickets.output
    (project / "models" / "en-ca" / "s0" / "tickets.json").write_text(json.dumps(
        {"alpha": 0.05, "n_tickets": 1, "tickets": [{"token_id": seen}]}))
    result = CliRunner().invoke(main, ["shifts", "en-ca"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(project / "results" / "shifts" / "en-ca-s0.csv")
    assert frame["moved"].sum() == 1 and frame["tickets"].sum() == 1
    assert frame["rows"].sum() == len(tokenizer)
    assert (project / "results" / "shifts" / "en-ca-s0.md").read_text().count("\n|") == len(frame) + 2  # header, rule, groups
