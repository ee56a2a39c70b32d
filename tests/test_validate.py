"""`ksl validate` refuses, with key, value and fix, everything a stage would die on that can be known
before training; and each stage refuses the same at its own start, in one line."""

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import stage_project
from kslottery.cli import main as ksl

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, tiny_model_dir):
    """A prepared base model, a corpus per pair and prepared splits, and a params.yaml for them."""
    root = stage_project(tmp_path, tiny_model_dir, {})
    (root / "corpus").mkdir()
    shutil.copy(root / "data" / "train.tsv", root / "corpus" / "en-ca.tsv")
    shutil.copytree(root / "data", root / "prepared" / "en-ca")
    return root


def validate(project: Path, change=None, *extra):
    raw = yaml.safe_load((project / "params.yaml").read_text())
    if change:
        change(raw)
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return CliRunner().invoke(ksl, ["validate", str(project / "params.yaml"), "--base", str(project / "base"),
                                    "--corpus", str(project / "corpus"), "--data", str(project / "prepared"), *extra])


def test_the_project_as_prepared_is_valid(project):
    result = validate(project)
    assert result.exit_code == 0 and "valid (1 pair(s): en-ca" in result.output, result.output


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(pairs=["en-ca", "en-fr"]), "pairs: en-fr has no corpus"),
    (lambda r: r["model"].update(dtype="bfloat16"), "model.dtype: bfloat16 cannot run here (no GPU"),
    (lambda r: r["train"]["lora"].update(targets=["nonexistent_proj"]),
     "train.lora.targets: 'nonexistent_proj' matches no linear module of the model"),
    (lambda r: r["train"].update(max_length=5), "max_length: 5 (of "),
    (lambda r: r["model"].update(source="nobody/no-such-model"), "hub id 'nobody/no-such-model' is not in the local"),
    (lambda r: r["model"].update(source=str(REPO / "README.md")), "is a file, not a model directory"),
])
def test_what_a_stage_would_die_on_is_refused_with_key_and_fix(project, monkeypatch, change, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = validate(project, change)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_a_key_written_twice_is_refused_as_dvc_refuses_it(project):
    path = project / "params.yaml"
    path.write_text(path.read_text() + "alpha: 0.01\n")
    result = CliRunner().invoke(ksl, ["validate", str(path)])
    assert result.exit_code == 1 and "key 'alpha' is written twice (lines" in result.output and "keep one" in result.output


def test_a_stage_refuses_the_same_at_its_start_in_one_line(project):
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["train"]["max_length"] = 5
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    args = ["finetune", "--params", project / "params.yaml", "--pair", "en-ca", "--method", "embed", "--seed", "0",
            "--base", project / "base", "--data", project / "data", "--out", project / "out",
            "--metrics", project / "m.json", "--loss-csv", project / "loss.csv"]
    result = CliRunner().invoke(ksl, [str(a) for a in args])
    assert result.exit_code == 1 and "max_length: 5 leaves no room for the target after the longest prompt" in result.output
    raw["train"]["max_length"] = 256
    raw["train"]["lora"]["targets"] = ["nonexistent_proj"]
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    args[args.index("embed")] = "lora"
    result = CliRunner().invoke(ksl, [str(a) for a in args])
    assert result.exit_code == 1 and "train.lora.targets: 'nonexistent_proj' matches no" in result.output, result.output
    assert not (project / "out").exists()
