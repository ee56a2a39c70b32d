"""Checkpoints of a training run, and resuming from them.

A run can checkpoint every N steps (`Checkpoint`): the trainable tensors, the optimizer state, the
losses and dev scores so far and the RNG state go into one file, written atomically. A rerun of the
same run (same model weights, examples, settings and seed: `fingerprint`) finds it, and the loop
replays the batch order up to that step and goes on, ending with the same weights, bit for bit, as
a run that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from kslottery import KSLotteryError
from kslottery.atomic import atomic_file, remove_stale_temporaries

log = logging.getLogger(__name__)


class CheckpointError(KSLotteryError, RuntimeError):
    pass


@dataclass(frozen=True)
class Checkpoint:
    """Where a run saves its state, and how often; `key` names the run beyond what the loop sees
    (method, pair, rows), so that a checkpoint is never resumed by a different run."""

    path: Path
    every: int
    key: str = ""

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"checkpoint every {self.every} steps: must be >= 1 (pass no checkpoint for none)")

    def discard(self) -> None:
        """Remove the checkpoint (once the run's outputs are safely written)."""
        self.path.unlink(missing_ok=True)


def fingerprint(model, examples, settings, seed: int, key: str) -> str:
    """A digest of everything that decides a run's trajectory: settings, seed, examples, the
    model's starting weights (a strided sample of every tensor: cheap even at 7B) and `key`."""
    digest = hashlib.blake2b(digest_size=16)
    settings = {k: v for k, v in dataclasses.asdict(settings).items() if k != "log_every"}
    digest.update(json.dumps({"params": settings, "seed": seed, "key": key}, sort_keys=True).encode())
    for e in examples:
        digest.update(repr((e.input_ids, e.labels)).encode())
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            flat = parameter.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 1024)].to("cpu", torch.float64)
            digest.update(f"{name}{tuple(parameter.shape)}{parameter.requires_grad}".encode())
            digest.update(sample.numpy().tobytes())
    return digest.hexdigest()


def save(checkpoint: Checkpoint, run_id: str, step: int, model, optimizer, losses: list[float],
         dev: list[dict], best: dict[str, torch.Tensor] | None = None) -> None:
    """Write the state after `step` steps to a temporary file, then rename it over the old one
    (`best`: early stopping's best weights so far)."""
    state = {
        "run_id": run_id,
        "step": step,
        "losses": list(losses),
        "dev": json.dumps(dev),  # a string: torch.load(weights_only=True) reads it back
        "trainable": {n: p.detach().to("cpu") for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
    }
    if best is not None:
        state["best"] = best
    with atomic_file(checkpoint.path) as tmp:
        torch.save(state, tmp)


@dataclass(frozen=True)
class Resumed:
    """What a matching checkpoint restores beyond the weights and the optimizer."""

    step: int
    rng: torch.Tensor
    losses: list[float]
    dev: list[dict]
    best: dict[str, torch.Tensor] | None = None  # early stopping's best weights so far


def resume(checkpoint: Checkpoint, run_id: str, model, optimizer, desc: str) -> Resumed | None:
    """Load a matching checkpoint into model and optimizer; return its step, RNG state, losses and
    dev scores (None when there is none to resume: start from step 0)."""
    remove_stale_temporaries(checkpoint.path)  # a write cut by a kill
    if not checkpoint.path.is_file():
        return None
    try:
        state = torch.load(checkpoint.path, map_location="cpu", weights_only=True)
    except Exception as err:  # unreadable: start over rather than fail a run that can still succeed
        log.warning("%s: ignoring unreadable checkpoint %s (%s); starting from step 0", desc, checkpoint.path, err)
        return None
    if state.get("run_id") != run_id:
        log.warning("%s: %s belongs to another run (other weights, data or settings); starting from step 0",
                    desc, checkpoint.path)
        return None
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(trainable) != set(state["trainable"]):
        raise CheckpointError(f"{checkpoint.path}: its tensors do not match the model's trainable ones; delete it")
    with torch.no_grad():
        for name, parameter in trainable.items():
            parameter.copy_(state["trainable"][name])
    optimizer.load_state_dict(state["optimizer"])
    log.info("%s: resuming from %s at step %d", desc, checkpoint.path, state["step"])
    return Resumed(step=state["step"], rng=state["rng"], losses=list(state["losses"]),
                   dev=json.loads(state.get("dev", "[]")), best=state.get("best"))
