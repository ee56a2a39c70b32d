"""The `ksl` commands a researcher types by hand: tickets and translate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kslottery.cli import main
from kslottery.model.surgery import prepare_tokens
from kslottery.model.saved import save_trained
from kslottery.model.loading import load_saved, load_source_model, save_model
from kslottery.config.params import ModelParams

REPO = Path(__file__).resolve().parents[1]


def test_tickets_lists_them_in_rank_order_and_names_the_fix_when_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here, at first
    run_dir = tmp_path / "models/en-ca/s1"
    run_dir.mkdir(parents=True)
    record = {"alpha": 0.05, "top_k": None, "rank_by": "p", "vocab_size": 100, "n_moved": 9, "n_significant": 3,
              "n_tickets": 3, "tickets": [{"token_id": 7, "token": "Ġcat", "D": 0.5, "p": 1e-6, "l2": 2.0},
                                          {"token_id": 3, "token": "Ġdog", "D": 0.4, "p": 1e-4, "l2": 1.0},
                                          {"token_id": 5, "token": "s", "D": 0.3, "p": 0.01, "l2": 0.5}]}
    (run_dir / "tickets.json").write_text(json.dumps(record))
    result = CliRunner().invoke(main, ["tickets", "en-ca", "--seed", "1", "--models", str(tmp_path / "models"),
                                       "--top", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "3 tickets at alpha 0.05" in lines[0]
    assert "'Ġcat'" in lines[2] and "'Ġdog'" in lines[3] and len(lines) == 4  # header + top 2
    missing = CliRunner().invoke(main, ["tickets", "en-ro", "--models", str(tmp_path / "models")])
    assert missing.exit_code != 0 and "dvc repro ks-select@en-ro-0" in missing.output
    # With a params.yaml that does not list the pair, the fix is to list it.
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    unlisted = CliRunner().invoke(main, ["tickets", "en-ro", "--models", str(tmp_path / "models")])
    assert unlisted.exit_code != 0 and "params.yaml has pairs ['en-ca']" in unlisted.output


def test_translate_with_an_untrained_ticket_adapter_matches_the_base(tmp_path, tiny_model_dir):
    base_dir = tmp_path / "base"  # as prepare-model writes it: lm_head untied
    save_model(*load_source_model(ModelParams(source=str(tiny_model_dir))), base_dir)
    model, _ = load_saved(base_dir)
    adapter = tmp_path / "ticket"
    save_trained(prepare_tokens(model, rows=[3, 4, 5]), "ticket", adapter, {"pair": "en-ca", "trainable_params": 48})
    env = {**os.environ, "TQDM_DISABLE": "1"}

    def ksl(*args):
        result = subprocess.run([sys.executable, "-m", "kslottery.cli", "translate", "--base", str(base_dir),
                                 "--params", str(REPO / "params.yaml"), *args, "the cat", "a dog runs"],
                                capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    base = ksl()
    assert base.count("->") == 2 and base.startswith("the cat\n  -> ")
    assert ksl("--adapter", str(adapter)) == base  # TrainableTokens untouched: exactly the base model


def test_every_stage_is_a_ksl_command_with_its_own_help(tmp_path):
    runner = CliRunner()
    listing = runner.invoke(main, ["--help"]).output
    for script in sorted((REPO / "stages").glob("*.py")):
        if script.stem == "__init__":
            continue
        name = script.stem.replace("_", "-")
        assert name in listing, name
        if name != "table":  # `ksl table` prints the table from the committed metrics
            result = runner.invoke(main, [name, "--help"])
            assert result.exit_code == 0 and f"Usage: ksl {name}" in result.output and "--params" in result.output
            assert "DVC stage" in result.output.split("Options:")[0], name  # what the stage does, before its options
    for name in main.list_commands(None):  # the hand-typed ones too: calibrate, tickets, translate, use, ...
        result = runner.invoke(main, [name, "--help"])
        usage = result.output.splitlines()[0] if result.output else ""
        assert result.exit_code == 0 and usage.startswith("Usage: ") and f" {name}" in usage, name
    # Arguments reach the stage, and its refusals come out as one line and a non-zero exit.
    (tmp_path / "corpus.tsv").write_text("One.\tU.\n", encoding="utf-8")
    result = runner.invoke(main, ["prepare-data", "--params", str(REPO / "params.yaml"), "--pair", "en-ca",
                                  "--corpus", str(tmp_path / "corpus.tsv"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "corpus has 1 usable pairs but the splits need 1150" in result.output
    assert not (tmp_path / "out").exists()


def test_ksl_help_lists_every_command_with_a_whole_sentence():
    listing = CliRunner().invoke(main, ["--help"]).output.split("Commands:")[1]
    entries = " ".join(listing.split()).split(". ")
    assert len(entries) >= len(main.list_commands(None)) and "..." not in listing, listing


def test_experiments_leaves_the_committed_table_alone_without_experiments(tmp_path):
    metrics = {"metrics/summary/en-ca/ticket.json": {"data": {"chrf++": 24.7, "bleu": 5.9}},
               "metrics/summary/en-ca/ks-select.json": {"data": {"n_tickets": 2478}}}
    only_workspace = [{"rev": "workspace", "data": {"params": {"params.yaml": {"data": {"alpha": 0.05}}},
                                                    "metrics": metrics}}]
    (tmp_path / "exp.json").write_text(json.dumps(only_workspace))
    (tmp_path / "experiments.md").write_text("the committed sweep\n")
    result = CliRunner().invoke(main, ["experiments", "--exp-json", str(tmp_path / "exp.json"), "--out", str(tmp_path)])
    assert result.exit_code == 1 and "nothing to compare" in result.output and "dvc exp pull" in result.output
    assert (tmp_path / "experiments.md").read_text() == "the committed sweep\n"


@pytest.mark.slow
def test_ksl_runs_its_stages_from_a_regular_install(tmp_path):
    """Not only from this checkout: a plain `pip install .` carries the stage scripts in the package
    (kslottery.stages), so `ksl STAGE` works from anywhere."""
    import shutil

    tree, target = tmp_path / "tree", tmp_path / "site"  # a copy: the build writes build/ beside pyproject.toml
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "src", "stages"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tree / name)
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(target), str(tree)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    assert (target / "kslottery" / "stages" / "ks_select.py").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    for args in (["--help"], ["ks-select", "--help"]):
        result = subprocess.run([sys.executable, "-c", "import sys; from kslottery.cli import main; main()", *args],
                                cwd=tmp_path, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "ks-select" in result.stdout and "finetune" in result.stdout if args == ["--help"] else \
            "--histogram" in result.stdout
    where = subprocess.run([sys.executable, "-c", "import kslottery.stages as s; print(s.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env=env).stdout
    assert where.startswith(str(target)), where  # the installed copy, not this checkout


def test_table_refuses_a_metrics_directory_that_is_not_there_and_leaves_out_none(tmp_path):
    runner = CliRunner()
    typo = runner.invoke(main, ["table", "--eval-dir", str(REPO / "metrics/eval"),
                                "--certify-dir", str(tmp_path / "metrics/certfy")])
    assert typo.exit_code == 2 and "certfy is not a directory" in typo.output and "`none`" in typo.output
    left_out = runner.invoke(main, ["table", "--eval-dir", str(REPO / "metrics/eval"),
                                    "--certify-dir", "none", "--ks-dir", "none"])
    full = runner.invoke(main, ["table", "--eval-dir", str(REPO / "metrics/eval"),
                                "--certify-dir", str(REPO / "metrics/certify"), "--ks-dir", str(REPO / "metrics/ks")])
    assert left_out.exit_code == 0 and full.exit_code == 0, left_out.output + full.output
    assert "KS tickets" in left_out.output and len(left_out.output) < len(full.output)
