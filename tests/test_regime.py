"""`ksl regime` end to end on a tiny model: each setting tunes the embedding as the stage does, then
ks-select runs on it; the trial table, its markdown and plot."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kslottery.studies.regime import COLUMNS, merge_trials
from conftest import trial_project


@pytest.mark.slow
def test_ksl_regime_maps_settings_to_tickets_and_their_classes(tmp_path, tiny_model_dir):
    project = trial_project(tmp_path, tiny_model_dir)
    params = yaml.safe_load((project / "params.yaml").read_text())
    env = {**os.environ, "TQDM_DISABLE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def ksl(*args):
        result = subprocess.run([sys.executable, "-m", "kslottery.cli", "regime", *args], cwd=project,
                                capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    ksl("--lr", "0.5", "--lr", "1e-5", "--schedule", "cosine", "--warmup", "0.34")
    trials = pd.read_csv(project / "results" / "regime" / "en-ca-s0.csv")
    assert list(trials.columns) == COLUMNS and len(trials) == 2
    assert set(trials["schedule"]) == {"cosine"} and set(trials["steps"]) == {3} and set(trials["warmup"]) == {0.34}
    small, large = trials.sort_values("lr").to_dict("records")
    assert large["n_tickets"] > small["n_tickets"]  # a larger lr moves more rows past the KS threshold
    for row in (small, large):
        assert sum(row[f"n_{c}"] for c in ("template", "punctuation", "frequent", "content")) == row["n_tickets"]
        assert row["n_tickets"] <= row["n_moved"] and 0 <= row["dev_chrf++"] <= 100
    assert re.search(r"\| cosine +\|", (project / "results" / "regime.md").read_text())
    assert (project / "results" / "regime.png").stat().st_size > 5000
    assert params == yaml.safe_load((project / "params.yaml").read_text())  # the trials never touch params.yaml
    assert not list((project / "models").glob("en-ca*"))  # nor the pipeline's outputs
    ksl("--redraw")


def test_a_new_trial_of_the_same_settings_replaces_the_old_row():
    row = dict.fromkeys(COLUMNS, 0) | {"lr": 1e-3, "schedule": "constant", "warmup": 0.0, "steps": 125, "alpha": 0.05}
    trials = merge_trials(merge_trials(None, [row | {"n_tickets": 5}]), [row | {"n_tickets": 7}, row | {"lr": 1e-2}])
    assert len(trials) == 2 and trials.loc[trials["lr"] == 1e-3, "n_tickets"].item() == 7


def test_the_grid_crosses_lrs_and_schedules_and_keeps_the_current_settings_elsewhere():
    from types import SimpleNamespace

    from kslottery.studies.regime import DEFAULT_LRS, settings_grid

    current = SimpleNamespace(lr=5.6e-3, schedule="constant", warmup=0.0, steps=125, optimizer="adamw", momentum=0.0)
    default = settings_grid(current)
    assert [s["lr"] for s in default] == sorted(DEFAULT_LRS) and {s["schedule"] for s in default} == {"constant"}
    assert all(s["steps"] == 125 and s["warmup"] == 0.0 for s in default)
    assert {(s["optimizer"], s["momentum"]) for s in default} == {("adamw", 0.0)}
    paper = settings_grid(current, (1e-3, 2e-5, 1e-3), ("cosine", "linear"), 0.03, 375)
    assert [(s["schedule"], s["lr"]) for s in paper] == [("cosine", 2e-5), ("cosine", 1e-3), ("linear", 2e-5),
                                                          ("linear", 1e-3)]
    assert all(s["steps"] == 375 and s["warmup"] == 0.03 for s in paper)
    sgd = settings_grid(current, (1.0,), optimizer="sgd", momentum=0.9)
    assert [(s["optimizer"], s["momentum"], s["lr"]) for s in sgd] == [("sgd", 0.9, 1.0)]


def test_a_trial_file_from_before_the_optimizer_columns_reads_as_adamw(tmp_path):
    from kslottery.studies.regime import read_trials

    old_columns = [c for c in COLUMNS if c not in ("optimizer", "momentum")]
    csv = tmp_path / "en-ca-s0.csv"
    pd.DataFrame([dict.fromkeys(old_columns, 0) | {"lr": 1e-3, "schedule": "constant"}]).to_csv(csv, index=False)
    trials = read_trials(csv)
    assert list(trials.columns) == COLUMNS and trials.loc[0, "optimizer"] == "adamw" and trials.loc[0, "momentum"] == 0
    sgd = dict.fromkeys(COLUMNS, 0) | {"lr": 1e-3, "schedule": "constant", "optimizer": "sgd"}
    assert len(merge_trials(trials, [sgd])) == 2  # another optimizer is another trial
