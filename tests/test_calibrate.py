"""Learning-rate calibration on dev: which key each method's lr is, the trial table, and
`ksl calibrate` end to end on a tiny model (each trial a real training stage under accelerate)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kslottery.studies.calibrate import (CalibrationError, best_lrs, check_trial_inputs, default_grid, lr_key, merge_trials,
                                 read_trials, to_markdown, with_lr)
from kslottery.config.registry import names, trained

TRAINED = names(trained)
from kslottery.config.params import load_params
from conftest import stage_project, trial_project

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("method", TRAINED)
def test_with_lr_sets_the_lr_the_method_trains_with(method, tmp_path):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_lr(raw, method, 0.123)))
    changed = load_params(path)
    original = load_params(REPO / "params.yaml")
    assert changed.train_settings(method).lr == 0.123
    others = [m for m in TRAINED if lr_key(m) != lr_key(method)]
    assert others and all(changed.train_settings(m).lr == original.train_settings(m).lr for m in others)
    assert raw == yaml.safe_load((REPO / "params.yaml").read_text())  # the input is not modified


def test_each_lr_key_is_a_train_section_of_params_yaml():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for method in TRAINED:
        section = lr_key(method).split(".")
        assert section[0] == "train" and section[-1] == "lr" and "lr" in raw["train"][section[1]], method


def test_default_grid_is_half_a_decade_either_side():
    assert default_grid(1e-2) == [0.0032, 0.01, 0.032]
    assert default_grid(5e-5) == [1.6e-05, 5e-05, 0.00016]


def row(method, lr, chrf, seconds=1):
    return {"method": method, "lr": lr, "dev_chrf++": chrf, "dev_bleu": chrf / 4, "final_loss": 1.0,
            "trainable_params": 10, "seconds": seconds}


def test_a_new_trial_replaces_the_old_one_of_the_same_lr():
    old = merge_trials(None, [row("embed", 0.01, 20.0), row("lora", 0.001, 18.0)])
    new = merge_trials(old, [row("embed", 0.01, 22.0, seconds=9), row("embed", 0.03, 21.0)])
    assert len(new) == 3
    assert new.set_index(["method", "lr"]).loc[("embed", 0.01), "dev_chrf++"] == 22.0
    assert best_lrs(new) == {"embed": 0.01, "lora": 0.001}


def test_markdown_marks_the_best_the_current_and_an_edge():
    trials = merge_trials(None, [row("embed", 0.003, 20.0), row("embed", 0.01, 25.0), row("embed", 0.03, 24.0),
                                 row("full", 1e-5, 10.0), row("full", 5e-5, 30.0)])
    markdown = to_markdown(trials, "en-ca", 0, {"embed": 0.01, "full": 1e-5}, dev_pairs=50)
    lines = {line.split("|")[1].strip() + " " + line.split("|")[2].strip(): line for line in markdown.splitlines()
             if line.startswith("| ") and "method" not in line}
    assert "**25.00**" in lines["embed 0.01"] and "params.yaml, best" in lines["embed 0.01"]
    assert "**" not in lines["embed 0.03"] and "best" not in lines["embed 0.03"]
    assert "params.yaml" in lines["full 1e-05"] and "**30.00**" in lines["full 5e-05"]
    assert "edge of the lrs tried (try beyond it): full." in markdown  # embed's best is inside its range
    assert "50 dev pairs" in markdown


def test_missing_inputs_are_named_before_any_training(tmp_path, tiny_model_dir):
    project = stage_project(tmp_path, tiny_model_dir, {})
    params = load_params(project / "params.yaml")
    with pytest.raises(CalibrationError) as err:
        check_trial_inputs(params, "ticket", "en-ro", 7, tmp_path / "nowhere", tmp_path / "nodata",
                           tmp_path / "tickets.json")
    message = str(err.value)
    for fix in ("pair 'en-ro' is not in params pairs", "seed 7 is not in params seeds [", "dvc repro prepare-model",
                "dvc repro prepare-data@en-ro", "dvc repro ks-select@en-ro-7"):
        assert fix in message, fix
    # A dev split of a single pair is enough; an empty one is named.
    dev = project / "data" / "dev.tsv"
    dev.write_text(dev.read_text().splitlines()[0] + "\n")
    check_trial_inputs(params, "embed", "en-ca", 0, project / "base", project / "data", tmp_path / "tickets.json")
    dev.write_text("")
    with pytest.raises(CalibrationError, match="dev.tsv holds no pairs"):
        check_trial_inputs(params, "embed", "en-ca", 0, project / "base", project / "data", tmp_path / "tickets.json")


def test_a_file_that_is_not_a_trial_table_is_refused(tmp_path):
    assert read_trials(tmp_path / "none.csv") is None
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CalibrationError, match="lacks the columns"):
        read_trials(tmp_path / "other.csv")
    merge_trials(None, [row("embed", 0.01, 20.0)]).to_csv(tmp_path / "trials.csv", index=False)
    assert read_trials(tmp_path / "trials.csv")["dev_chrf++"].tolist() == [20.0]


@pytest.mark.slow
def test_ksl_calibrate_trains_each_lr_and_keeps_every_trial(tmp_path, tiny_model_dir):
    project = trial_project(tmp_path, tiny_model_dir)
    params = yaml.safe_load((project / "params.yaml").read_text())
    env = {**os.environ, "TQDM_DISABLE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def ksl(*args):
        result = subprocess.run([sys.executable, "-m", "kslottery.cli", "calibrate", *args], cwd=project,
                                capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    ksl("embed", "--lr", "0.5", "--lr", "0.001")
    trials = pd.read_csv(project / "results" / "calibration" / "en-ca-s0.csv")
    assert list(trials["lr"]) == [0.001, 0.5] and set(trials["method"]) == {"embed"}
    assert trials["dev_chrf++"].between(0, 100).all() and (trials["trainable_params"] > 0).all()
    assert trials["final_loss"].iloc[1] < trials["final_loss"].iloc[0]  # 3 steps at 0.5 learn more than at 0.001
    out = ksl("lora", "--lr", "0.01")
    trials = pd.read_csv(project / "results" / "calibration" / "en-ca-s0.csv")
    assert len(trials) == 3 and "lora" in set(trials["method"])  # added to the embed trials, not replacing them
    markdown = (project / "results" / "calibration.md").read_text()
    assert "en-ca, seed 0" in markdown and "| lora | 0.01 |" in markdown and "4 dev pairs" in markdown
    assert (project / "results" / "calibration.png").stat().st_size > 5000
    assert "wrote " in out
    assert params == yaml.safe_load((project / "params.yaml").read_text())  # the trials never touch params.yaml
    assert not list((project / "models").glob("en-ca*"))  # nor the pipeline's outputs

    # Choose lora's lr in params.yaml, then redraw: the table marks the new value, and nothing trains.
    params["train"]["lora"]["lr"] = 0.01
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ksl("--redraw")
    lora = [line for line in (project / "results" / "calibration.md").read_text().splitlines() if "| lora |" in line]
    assert len(lora) == 1 and "params.yaml" in lora[0]
    assert len(pd.read_csv(project / "results" / "calibration" / "en-ca-s0.csv")) == 3
    missing = subprocess.run([sys.executable, "-m", "kslottery.cli", "calibrate"], cwd=project, capture_output=True,
                             text=True, env=env)
    assert missing.returncode == 2 and "name the METHOD" in missing.stderr
