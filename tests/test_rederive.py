"""tools/rederive.py's fast parts: its reading of `dvc status --json` (which stages no longer match the
lock) and its refusal of bad arguments before any rerun."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location("rederive", REPO / "tools" / "rederive.py")
rederive = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rederive)

FRESH_CLONE = {  # what `dvc status --json` says of a fresh clone: no models, nothing changed
    "prepare-model": [{"changed outs": {"models/base": "not in cache"}}],
    "embed-finetune@en-ca-0": [{"changed deps": {"models/base": "deleted", "data/prepared/en-ca": "deleted"}},
                               {"changed outs": {"models/en-ca/s0/embed": "not in cache"}}],
}


def test_a_fresh_clone_is_not_stale():
    assert rederive.stale_stages(FRESH_CLONE) == []


def test_changed_code_params_outputs_or_command_are_stale():
    status = {**FRESH_CLONE,
              "table": [{"changed deps": {"src/kslottery/report": "modified"}}],
              "ks-select@en-ca-0": [{"changed deps": {"models/base": "deleted", "params.yaml": {"alpha": "modified"}}}],
              "evaluate-base@en-ca": [{"changed outs": {"metrics/eval/en-ca/base.json": "modified"}}],
              "certify@en-ca-0": ["changed command"]}
    assert rederive.stale_stages(status) == ["table", "ks-select@en-ca-0", "evaluate-base@en-ca", "certify@en-ca-0"]


def test_a_bad_pair_or_step_count_is_refused_before_any_rerun(capsys):
    assert rederive.main(["--pair", "xx-yy"]) == 1
    assert "--pair xx-yy: params.yaml's pairs are" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        rederive.main(["--steps", "0"])
    assert refused.value.code == 2
    assert "--steps 0: give at least 1" in capsys.readouterr().err
