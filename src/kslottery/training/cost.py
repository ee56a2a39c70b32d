"""What a method costs to train, measured by the one training loop: time per step, peak memory, the
bytes its gradients and optimizer state hold, and the size of what it saves.

These numbers describe the machine as much as the method, so they never enter the deterministic
training metrics: each training stage writes them to a cost file of its own
(metrics/cost/{pair}/s{seed}/{method}.json), which the table reads for its cost columns.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch


@dataclass
class TrainingCost:
    seconds_per_step: float      # median over the steps this run took (dev evaluations and checkpoints excluded)
    steps_timed: int
    peak_memory_bytes: int       # the process's peak RSS on a CPU; torch's peak allocation on a GPU
    memory_kind: str             # "rss" or "cuda"
    gradient_bytes: int | None   # the gradients of one step, as they stood before the optimizer step
    optimizer_state_bytes: int | None  # AdamW's moments (or SGD's nothing), after the last step
    # (both None under FSDP or DeepSpeed: a process holds a shard of them, not the method's bytes)
    trainable_params: int
    machine: str = ""            # machine(): what the run ran on

    def record(self, **extra) -> dict:
        return {**asdict(self), **extra}


def median_seconds(step_seconds: list[float]) -> float:
    """The median time of a step (the first steps warm caches up; the median ignores them)."""
    return round(statistics.median(step_seconds), 4) if step_seconds else float("nan")


def reset_peak_memory(device: torch.device) -> None:
    """Start a GPU's peak count afresh (at the start of training, after an earlier stage in the same
    process); a process's peak RSS cannot be reset, and includes loading the model."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, kind): torch's peak allocation on a GPU; the process's peak resident set on a CPU
    (which includes loading the model: what the machine must hold)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024), "rss"  # bytes on macOS, KiB on Linux


def machine(device: torch.device) -> str:
    """One line naming what a run ran on: the GPU, or the CPU (its name, family/model/stepping, the
    vector instructions torch's kernels use, its cache sizes and cores: what decides the order of
    floating-point sums), and torch's version. Runs whose lines differ can differ in the last digits
    of every loss and score (docs/results.md#noise); runs whose lines agree usually do not."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        cpu = _cpuinfo()
        name = cpu.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
        ids = " ".join(f"{key} {cpu[field]}" for key, field in (("family", "cpu family"), ("model", "model"),
                                                                ("stepping", "stepping")) if field in cpu)
        hardware = ", ".join(part for part in (f"{name} ({ids})" if ids else name,
                                               torch.backends.cpu.get_cpu_capability(), _caches(),
                                               f"{os.cpu_count()} cores") if part)
    return f"{hardware}; torch {torch.__version__}"


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none, e.g. on macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n")[0]
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first.splitlines())}


def _caches() -> str:
    """The first CPU's data and unified caches from sysfs, e.g. "L1d 32K L2 512K L3 32768K" ("" if unknown)."""
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind, level, size = ((index / name).read_text().strip() for name in ("type", "level", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            caches.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    return " ".join(caches)


def gradient_bytes(parameters) -> int:
    """Bytes of the gradients the parameters hold now (call it before they are zeroed)."""
    return sum(p.grad.nelement() * p.grad.element_size() for p in parameters if p.grad is not None)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer's per-parameter state tensors (AdamW: both moments and the step count)."""
    return sum(value.nelement() * value.element_size()
               for state in optimizer.state.values() for value in state.values() if torch.is_tensor(value))


def disk_bytes(path: str | Path) -> int:
    """Bytes of a saved output: the file, or every file under the directory."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
