"""The one training loop. It trains whatever requires grad; methods.py decides what that is.

Causal-LM loss on target tokens only (labels are -100 on the prompt; the output layer runs only at
the positions that predict one), a fixed number of optimizer steps over a seeded shuffle of the data
(cycled as often as needed), AdamW (fused where torch has a kernel for it) or SGD. With an
`evaluate` function (the stages pass one that translates the dev split and scores it), the model is
scored at the end of every epoch and at the last step: the dev curve and the dev score that
learning rates are calibrated on (`ksl calibrate`). With `patience` (early stopping), a run ends once
its dev chrF++ has not improved for that many epochs and keeps its best epoch's weights.

Several processes (`accelerate launch` with a DDP, FSDP or DeepSpeed config) split every batch
between them: each takes batch_size / num_processes rows, and the loss is normalised by the target
tokens of the whole batch, so the gradient, the steps and the learning rate are those of one
process. Only the main process writes (checkpoints here; outputs in the stage).

With a `Checkpoint` (checkpoint.py) the run saves its state every N steps; a rerun of the same run
replays the batch order up to the last one and goes on, ending with the same weights, bit for bit.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import psutil
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedType, broadcast
from torch.utils.data import DataLoader
from transformers import get_scheduler

from kslottery import KSLotteryError
from kslottery.training import checkpoint as checkpoints
from kslottery.training.checkpoint import Checkpoint
from kslottery.training.cost import (TrainingCost, gradient_bytes, machine, median_seconds, optimizer_state_bytes,
                            peak_memory, reset_peak_memory)
from kslottery.config.params import TrainSettings
from kslottery.progress import progress
from kslottery.data.prompts import IGNORE_INDEX, Example, collate

log = logging.getLogger(__name__)


class TrainingError(KSLotteryError, RuntimeError):
    pass


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # one per optimizer step
    lrs: list[float] = field(default_factory=list)  # the learning rate of each step this process ran
    dev: list[dict] = field(default_factory=list)  # {epoch, step, scores...} at each epoch's end and the last step
    seconds: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    main_process: bool = True  # False on the other processes of a multi-process run: they write nothing
    gathered_state: dict | None = None  # FSDP: the whole state dict, gathered on the main process
    step_seconds: list[float] = field(default_factory=list)  # wall time of each step this process ran
    gradient_bytes: int | None = 0  # the first step's gradients, before the optimizer step (None: sharded)
    optimizer_state_bytes: int | None = 0  # after the last step (None: sharded)
    peak_memory: tuple[int, str] = (0, "rss")  # cost.peak_memory at the end
    machine: str = ""  # cost.machine: what it ran on
    kept: dict | None = None  # early stopping: the dev row ({epoch, step, scores}) whose weights were kept

    def cost(self) -> TrainingCost:
        """What the run cost on this machine (not deterministic: kept out of `metrics`)."""
        return TrainingCost(seconds_per_step=median_seconds(self.step_seconds), steps_timed=len(self.step_seconds),
                            peak_memory_bytes=self.peak_memory[0], memory_kind=self.peak_memory[1],
                            gradient_bytes=self.gradient_bytes, optimizer_state_bytes=self.optimizer_state_bytes,
                            trainable_params=self.trainable_params, machine=self.machine)

    def metrics(self) -> dict:
        """Deterministic summary (no wall time: two identical runs must give identical files)."""
        summary = {
            "steps": len(self.losses),
            "first_loss": round(self.losses[0], 4),
            "final_loss": round(sum(self.losses[-10:]) / len(self.losses[-10:]), 4),  # mean of last 10 steps
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
        }
        if self.kept is not None:  # early stopping: the epochs run, and the one whose weights were kept
            summary |= {"epochs": self.dev[-1]["epoch"], "kept_epoch": self.kept["epoch"]}
        if self.dev:  # the trained model's dev scores (the last evaluation, or the kept one)
            scores = self.kept if self.kept is not None else self.dev[-1]
            summary |= {f"dev_{name}": value for name, value in scores.items() if name not in ("epoch", "step")}
        return summary

    def loss_csv(self) -> str:
        return "step,loss\n" + "".join(f"{i},{loss:.5f}\n" for i, loss in enumerate(self.losses))

    def dev_csv(self) -> str:
        """One row per dev evaluation: epoch, step and the scores (empty without evaluations)."""
        columns = list(self.dev[0]) if self.dev else ["epoch", "step"]
        return ",".join(columns) + "\n" + "".join(",".join(str(row[c]) for c in columns) + "\n" for row in self.dev)


def make_optimizer(parameters: list[torch.nn.Parameter], params: TrainSettings) -> torch.optim.Optimizer:
    if params.optimizer == "adamw":
        # One fused kernel instead of a dozen elementwise passes: 6.7x faster AdamW steps for full
        # fine-tuning on CPU. Same update rule, float rounding of another order.
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters)
        return torch.optim.AdamW(parameters, lr=params.lr, weight_decay=params.weight_decay, fused=fused)
    if params.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=params.lr, momentum=params.momentum, weight_decay=params.weight_decay)
    raise ValueError(f"unknown optimizer {params.optimizer!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, params: TrainSettings):
    """The learning rate per step: transformers' schedule `params.schedule`, with the first
    `params.warmup` share of the steps rising linearly from 0 (constant: `constant_with_warmup`)."""
    name = "constant_with_warmup" if params.schedule == "constant" and params.warmup else params.schedule
    return get_scheduler(name, optimizer, num_warmup_steps=round(params.warmup * params.steps),
                         num_training_steps=params.steps)


def train(model, examples: list[Example], params: TrainSettings, pad_token_id: int, seed: int = 0,
          desc: str = "train", checkpoint: Checkpoint | None = None,
          evaluate: Callable[[object], dict] | None = None, stop_after: int | None = None) -> TrainResult:
    """Run `params.steps` optimizer steps on `examples` (batch order drawn from `seed`); returns the losses.

    With `checkpoint`, save the state every `checkpoint.every` steps and resume from a matching
    checkpoint if one is there (the caller discards it once the outputs are written).
    With `evaluate` (model -> {score name: value}), call it after every epoch and after the last
    step; the results go to `TrainResult.dev`. It sees the model in eval mode, on the main process.
    With `params.patience` as well, stop early on its DEV_SCORE (see `BestEpoch`)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise TrainingError("nothing to train: no parameter requires grad (did the method's surgery run?)")
    if len(examples) < params.batch_size:
        raise TrainingError(f"{len(examples)} training examples are fewer than batch_size={params.batch_size}")
    result = TrainResult(trainable_params=sum(p.numel() for p in trainable),
                         total_params=sum(p.numel() for p in model.parameters()))
    log.info("%s: %s trainable of %s parameters (%.4f%%)", desc, f"{result.trainable_params:,}",
             f"{result.total_params:,}", 100 * result.trainable_params / result.total_params)

    run_id = checkpoints.fingerprint(model, examples, params, seed, checkpoint.key) if checkpoint else ""
    torch.manual_seed(seed)
    accelerator = make_accelerator(params.batch_size)
    processes = accelerator.num_processes
    if checkpoint is not None and accelerator.distributed_type in SHARDED:
        log.warning("%s: no checkpoints under %s (the optimizer state is sharded); a killed run starts over",
                    desc, accelerator.distributed_type)
        checkpoint = None
    if evaluate is not None and accelerator.distributed_type in SHARDED:
        log.warning("%s: no dev evaluation under %s (the weights are sharded over the processes)",
                    desc, accelerator.distributed_type)
        evaluate = None
    best = BestEpoch(params.patience) if params.patience else None
    if best is not None and evaluate is None and stop_after is None:
        raise TrainingError(f"{desc}: patience {params.patience} stops on dev scores, but this run has no dev "
                            "evaluation (no dev pairs, or sharded weights); set patience: 0")
    batches = LengthGroupedBatches([len(e.input_ids) for e in examples], params.batch_size, seed)
    loader = DataLoader(examples, batch_sampler=batches, collate_fn=partial(collate, pad_token_id=pad_token_id))
    optimizer = make_optimizer(trainable, params)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    scheduler = make_scheduler(optimizer, params)  # stepped here once per step, on every process alike
    log.info("%s: %d steps, batch %d%s, %s lr %g (%s%s), device %s, %s", desc, params.steps, params.batch_size,
             f" ({params.batch_size // processes} on each of {processes} processes)" if processes > 1 else "",
             params.optimizer, params.lr, params.schedule, f", warmup {params.warmup:g}" if params.warmup else "",
             accelerator.device, trainable[0].dtype)

    stream = _forever(loader)
    first_step = 0
    if checkpoint is not None:
        resumed = checkpoints.resume(checkpoint, run_id, accelerator.unwrap_model(model), optimizer, desc)
        if resumed is not None:
            first_step, result.losses[:], result.dev[:] = resumed.step, resumed.losses, resumed.dev
            if best is not None:
                best.restore_state(resumed.best, result.dev)
            # Replay the batch order up to the checkpoint, then restore the RNG as it was there (the
            # data loader draws from it at every pass, so the order of these two matters).
            with warnings.catch_warnings():  # the schedule's replay, with no optimizer step: as intended
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
                for _ in range(first_step):
                    next(stream)
                    scheduler.step()
            torch.set_rng_state(resumed.rng)

    model.train()
    reset_peak_memory(accelerator.device)
    start = time.perf_counter()
    quiet = {} if accelerator.is_main_process else {"disable": True}  # one bar, not one per process
    bar = progress(range(first_step, params.steps), desc=desc, unit="step", initial=first_step,
                   total=params.steps, **quiet)
    for step in bar:
        if stop_after is not None and step >= stop_after:  # the first steps of the run, to check them
            log.warning("%s: stopped after %d of %d steps (--stop-after): a check, not a run", desc, step,
                        params.steps)
            break
        step_start = time.perf_counter()
        batch = next(stream)
        nll, targets = target_nll(model, batch)  # this process's rows
        if processes > 1:
            targets = accelerator.reduce(targets, "sum")  # the whole batch's target tokens
        # DDP averages gradients over the processes: scale back up to a sum over the batch, / its tokens
        accelerator.backward(nll * processes / targets)
        batch_nll = accelerator.reduce(nll.detach(), "sum") if processes > 1 else nll.detach()
        loss = (batch_nll / targets).item()  # mean over the whole batch's target tokens
        if not math.isfinite(loss):
            raise TrainingError(f"{desc}: loss is {loss} at step {step}; lower the learning rate")
        result.lrs.append(scheduler.get_last_lr()[0])
        if not result.step_seconds:
            result.gradient_bytes = gradient_bytes(p for p in model.parameters() if p.requires_grad)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.losses.append(loss)
        result.step_seconds.append(time.perf_counter() - step_start)
        if step % params.log_every == 0 or step == params.steps - 1:
            bar.set_postfix(loss=f"{loss:.3f}")
        done = step + 1
        if evaluate is not None and (done % len(batches) == 0 or done == params.steps):
            stop = False
            if accelerator.is_main_process:
                scores = _evaluate(evaluate, accelerator.unwrap_model(model))
                result.dev.append({"epoch": round(done / len(batches), 3), "step": done, **scores})
                log.info("%s: epoch %g (step %d), dev %s", desc, result.dev[-1]["epoch"], done,
                         ", ".join(f"{k} {v}" for k, v in scores.items()))
                stop = best is not None and best.update(result.dev[-1], accelerator.unwrap_model(model))
            accelerator.wait_for_everyone()
            if best is not None and processes > 1:  # the main process decides for all
                stop = bool(broadcast(torch.tensor([int(stop)], device=accelerator.device)).item())
            if stop and done < params.steps:
                if accelerator.is_main_process:
                    log.info("%s: no dev %s gain in %d epoch(s) after epoch %g: stopping at epoch %g", desc,
                             DEV_SCORE, params.patience, best.row["epoch"], done / len(batches))
                break
        if checkpoint is not None and done % checkpoint.every == 0 and done < params.steps:
            if accelerator.is_main_process:
                checkpoints.save(checkpoint, run_id, done, accelerator.unwrap_model(model), optimizer, result.losses,
                                 result.dev, best=best.weights if best is not None else None)
            accelerator.wait_for_everyone()
    model.eval()
    if best is not None and best.row is not None:  # the main process (the only one that evaluates)
        result.kept = best.keep(accelerator.unwrap_model(model), desc)
    result.optimizer_state_bytes = optimizer_state_bytes(getattr(optimizer, "optimizer", optimizer))
    if accelerator.distributed_type in SHARDED:  # one process's shard is not the method's cost
        result.gradient_bytes = result.optimizer_state_bytes = None
    result.peak_memory = peak_memory(accelerator.device)
    result.machine = machine(accelerator.device)
    accelerator.wait_for_everyone()
    result.main_process = accelerator.is_main_process
    if accelerator.distributed_type == DistributedType.FSDP:  # sharded weights: gather them to write them
        result.gathered_state = accelerator.get_state_dict(model)
    result.seconds = time.perf_counter() - start
    log.info("%s: done in %.0f s (%.2f s per step), loss %.3f -> %.3f, peak memory %.2f GiB (%s)", desc,
             result.seconds, median_seconds(result.step_seconds), result.losses[0], result.losses[-1],
             result.peak_memory[0] / 2**30, result.peak_memory[1])
    return result


SHARDED = (DistributedType.FSDP, DistributedType.DEEPSPEED)
DEV_SCORE = "chrf++"  # what early stopping watches: the score learning rates are calibrated on


class BestEpoch:
    """Early stopping: the best dev evaluation so far and a copy of the trainable weights it scored.

    `update` after each evaluation says whether the run has gone `patience` evaluations without
    beating it (strictly); `keep` puts the best weights back at the end."""

    def __init__(self, patience: int):
        self.patience = patience
        self.row: dict | None = None  # the best dev row
        self.weights: dict[str, torch.Tensor] | None = None
        self.since = 0  # evaluations since the best one

    def update(self, row: dict, model) -> bool:
        if self._better(row):
            self.row, self.since = row, 0
            self.weights = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}
            return False
        self.since += 1
        return self.since >= self.patience

    def restore_state(self, weights: dict[str, torch.Tensor] | None, dev: list[dict]) -> None:
        """Pick up where a checkpoint left off: the best of its dev rows, with the weights it saved."""
        for row in dev:
            if self._better(row):
                self.row, self.since = row, 0
            else:
                self.since += 1
        self.weights = weights

    def _better(self, row: dict) -> bool:
        """Whether `row` beats the best so far (strictly: a tie is no gain)."""
        if DEV_SCORE not in row:
            raise TrainingError(f"early stopping watches dev {DEV_SCORE}, but the dev scores are {sorted(row)}")
        return self.row is None or row[DEV_SCORE] > self.row[DEV_SCORE]

    def keep(self, model, desc: str) -> dict:
        """Load the best weights into `model` (unless the last evaluation was the best); return its row."""
        if self.since:
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    if parameter.requires_grad:
                        parameter.copy_(self.weights[name])
            log.info("%s: kept epoch %g (dev %s %s)", desc, self.row["epoch"], DEV_SCORE, self.row[DEV_SCORE])
        return self.row


def _evaluate(evaluate: Callable[[object], dict], model) -> dict:
    """Call `evaluate` on the model in eval mode and without autograd, then put it back to training."""
    model.eval()
    try:
        with torch.no_grad():
            return evaluate(model)
    finally:
        model.train()


def make_accelerator(batch_size: int) -> Accelerator:
    """The Accelerator of a run, as `accelerate launch` configured it (one process without it).

    split_batches: every process takes its share of each batch, so the global batch is
    `batch_size` however many processes there are. Without a GPU, several processes talk over gloo."""
    accelerator = Accelerator(dataloader_config=DataLoaderConfiguration(split_batches=True),
                              cpu=not torch.cuda.is_available())
    if accelerator.num_processes > 1:
        log.info("accelerate: %s over %d processes", accelerator.distributed_type, accelerator.num_processes)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise TrainingError(f"{launched} processes were launched but accelerate joined {accelerator.num_processes}; "
                            "launch with `accelerate launch --config_file configs/accelerate/...`")
    if not torch.cuda.is_available():
        # `accelerate launch` sets OMP_NUM_THREADS=1 for every process it starts; on a CPU the
        # processes share the cores instead (one process: all of them, as a plain `python` would).
        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
        threads = int(os.environ.get("KSL_THREADS") or max(1, cores // accelerator.num_processes))
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
            log.info("CPU: %d thread(s) per process for %d process(es)", threads, accelerator.num_processes)
    if batch_size % accelerator.num_processes:
        raise TrainingError(f"batch_size={batch_size} does not split over {accelerator.num_processes} processes; "
                            f"use a multiple of {accelerator.num_processes}")
    if accelerator.distributed_type == DistributedType.DEEPSPEED:  # our batches come from a batch sampler
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = (
            batch_size // accelerator.num_processes)
    return accelerator


def target_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the target tokens (labels != -100): transformers'
    causal-LM loss, computed as `target_nll`."""
    nll, targets = target_nll(model, batch)
    return nll / targets


def target_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed next-token cross-entropy over the target tokens, their number). The output layer
    runs only at the positions (columns) that predict a target token of some row: the prompt's
    logits, half of a (B, T, V) tensor here, are never built."""
    labels = batch["labels"]
    next_labels = labels[:, 1:]  # position t predicts token t + 1
    columns = (next_labels != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
    if columns.numel() == 0:
        raise TrainingError("a batch has no target token to learn (every label is -100)")
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   logits_to_keep=columns).logits  # (B, len(columns), V)
    targets = next_labels[:, columns]
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
    return nll, (targets != IGNORE_INDEX).sum()


# ---------------------------------------------------------------------------------------------
# Batches


class LengthGroupedBatches:
    """Batches of similar length in random order: little padding, still a seeded shuffle.

    Each pass shuffles all examples, sorts them by length within windows of `window` batches,
    cuts the windows into batches and shuffles the batches (the idea of transformers'
    `group_by_length`). On the default data this halves the padded tokens per step.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, window: int = 50):
        self.lengths = lengths
        self.batch_size = batch_size
        self.window = window * batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.lengths) // self.batch_size  # incomplete last batch dropped

    def __iter__(self):
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        batches = []
        for start in range(0, len(order), self.window):
            window = sorted(order[start:start + self.window], key=lambda i: self.lengths[i])
            batches += [window[i:i + self.batch_size] for i in range(0, len(window), self.batch_size)]
        batches = [b for b in batches if len(b) == self.batch_size]
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index]


def _forever(loader):
    while True:
        yield from loader
