"""tools/gpu_check.py, the few-minute check of the pipeline's first steps meant for a CUDA machine, in
its CPU mode on a tiny model: every stage runs, and it reports the device, s/step and peak memory."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from conftest import tiny_pairs

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # six stage processes


def test_the_gpu_check_runs_every_stage_and_reports_what_it_measured(tmp_path, tiny_model_dir, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "tools" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(train_size=24, dev_size=4, test_size=8)
    params["train"].update(batch_size=4, max_length=64)
    params["model"] = {"source": str(tiny_model_dir), "dtype": "float32"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    corpus = tmp_path / "en-ca.tsv"
    corpus.write_text("".join(f"{s}\t{t}\n" for s, t in tiny_pairs(60)), encoding="utf-8")
    assert gpu_check.main(["--params", str(tmp_path / "params.yaml"), "--corpus", str(corpus), "--steps", "2",
                           "--sentences", "4", "--keep", str(tmp_path / "work")]) == 0
    out = capsys.readouterr().out
    for stage in ("prepare-model", "prepare-data", "embed-finetune", "ks-select", "ticket-finetune", "evaluate-base"):
        assert stage in out, stage
    assert "s/step" in out and "peak memory" in out and "device cpu" in out and "on 4 sentences" in out
