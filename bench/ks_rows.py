"""Benchmark: kslottery.lottery.ks.ks_2samp_rows against scipy.stats.ks_2samp(axis=1) and one numpy sort.

Prints times measured side by side in one run and writes its section of results/bench.md (with the machine).
Shapes: SmolLM2-135M (49152 x 576) and LLaMA-7B (32000 x 4096), float32, in two cases: every row
moved (the worst case) and 8% of rows moved (the real default moves 4,122 of 49,152 rows; the rest
are not sorted at all). Also timed: the torch code that GPU tensors go through, run on the CPU
(one thread, like numpy's sort).

    python bench/ks_rows.py                 # both shapes (scipy on a row sample, scaled up)
    python bench/ks_rows.py --quick         # small shapes only, a few seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy
import torch
from scipy import stats

from kslottery.lottery import ks
from report import write_section  # bench/report.py (bench/ is on sys.path when run as a script)

MOVED_SHARE = {"all rows moved": 1.0, "8% of rows moved": 0.08}


def timed(function, repeat: int) -> tuple[float, object]:
    """Best wall time of `repeat` calls (the first call also pays for fresh memory), and the last result."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def sort_in_place(merged: np.ndarray) -> float:
    """The sort alone: an in-place sort of rows already merged, memory already touched."""
    best = float("inf")
    for _ in range(3):
        rows = merged.copy()
        start = time.perf_counter()
        rows.sort(axis=1)
        best = min(best, time.perf_counter() - start)
    return best


def bench(rows: int, d: int, scipy_rows: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    before = rng.normal(size=(rows, d)).astype(np.float32)
    noise = rng.normal(scale=0.05, size=(rows, d)).astype(np.float32)
    results = []
    for case, share in MOVED_SHARE.items():
        after = before.copy()
        moved = np.sort(rng.choice(rows, size=round(share * rows), replace=False))
        after[moved] += noise[moved]
        if share == 1.0:  # the reference sorts every row, whatever moved: timed once, in the first case
            sort_s, _ = timed(lambda: np.sort(np.concatenate([before, after], axis=1), axis=1), 3)
            sort_alone_s = sort_in_place(np.concatenate([before, after], axis=1))
        ours_s, (statistic, pvalue) = timed(lambda: ks.ks_2samp_rows(before, after), 3)
        torch_s, torch_gaps = timed(lambda: ks._ecdf_gaps_torch(torch.from_numpy(before), torch.from_numpy(after)), 2)
        # scipy on a sample of rows (it is the slow side, and skips nothing), scaled to all rows
        sample = np.sort(rng.choice(rows, size=min(scipy_rows, rows), replace=False))
        scipy_sample_s, reference = timed(lambda: stats.ks_2samp(before[sample], after[sample], axis=1), 1)
        results.append({
            "shape": f"{rows} x {d}", "case": case, "ours_s": ours_s, "torch_s": torch_s,
            "scipy_s": scipy_sample_s * rows / len(sample), "scipy_rows": len(sample),
            "sort_s": sort_s, "sort_alone_s": sort_alone_s,
            "identical": bool(np.array_equal(statistic[sample], reference.statistic)
                              and np.array_equal(pvalue[sample], reference.pvalue)),
            "torch_identical": bool(np.array_equal(torch_gaps, np.rint(statistic * d).astype(np.int64))),
        })
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    parser.add_argument("--out", help="default results/bench.md; a --quick run writes only where --out says")
    args = parser.parse_args()
    torch.set_num_threads(1)  # like numpy's sort; with 2 OpenMP threads on a busy machine torch's times scatter 10x
    shapes = [(4096, 576, 4096), (2000, 4096, 500)] if args.quick else [(49152, 576, 12288), (32000, 4096, 2000)]
    load_before = os.getloadavg()[0]
    results = [r for shape in shapes for r in bench(*shape)]
    load_after = os.getloadavg()[0]
    lines = ["# KS over embedding rows: ours vs scipy vs one numpy sort",
             "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"{platform.system()} {platform.release()}; numpy {np.__version__}, scipy {scipy.__version__}, "
             f"torch {torch.__version__} (1 thread); "
             f"load average {load_before:.1f} at the start, {load_after:.1f} at the end.",
             "Command: `python bench/ks_rows.py" + (" --quick" if args.quick else "") + "`; float32. Times are the "
             "best of 3 runs (torch: of 2; scipy: 1 run on a row sample, scaled to all rows).",
             "One sort = `np.sort(np.concatenate([before, after], axis=1), axis=1)`, fresh memory included; "
             "sort alone = an in-place sort of the merged rows, memory already touched.",
             "torch = the torch code that GPU tensors use, run here on the CPU (CPU tensors go through numpy).",
             "",
             "| shape | case | ours (s) | scipy axis=1 (s) | one sort (s) | sort alone (s) | vs scipy "
             "| ours / one sort | ours / sort alone | torch on CPU (s) | identical to scipy | torch = numpy |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|"]
    for r in results:
        cells = [r["shape"], r["case"], f"{r['ours_s']:.2f}", f"{r['scipy_s']:.1f} (from {r['scipy_rows']:,} rows)",
                 f"{r['sort_s']:.2f}", f"{r['sort_alone_s']:.2f}", f"{r['scipy_s'] / r['ours_s']:.0f}x",
                 f"{r['ours_s'] / r['sort_s']:.2f}x", f"{r['ours_s'] / r['sort_alone_s']:.2f}x", f"{r['torch_s']:.1f}",
                 "yes" if r["identical"] else "NO", "yes" if r["torch_identical"] else "NO"]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or (None if args.quick else "results/bench.md")  # a smoke run never replaces the record
    if out:
        write_section(out, "ks_rows", text)  # only this benchmark's section of the file


if __name__ == "__main__":
    main()
