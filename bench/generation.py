"""Benchmark: batched generation (kslottery.translate.translate, KV cache) against one sentence at a time.

The default model (models/base, as prepare-model saved it) translates the first N test sentences of
data/prepared/en-ca/test.tsv, prompted with params.yaml's prompt.template, greedily, with the same
max_new_tokens, twice: in batches of evaluate.batch_size (left-padded) and with batch_size=1. Both go
through the same function; only the batch size differs. Tokens are the generated token ids,
recorded at model.generate (translate() returns strings only): per sentence, the new tokens before
the first eos/pad (pad is eos here), so a row's padding after it stopped is not counted, and the
same count is made in both runs. Prints sentences/s, tokens/s, the speed-up and how many outputs are
identical, and writes its section of results/bench.md.

    python bench/generation.py              # 40 sentences, batch 20 vs 1 (a minute or two on 2 cores)
    python bench/generation.py --quick      # 4 sentences, 16 new tokens, a few seconds
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from kslottery.corpus import read_pairs
from kslottery.models import load_saved
from kslottery.params import load_params
from kslottery.prompts import format_prompt
from kslottery.translate import translate
from report import machine, write_section  # bench/report.py

TARGET_SPEEDUP = 4  # the floor on batched / one-at-a-time tokens/s


class GeneratedTokens:
    """Wraps model.generate on one model instance and counts the tokens each call generated."""

    def __init__(self, model, stop_id: int):
        self.model, self.stop_id, self.generate = model, stop_id, model.generate
        self.count = 0  # generated tokens
        self.row_steps = 0  # rows x decoding steps computed, finished rows included
        model.generate = self  # an instance attribute: translate() calls it like the method

    def __call__(self, **kwargs):
        generated = self.generate(**kwargs)
        new = generated[:, kwargs["input_ids"].shape[1]:]  # (B, new)
        stopped = new == self.stop_id
        # tokens before the first eos/pad of each row (all of them where the row never hit one)
        self.count += int(torch.where(stopped.any(dim=1), stopped.int().argmax(dim=1), new.shape[1]).sum())
        self.row_steps += new.numel()  # a batch decodes until its longest row stops
        return generated

    def restore(self) -> None:
        del self.model.generate


def timed_translate(model, tokenizer, counter: GeneratedTokens, prompts: list[str], batch_size: int,
                    max_new_tokens: int, repeat: int) -> dict:
    """Best wall time of `repeat` runs of translate(); the outputs and generated tokens of the last."""
    best = float("inf")
    for _ in range(repeat):
        counter.count = counter.row_steps = 0
        start = time.perf_counter()
        outputs = translate(model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens,
                            desc=f"batch {batch_size}")
        best = min(best, time.perf_counter() - start)
    return {"batch_size": batch_size, "seconds": best, "outputs": outputs, "tokens": counter.count,
            "row_steps": counter.row_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 sentences, 16 new tokens: a smoke run")
    parser.add_argument("--n", type=int, default=40, help="test sentences to translate (default 40)")
    parser.add_argument("--batch-size", type=int, help="the batched run's batch size (default: evaluate.batch_size)")
    parser.add_argument("--max-new-tokens", type=int, help="default: evaluate.max_new_tokens")
    parser.add_argument("--repeat", type=int, default=1, help="time each run this many times, keep the best")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--test", default="data/prepared/en-ca/test.tsv")
    parser.add_argument("--pair", default="en-ca")
    parser.add_argument("--out", help="default results/bench.md; a --quick run writes only where --out says")
    args = parser.parse_args()
    params = load_params(args.params)
    n = 4 if args.quick else args.n
    batch_size = args.batch_size or (4 if args.quick else params.evaluate.batch_size)
    max_new_tokens = args.max_new_tokens or (16 if args.quick else params.evaluate.max_new_tokens)

    pairs = read_pairs(args.test)[:n]
    prompts = [format_prompt(params.prompt.template, args.pair, p.source) for p in pairs]
    model, tokenizer = load_saved(args.model)
    if tokenizer.pad_token_id != tokenizer.eos_token_id:
        raise SystemExit(f"pad ({tokenizer.pad_token_id}) is not eos ({tokenizer.eos_token_id}): the token count "
                         "below assumes a finished row is padded with eos; count pad and eos apart first")
    counter = GeneratedTokens(model, tokenizer.eos_token_id)
    translate(model, tokenizer, prompts[:2], batch_size=2, max_new_tokens=4, desc="warm-up")  # one-time costs
    machine_line = machine()  # with the load average at the start
    batched = timed_translate(model, tokenizer, counter, prompts, batch_size, max_new_tokens, args.repeat)
    single = timed_translate(model, tokenizer, counter, prompts, 1, max_new_tokens, args.repeat)
    load_after = os.getloadavg()[0]
    counter.restore()

    for run in (batched, single):
        run["sentences_s"] = len(prompts) / run["seconds"]
        run["tokens_s"] = run["tokens"] / run["seconds"]
    speedup = batched["tokens_s"] / single["tokens_s"]
    same = [i for i, (a, b) in enumerate(zip(batched["outputs"], single["outputs"])) if a == b]
    differing = [i for i in range(len(prompts)) if i not in same]
    verdict = "met" if speedup >= TARGET_SPEEDUP else f"MISSED (floor {TARGET_SPEEDUP}x)"
    lines = [f"# Batched generation (KV cache) vs one sentence at a time ({args.model})",
             "",
             f"Machine: {machine_line} at the start, {load_after:.1f} at the end.",
             f"Command: `python bench/generation.py" + (" --quick" if args.quick else "") + "`. "
             f"{len(prompts)} {args.pair} test sentences from {args.test}, params.yaml's prompt template, greedy, "
             f"max_new_tokens={max_new_tokens}, both through kslottery.translate.translate (prompts sorted by "
             "length, left padding, KV cache, stop at a newline); only batch_size differs. Wall time of the whole "
             f"call{'' if args.repeat == 1 else f', best of {args.repeat}'}, after a warm-up call. Tokens: generated "
             "token ids recorded at model.generate, per sentence the new tokens before the first eos/pad (a "
             "finished row's padding is not counted). Rows x steps: what generate computed, rows of a batch that "
             "had stopped included (a batch decodes until its longest row stops).",
             "",
             "| run | batch size | seconds | generated tokens | sentences/s | tokens/s | rows x steps decoded "
             "| tokens / (rows x steps) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in (("batched", batched), ("one at a time", single)):
        lines.append(f"| {name} | {run['batch_size']} | {run['seconds']:.1f} | {run['tokens']:,} "
                     f"| {run['sentences_s']:.2f} | {run['tokens_s']:.1f} | {run['row_steps']:,} "
                     f"| {run['tokens'] / run['row_steps']:.0%} |")
    lines += ["",
              f"- tokens/s, batched / one at a time: **{speedup:.2f}x** (target >= {TARGET_SPEEDUP}x: {verdict}); "
              f"sentences/s: {batched['sentences_s'] / single['sentences_s']:.2f}x.",
              "- the speed-up is the product of two factors: rows x steps decoded per second, batched / one at a "
              "time, "
              f"{(batched['row_steps'] / batched['seconds']) / (single['row_steps'] / single['seconds']):.2f}x, times "
              f"the batched run's share of useful rows x steps, {batched['tokens'] / batched['row_steps']:.0%} "
              f"(one at a time: {single['tokens'] / single['row_steps']:.0%}).",
              f"- identical outputs: {len(same)} of {len(prompts)}"
              + ("." if not differing else
                 f" (left padding changes the floats a little; sentence {differing[0] + 1} differs:"
                 f" source {pairs[differing[0]].source!r}; batched {batched['outputs'][differing[0]]!r};"
                 f" one at a time {single['outputs'][differing[0]]!r}).")]
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or (None if args.quick else "results/bench.md")
    if out:
        write_section(out, "generation", text)


if __name__ == "__main__":
    main()
