"""Kills and reruns lose nothing: a training stage killed with SIGKILL resumes from its checkpoint
and ends with the same bytes as a run never interrupted; reruns give byte-identical outputs.

These run the real stage scripts in subprocesses on a tiny model (a few seconds each).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import stage_project

pytestmark = pytest.mark.slow  # end to end: subprocesses, dvc, minutes

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TQDM_DISABLE": "1"}
STEPS, EVERY = 400, 20


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    """params.yaml, a prepared base model and prepared splits, as the first stages leave them."""
    return stage_project(tmp_path_factory.mktemp("resume"), tiny_model_dir,
                         dict(steps=STEPS, batch_size=4, max_length=64, lr=0.05), checkpoint_every=EVERY)


def stage_command(project: Path, script: str, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "stages" / script), "--params", str(project / "params.yaml"), *args]


def finetune(project: Path, out: str) -> list[str]:
    return stage_command(project, "finetune.py", "--method", "embed", "--seed", "0", "--pair", "en-ca",
                         "--base", str(project / "base"), "--data", str(project / "data"),
                         "--out", str(project / out), "--metrics", str(project / f"{out}.json"),
                         "--loss-csv", str(project / f"{out}.loss.csv"))


def run(command: list[str]) -> str:
    result = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-3000:]}"
    return result.stderr


def outputs(project: Path, out: str) -> dict[str, bytes]:
    """Every file a training stage wrote; the model card with the output's own name taken out."""
    files = {p.name: p.read_bytes() for p in (project / out).iterdir()}
    files["README.md"] = files["README.md"].replace(str(project / out).encode(), b"OUT")
    files |= {suffix: (project / f"{out}{suffix}").read_bytes() for suffix in (".json", ".loss.csv")}
    return files


def test_killed_training_resumes_to_the_same_bytes_and_reruns_agree(project):
    run(finetune(project, "straight"))  # never interrupted
    assert not (project / ".straight.checkpoint.pt").exists()  # discarded once the outputs were written

    checkpoint = project / ".killed.checkpoint.pt"
    process = subprocess.Popen(finetune(project, "killed"), env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # kill between checkpoints, so that some steps are lost and must be redone
    assert process.poll() is None, "the stage finished before it could be killed; raise STEPS"
    process.send_signal(signal.SIGKILL)
    process.wait()

    # Nothing half-written: no output at all, only the checkpoint of a step in the middle (and
    # perhaps the temporary file of a checkpoint write the kill cut short, which the rerun removes).
    assert not (project / "killed").exists() and not (project / "killed.json").exists()
    assert not list(project.glob(".killed.*.tmp"))
    step = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < step < STEPS and step % EVERY == 0

    log = run(finetune(project, "killed"))  # the rerun
    assert f"resuming from {checkpoint} at step" in log
    assert not checkpoint.exists() and not list(project.glob(".*.checkpoint.pt.*.tmp"))
    assert outputs(project, "killed") == outputs(project, "straight")
    # Both embeddings (one run straight, one killed and resumed) give the same tickets and scores.
    for out in ("straight", "killed"):
        run(stage_command(project, "ks_select.py", "--pair", "en-ca", "--base", str(project / "base"),
                          "--embed", str(project / out), "--data", str(project / "data"),
                          "--out", str(project / f"{out}.tickets.json"),
                          "--metrics", str(project / f"{out}.ks.json"), "--histogram", str(project / f"{out}.hist.csv")))
        run(stage_command(project, "evaluate.py", "--pair", "en-ca", "--method", "embed", "--base", str(project / "base"),
                          "--model", str(project / out), "--data", str(project / "data"),
                          "--out", str(project / f"{out}.eval.json"),
                          "--translations", str(project / f"{out}.translations.tsv")))
    for suffix in (".tickets.json", ".ks.json", ".hist.csv", ".eval.json", ".translations.tsv"):
        assert (project / f"straight{suffix}").read_bytes() == (project / f"killed{suffix}").read_bytes(), suffix
    tickets = json.loads((project / "straight.tickets.json").read_text())
    assert tickets["n_tickets"] > 0
    # The histogram accounts for every moved row and every ticket, and tickets sit at D >= D_crit.
    lines = [line.split(",") for line in (project / "straight.hist.csv").read_text().splitlines()[1:]]
    critical = json.loads((project / "straight.ks.json").read_text())["critical_D"]
    assert sum(int(rows) for _, rows, _ in lines) == tickets["n_moved"]
    assert sum(int(t) for _, _, t in lines) == tickets["n_tickets"]
    assert all(int(t) == (int(rows) if float(d) >= critical - 1e-6 else 0) for d, rows, t in lines)


def test_dvc_repro_after_a_kill_just_works(tmp_path, tiny_model_dir):
    """Kill a whole `dvc repro` (its process group, SIGKILL) in the middle of the embedding tuning; the next
    `dvc repro` resumes the stage from its checkpoint and finishes; DVC then calls it up to date."""
    from test_pipeline import ENV as DVC_ENV, dvc, make_project

    project = make_project(tmp_path, tiny_model_dir)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["checkpoint_every"] = EVERY
    params["train"]["embed"]["steps"] = STEPS
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    target = "embed-finetune@en-ca-0"
    checkpoint = project / "models/en-ca/s0/.embed.checkpoint.pt"

    process = subprocess.Popen([sys.executable, "-m", "dvc", "repro", target], cwd=project, env=DVC_ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "dvc repro finished before it could be killed; raise STEPS"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (project / "models/en-ca/s0/embed").exists()

    log = dvc(["repro", target], project)
    assert "resuming from" in log
    assert not checkpoint.exists() and (project / "models/en-ca/s0/embed/embedding.safetensors").is_file()
    assert "up to date" in dvc(["status", target], project)
