"""Benchmark: the step time of portable numerics (PyTorch's and MKL's AVX2 kernels, the default)
against native ones (KSL_NUMERICS=native: the widest kernels this CPU has), side by side.

A SmolLM2-135M-shaped LlamaForCausalLM (vocabulary 49,152, width 576, 30 layers, random weights,
untied lm_head) tunes its input embedding through the real loop (kslottery.training.loop.train,
AdamW) on the same batches; each mode runs in a fresh process (the pin must come before torch loads),
alternating, ROUNDS times. Prints the kernels each mode really used and the ratio of the medians,
and writes its section of results/bench.md. On an AVX2-only CPU both modes run AVX2 kernels, so the
ratio is about 1 by construction; on an AVX-512 CPU it is the price of portability.

    python bench/numerics.py            # 4 steps per run, 3 rounds (a few minutes)
    python bench/numerics.py --quick    # a 4-layer model, 2 steps, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from report import machine, write_section  # bench/report.py

MODES = ("portable", "native")
WORKER = r"""
import json, sys
import kslottery  # pins (or not, under KSL_NUMERICS=native) before torch loads
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from kslottery import numerics
from kslottery.config.params import TrainSettings
from kslottery.data.prompts import Example
from kslottery.model.surgery import prepare_embed
from kslottery.training.loop import train

layers, steps = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                     num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=False)
model = prepare_embed(LlamaForCausalLM(config))
generator = torch.Generator().manual_seed(0)
examples = [Example(input_ids=(ids := torch.randint(0, 49152, (48,), generator=generator).tolist()), labels=ids)
            for _ in range(8 * steps)]
settings = TrainSettings(lr=5.6e-3, steps=steps, batch_size=8, max_length=64)
result = train(model, examples, settings, pad_token_id=0, seed=0, desc="bench")
print(json.dumps({"seconds_per_step": result.cost().seconds_per_step, **numerics.record()}))
"""


def run(mode: str, layers: int, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    env |= {"KSL_NUMERICS": mode, "TQDM_DISABLE": "1"}
    finished = subprocess.run([sys.executable, "-c", WORKER, str(layers), str(steps)], env=env, capture_output=True,
                              text=True, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="results/bench.md")
    args = parser.parse_args()
    layers, steps, rounds = (4, 2, 1) if args.quick else (30, 4, 3)
    runs = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:  # alternating: a drift in the machine's speed hits both modes alike
            runs[mode].append(run(mode, layers, steps))
            print(mode, runs[mode][-1], file=sys.stderr)
    median = {mode: statistics.median(r["seconds_per_step"] for r in runs[mode]) for mode in MODES}
    ratio = median["portable"] / median["native"]
    rows = []
    for mode in MODES:
        each = ", ".join(f"{r['seconds_per_step']:.3f}" for r in runs[mode])
        first = runs[mode][0]
        rows.append(f"| {mode} | {first['cpu_capability']} | {first['mkl_cbwr'] or 'unset'} | {each} | {median[mode]:.3f} |")
    text = "\n".join([
        "# Portable vs native CPU numerics: step time",
        "",
        f"Machine: {machine()}.",
        f"Command: `python bench/numerics.py{' --quick' if args.quick else ''}`. A SmolLM2-135M-shaped model "
        f"({layers} layers, random weights) tunes its input embedding through the real loop, {steps} steps of batch 8 "
        f"x 48 tokens per run, each run a fresh process, {rounds} round(s) alternating the modes; step time is the "
        "loop's median.",
        "",
        "| mode | torch CPU kernels | MKL_CBWR | s / step, each run | median |",
        "|---|---|---|---|---:|",
        *rows,
        "",
        f"- portable / native step time: **{ratio:.2f}x**"
        + (" (this CPU has no wider kernels than AVX2: both modes ran the same ones)"
           if runs["native"][0]["cpu_capability"] == runs["portable"][0]["cpu_capability"] else ""),
    ])
    print(text)
    write_section(args.out, "numerics", text)


if __name__ == "__main__":
    main()
