"""Portable CPU numerics: the same bytes on every x86-64 machine with AVX2, whatever else it has.

PyTorch picks its CPU kernels by the widest vector ISA it finds (`ATEN_CPU_CAPABILITY`: avx2 or
avx512) and MKL picks its code path by ISA and vendor (`MKL_CBWR`); measured, each changes the bytes
a training run writes (docs/numerics.md). So, unless `KSL_NUMERICS=native`, `pin` asks for
PyTorch's AVX2 kernels and MKL's COMPATIBLE branch before torch loads: it runs when the kslottery
package is imported, which every stage script and every `ksl` command does before torch
(tests/test_numerics.py checks both). A variable already set from outside wins, so that any pin can
be measured against these. The price, measured (bench/numerics.py): about 2.3x the step time on the
default model's shape, MKL's portable branch being the slow part.

The intra-op thread count does not change the bytes where measured (1, 2 and 4 threads); on CUDA,
`deterministic_cuda` asks for deterministic algorithms (untested here: no GPU).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}
"""What `pin` sets on an x86-64 machine with AVX2: PyTorch's AVX2 kernels, and MKL's COMPATIBLE branch
(SSE2 without the approximate rcpps/rsqrtps instructions), which Intel's oneMKL developer guide lists
with AUTO as the only branches supported on non-Intel CPUs; its AVX2 branch is "available only for
Intel processors", and elsewhere MKL silently takes AUTO (measured: MKL_CBWR=AVX2 changes nothing on
an AMD CPU, and an Intel and an AMD machine write other bytes under it)."""
SWITCH = "KSL_NUMERICS"
"""`KSL_NUMERICS=native`: the kernels each library picks for this CPU (faster on wide CPUs, not portable)."""


def has_avx2() -> bool:
    """Does this x86-64 CPU have AVX2 (Linux: /proc/cpuinfo; elsewhere unknown, so no)?"""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return "avx2" in flags.split(":", 1)[-1].split()


def wanted() -> str:
    """`portable` (the default) or `native`, from KSL_NUMERICS."""
    value = os.environ.get(SWITCH, "portable").strip().lower() or "portable"
    if value not in ("portable", "native"):
        raise SystemExit(f"{SWITCH}={os.environ[SWITCH]!r}: use portable (the default) or native")
    return value


def pin() -> None:
    """Set PINS (where not set already) before torch loads, unless native numerics are asked for or
    this is no x86-64 machine with AVX2. A torch already loaded keeps its kernels: say so."""
    if wanted() == "native" or not has_avx2():
        return
    for name, value in PINS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what deterministic cuBLAS needs
    if "torch" in sys.modules and not os.environ.get("KSL_NUMERICS_QUIET"):
        import torch

        if torch.backends.cpu.get_cpu_capability().lower() != PINS["ATEN_CPU_CAPABILITY"]:
            print(f"kslottery: torch was loaded before kslottery, with {torch.backends.cpu.get_cpu_capability()} "
                  "kernels: these results are not portable; import kslottery first", file=sys.stderr)


def record() -> dict:
    """What ran, for cost files and model cards: the mode asked for, the kernels torch actually uses,
    MKL's code path and the intra-op threads."""
    import torch

    return {"numerics": wanted() if has_avx2() else "native (no AVX2 on x86-64: nothing to pin)",
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_cbwr": os.environ.get("MKL_CBWR"), "threads": torch.get_num_threads()}


def deterministic_cuda() -> None:
    """On CUDA, in portable mode: deterministic algorithms wherever PyTorch has them (cuBLAS with a
    fixed workspace, cuDNN without benchmarking); an op without one warns instead of failing.
    Covers a rerun on the same GPU model and software; not across GPU models or CUDA versions."""
    import torch

    if wanted() == "portable" and torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
