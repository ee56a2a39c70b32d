"""The one training loop. It trains whatever requires grad; methods.py decides what that is.

Causal-LM loss on target tokens only (labels are -100 on the prompt), a fixed number of optimizer
steps over a seeded shuffle of the data (cycled as often as needed), AdamW or SGD.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from functools import partial

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from kslottery.params import TrainParams
from kslottery.prompts import Example, collate

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    pass


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # one per optimizer step
    seconds: float = 0.0
    trainable_params: int = 0
    total_params: int = 0

    def metrics(self) -> dict:
        """Deterministic summary (no wall time: two identical runs must give identical files)."""
        return {
            "steps": len(self.losses),
            "first_loss": round(self.losses[0], 4),
            "final_loss": round(sum(self.losses[-10:]) / len(self.losses[-10:]), 4),  # mean of last 10 steps
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
        }

    def loss_csv(self) -> str:
        return "step,loss\n" + "".join(f"{i},{loss:.5f}\n" for i, loss in enumerate(self.losses))


def make_optimizer(parameters: list[torch.nn.Parameter], params: TrainParams) -> torch.optim.Optimizer:
    if params.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=params.lr, weight_decay=params.weight_decay)
    if params.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=params.lr, weight_decay=params.weight_decay)
    raise ValueError(f"unknown optimizer {params.optimizer!r}")


def train(model, examples: list[Example], params: TrainParams, pad_token_id: int, seed: int = 0,
          desc: str = "train") -> TrainResult:
    """Run `params.steps` optimizer steps on `examples` (batch order drawn from `seed`); returns the losses."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise TrainingError("nothing to train: no parameter requires grad (did the method's surgery run?)")
    if len(examples) < params.batch_size:
        raise TrainingError(f"{len(examples)} training examples are fewer than batch_size={params.batch_size}")
    result = TrainResult(trainable_params=sum(p.numel() for p in trainable),
                         total_params=sum(p.numel() for p in model.parameters()))
    log.info("%s: %s trainable of %s parameters (%.4f%%)", desc, f"{result.trainable_params:,}",
             f"{result.total_params:,}", 100 * result.trainable_params / result.total_params)

    torch.manual_seed(seed)
    accelerator = Accelerator()
    batches = LengthGroupedBatches([len(e.input_ids) for e in examples], params.batch_size, seed)
    loader = DataLoader(examples, batch_sampler=batches, collate_fn=partial(collate, pad_token_id=pad_token_id))
    optimizer = make_optimizer(trainable, params)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    log.info("%s: %d steps, batch %d, %s lr %g, device %s", desc, params.steps, params.batch_size,
             params.optimizer, params.lr, accelerator.device)

    model.train()
    start = time.perf_counter()
    stream = _forever(loader)
    progress = tqdm(range(params.steps), desc=desc, unit="step", dynamic_ncols=True)
    for step in progress:
        batch = next(stream)
        loss = model(**batch).loss  # mean over target tokens
        if not math.isfinite(loss.item()):
            raise TrainingError(f"{desc}: loss is {loss.item()} at step {step}; lower the learning rate")
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        result.losses.append(loss.item())
        if step % params.log_every == 0 or step == params.steps - 1:
            progress.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    result.seconds = time.perf_counter() - start
    log.info("%s: done in %.0f s, loss %.3f -> %.3f", desc, result.seconds, result.losses[0], result.losses[-1])
    return result


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
