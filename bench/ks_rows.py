"""Benchmark: kslottery.ks.ks_2samp_rows against scipy.stats.ks_2samp(axis=1) and one numpy sort.

Prints ratios measured side by side in one run and writes results/bench.md (with the machine).
Shapes: SmolLM2-135M (49152 x 576) and LLaMA-7B (32000 x 4096), float32, every row moved (the
worst case: the real default moves 4,122 of 49,152 rows and leaves the rest unsorted).

    python bench/ks_rows.py                 # both shapes (scipy on a row sample for the large one)
    python bench/ks_rows.py --quick         # small shapes only, a few seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import scipy
from scipy import stats

from kslottery.ks import ks_2samp_rows


def timed(function, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def bench(rows: int, d: int, scipy_rows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    before = rng.normal(size=(rows, d)).astype(np.float32)
    after = (before + rng.normal(scale=0.05, size=(rows, d))).astype(np.float32)

    ours_s = timed(lambda: ks_2samp_rows(before, after))
    sort_s = timed(lambda: np.sort(np.concatenate([before, after], axis=1), axis=1))
    # scipy on a sample of rows (it is the slow side), scaled to all rows
    sample = slice(0, min(scipy_rows, rows))
    scipy_sample_s = timed(lambda: stats.ks_2samp(before[sample], after[sample], axis=1))
    scipy_s = scipy_sample_s * rows / min(scipy_rows, rows)
    ours_stat, ours_p = ks_2samp_rows(before[sample], after[sample])
    reference = stats.ks_2samp(before[sample], after[sample], axis=1)
    identical = bool(np.array_equal(ours_stat, reference.statistic) and np.array_equal(ours_p, reference.pvalue))
    return {"shape": f"{rows} x {d}", "ours_s": ours_s, "scipy_s": scipy_s, "scipy_rows": min(scipy_rows, rows),
            "sort_s": sort_s, "vs_scipy": scipy_s / ours_s, "vs_sort": ours_s / sort_s, "identical": identical}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    parser.add_argument("--out", default="results/bench.md")
    args = parser.parse_args()
    shapes = [(4096, 576, 4096), (2000, 4096, 2000)] if args.quick else [(49152, 576, 49152), (32000, 4096, 4000)]
    results = [bench(*shape) for shape in shapes]
    lines = ["# KS over embedding rows: ours vs scipy vs one numpy sort",
             "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"{platform.system()} {platform.release()}; numpy {np.__version__}, scipy {scipy.__version__}.",
             "Command: `python bench/ks_rows.py" + (" --quick" if args.quick else "") + "`; every row moved (worst case).",
             "",
             "| shape | ours (s) | scipy axis=1 (s) | one numpy sort (s) | speed-up vs scipy | ours / sort | identical to scipy |",
             "|---|---:|---:|---:|---:|---:|:---:|"]
    for r in results:
        scipy_note = "" if r["scipy_rows"] == int(r["shape"].split(" x ")[0]) else f" (from {r['scipy_rows']:,} rows)"
        lines.append(f"| {r['shape']} | {r['ours_s']:.2f} | {r['scipy_s']:.2f}{scipy_note} | {r['sort_s']:.2f} | "
                     f"{r['vs_scipy']:.1f}x | {r['vs_sort']:.1f}x | {'yes' if r['identical'] else 'NO'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)


if __name__ == "__main__":
    main()
