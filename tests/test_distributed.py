"""Scale-out mechanics on a CPU: embed-finetune over 2 processes (accelerate launch, gloo) ends where
1 process does, and the trainable rows of a bf16 model train in float32 (an update of 1e-5 stays)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import stage_project
from kslottery.model.surgery import prepare_embed, prepare_tokens
from kslottery.model.loading import load_source_model
from kslottery.config.params import ModelParams

REPO = Path(__file__).resolve().parents[1]
STEPS = 6
TOLERANCE = 1e-5  # max |difference| of any embedding weight, 2 processes vs 1, after STEPS AdamW steps

# Two CPU processes: the DDP launcher (torchrun) with the processes joining over gloo, as train.py
# asks when there is no GPU. The same keys as configs/accelerate/ddp.yaml but for the count and
# the mixed precision (none on a CPU).
TWO_PROCESSES = {"compute_environment": "LOCAL_MACHINE", "distributed_type": "MULTI_GPU", "num_machines": 1,
                 "num_processes": 2, "machine_rank": 0, "mixed_precision": "no", "use_cpu": False,
                 "main_process_port": 29571, "downcast_bf16": "no"}


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    root = stage_project(tmp_path_factory.mktemp("ddp"), tiny_model_dir,
                         dict(steps=STEPS, batch_size=8, max_length=64, lr=0.01), checkpoint_every=0)
    (root / "two.yaml").write_text(yaml.safe_dump(TWO_PROCESSES))
    return root


def launch(project: Path, config: Path, out: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
               str(REPO / "stages" / "finetune.py"), "--params", str(project / "params.yaml"),
               "--method", "embed", "--seed", "0", "--pair", "en-ca", "--base", str(project / "base"),
               "--data", str(project / "data"), "--out", str(project / out),
               "--metrics", str(project / f"{out}.json"), "--loss-csv", str(project / f"{out}.loss.csv")]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def losses(path: Path) -> list[float]:
    return [float(line.split(",")[1]) for line in path.read_text().splitlines()[1:]]


@pytest.mark.slow
def test_embed_finetune_on_two_processes_ends_where_one_process_does(project):
    one = launch(project, REPO / "configs" / "accelerate" / "single.yaml", "one")
    assert one.returncode == 0, one.stderr[-3000:]
    two = launch(project, project / "two.yaml", "two")
    assert two.returncode == 0, two.stderr[-3000:]
    assert "batch 8 (4 on each of 2 processes)" in two.stderr  # the batch really was split
    # accelerate launch starts every process with OMP_NUM_THREADS=1; on a CPU they share the cores instead
    cores = psutil.cpu_count(logical=False) or os.cpu_count()
    if cores > 1:
        assert f"CPU: {cores} thread(s) per process for 1 process(es)" in one.stderr

    single = load_file(project / "one" / "embedding.safetensors")["weight"]
    double = load_file(project / "two" / "embedding.safetensors")["weight"]
    base = load_file(next((project / "base").glob("*.safetensors")))
    base_embedding = next(v for k, v in base.items() if "embed_tokens" in k)
    moved = (single - base_embedding).abs().max()
    assert moved > 100 * TOLERANCE  # training did move the rows: the comparison below means something
    assert (double - single).abs().max() <= TOLERANCE
    assert losses(project / "two.loss.csv") == pytest.approx(losses(project / "one.loss.csv"), abs=1e-4)
    assert not list(project.glob("two/*.tmp")) and (project / "two" / "README.md").is_file()  # one writer


@pytest.mark.slow
def test_a_batch_that_does_not_split_over_the_processes_is_refused(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["batch_size"] = 5
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = launch(project, project / "two.yaml", "odd")
    finally:
        params["train"]["batch_size"] = 8
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert result.returncode != 0
    assert "batch_size=5 does not split over 2 processes; use a multiple of 2" in result.stderr
    assert not (project / "odd").exists()


# ---------------------------------------------------------------------------------------------
# bf16: trainable rows in float32


@pytest.fixture
def bf16_model(tiny_model_dir):
    model, _ = load_source_model(ModelParams(source=str(tiny_model_dir)))
    return model.to(torch.bfloat16)  # as a bf16 checkpoint loads on a GPU


def one_small_step(model, size: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Run forward and backward (the rows get a real gradient), then move every trainable value by
    exactly `size` with SGD; return the trainable tensor before and after."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == 1
    (parameter,) = trainable
    before = parameter.detach().clone()
    ids = torch.tensor([[5, 9, 40, 7, 5, 9]])
    output = model(input_ids=ids, labels=ids)
    output.loss.backward()
    assert parameter.grad is not None and parameter.grad.dtype == torch.float32
    parameter.grad = torch.full_like(parameter, -1.0)  # SGD, lr = size: every value moves by +size
    torch.optim.SGD([parameter], lr=size).step()
    return before, parameter.detach()


def test_ticket_rows_of_a_bf16_model_train_in_float32(bf16_model):
    model = prepare_tokens(bf16_model, rows=[5, 9, 40])
    assert model.get_input_embeddings().base_layer.weight.dtype == torch.bfloat16  # the model stays bf16
    before, after = one_small_step(model)
    assert after.dtype == torch.float32
    assert torch.allclose(after - before, torch.full_like(before, 1e-5), rtol=1e-2)  # kept, not rounded away
    rounded = before.to(torch.bfloat16) + torch.tensor(1e-5, dtype=torch.bfloat16)
    assert (rounded == before.to(torch.bfloat16)).float().mean() > 0.5  # most bf16 rows would have lost it


def test_the_embedding_of_a_bf16_model_trains_in_float32(bf16_model, tmp_path):
    from kslottery.model.saved import load_embedding, save_trained

    model = prepare_embed(bf16_model)
    assert model.get_input_embeddings()(torch.tensor([[5]])).dtype == torch.bfloat16  # the layers see bf16
    before, after = one_small_step(model)
    assert after.dtype == torch.float32
    assert torch.allclose(after - before, torch.full_like(before, 1e-5), rtol=1e-2)
    save_trained(model, "embed", tmp_path / "embed", {"trainable_params": after.numel()})
    assert torch.equal(load_embedding(tmp_path / "embed"), after)  # saved in float32, nothing rounded


@pytest.mark.parametrize("rows", [None, [1, 5]])
def test_target_rows_of_a_bf16_model_train_in_float32(bf16_model, rows):
    from kslottery.model.surgery import prepare_target

    name = "model.layers.0.mlp.down_proj"
    model = prepare_target(bf16_model, rows={name: rows})
    assert model.get_submodule("model.layers.1.mlp.down_proj").weight.dtype == torch.bfloat16  # the rest stays bf16
    hidden = torch.randn(1, 3, 32, dtype=torch.bfloat16)
    assert model.get_submodule(name)(hidden).dtype == torch.bfloat16  # the next layer sees bf16
    before, after = one_small_step(model)
    assert after.dtype == torch.float32
    assert torch.allclose(after - before, torch.full_like(before, 1e-5), atol=1e-7)  # kept, not rounded away
