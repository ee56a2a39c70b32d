"""Portable numerics: every stage process and `ksl` command runs PyTorch's and MKL's AVX2 kernels on an
x86-64 machine with AVX2 (whatever wider ISA it has), unless KSL_NUMERICS=native; a pin set from
outside wins; the stage scripts load kslottery before torch, so the pin comes first."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kslottery import numerics

REPO = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "numpy", "transformers", "peft", "accelerate", "scipy", "safetensors"}
PINNED = numerics.has_avx2()


def capability(env: dict, code: str = "import kslottery, torch; print(torch.backends.cpu.get_cpu_capability())") -> str:
    clean = {k: v for k, v in os.environ.items() if k not in (*numerics.PINS, numerics.SWITCH)}
    return subprocess.run([sys.executable, "-c", code], env=clean | env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_every_stage_script_loads_kslottery_before_torch():
    for script in sorted((REPO / "stages").glob("*.py")):
        order = []
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                order += [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                order.append(node.module.split(".")[0])
        heavy = [i for i, name in enumerate(order) if name in HEAVY]
        if heavy:
            assert "kslottery" in order and order.index("kslottery") < heavy[0], script.name


@pytest.mark.skipif(not PINNED, reason="no x86-64 CPU with AVX2: nothing is pinned")
def test_the_pin_reaches_torch_and_a_switch_or_an_outside_value_wins():
    assert capability({}) == "AVX2"
    native = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                            env={k: v for k, v in os.environ.items() if k not in numerics.PINS},
                            capture_output=True, text=True).stdout.strip()
    assert capability({"KSL_NUMERICS": "native"}) == native  # the switch: what torch picks by itself
    assert capability({"ATEN_CPU_CAPABILITY": "default"}) == "DEFAULT"  # from outside: kept, for measuring
    mkl = capability({}, "import kslottery, os; print(os.environ['MKL_CBWR'])")
    assert mkl == numerics.PINS["MKL_CBWR"]


def test_a_stage_process_reports_the_kernels_it_ran_with(tmp_path, tiny_model_dir):
    """Through the stage itself: its cost record says which kernels torch used inside the process."""
    from conftest import stage_project

    project = stage_project(tmp_path, tiny_model_dir, dict(steps=2, batch_size=4), checkpoint_every=0)
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINS} | {"TQDM_DISABLE": "1"}
    command = [sys.executable, str(REPO / "stages/finetune.py"), "--params", str(project / "params.yaml"),
               "--method", "embed", "--seed", "0", "--pair", "en-ca", "--base", str(project / "base"),
               "--data", str(project / "data"), "--out", str(project / "out"), "--metrics", str(project / "m.json"),
               "--loss-csv", str(project / "loss.csv"), "--cost", str(project / "cost.json")]
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    cost = json.loads((project / "cost.json").read_text())
    if PINNED:
        assert cost["numerics"] == "portable" and cost["cpu_capability"] == "AVX2"
        assert cost["mkl_cbwr"] == numerics.PINS["MKL_CBWR"]
    assert "numerics: " in (project / "out" / "README.md").read_text()  # and the model card says so


def test_a_bad_switch_value_is_refused_in_one_line():
    result = subprocess.run([sys.executable, "-c", "import kslottery"], env={**os.environ, "KSL_NUMERICS": "fast"},
                            capture_output=True, text=True)
    assert result.returncode != 0 and "KSL_NUMERICS='fast': use portable (the default) or native" in result.stderr
    assert "Traceback" not in result.stderr
