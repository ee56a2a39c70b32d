"""Benchmark: batched generation (kslottery.evaluation.translate: KV cache, finished rows leave the batch)
against transformers' `generate` one sentence at a time.

The default model (models/base, as prepare-model saved it) translates the first N test sentences of
data/prepared/en-ca/test.tsv, prompted with params.yaml's prompt.template, greedily, with the same
max_new_tokens, four times, all through kslottery.evaluation.translate.translate_tokens (prompts sorted by
length, left padding, stop at a token holding a newline or eos):

- ours, batched (evaluate.batch_size): our decoding loop, which drops a row once it stops;
- transformers' generate, one sentence at a time: the reference;
- transformers' generate, batched: every row decodes until the batch's longest one stops;
- ours, one sentence at a time.

Tokens are the generated ids through each row's stop token (the same in every run when the outputs
agree). Prints sentences/s, tokens/s, the speed-ups and how many outputs are identical, and writes
its section of results/bench.md.

    python bench/generation.py              # the 100 test sentences (about 3 minutes on 2 cores)
    python bench/generation.py --quick      # 4 sentences, 16 new tokens, a few seconds
"""

from __future__ import annotations

import argparse
import os
import time

from kslottery.data.corpus import read_pairs
from kslottery.model.loading import load_saved
from kslottery.config.params import load_params
from kslottery.data.prompts import encode_prompt, format_prompt
from kslottery.evaluation.translate import translate_tokens
from report import machine, write_section  # bench/report.py

TARGET_SPEEDUP = 4  # the floor on batched / one-at-a-time tokens/s


def timed(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int, use_generate: bool,
          repeat: int) -> dict:
    """Best wall time of `repeat` runs; the new tokens of the last, and the rows x steps decoded."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        tokens = translate_tokens(model, tokenizer, prompts, batch_size, max_new_tokens,
                                  desc=f"{'generate' if use_generate else 'ours'} batch {batch_size}",
                                  use_generate=use_generate)
        best = min(best, time.perf_counter() - start)
    lengths = [len(t) for t in tokens]
    if use_generate:  # generate decodes every row of a batch until its longest row stops
        order = sorted(range(len(prompts)), key=lambda i: len(encode_prompt(tokenizer, prompts[i])))
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        row_steps = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    else:  # a row leaves the batch at its stop token
        row_steps = sum(lengths)
    return {"batch_size": batch_size, "seconds": best, "tokens": tokens, "count": sum(lengths), "row_steps": row_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 sentences, 16 new tokens: a smoke run")
    parser.add_argument("--n", type=int, default=100, help="test sentences to translate (default 100: the test set evaluate translates)")
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
    translate_tokens(model, tokenizer, prompts[:2], 2, 4, desc="warm-up")  # one-time costs
    machine_line = machine()  # with the load average at the start
    runs = {
        "ours, batched": timed(model, tokenizer, prompts, batch_size, max_new_tokens, False, args.repeat),
        "generate, one at a time": timed(model, tokenizer, prompts, 1, max_new_tokens, True, args.repeat),
        "generate, batched": timed(model, tokenizer, prompts, batch_size, max_new_tokens, True, args.repeat),
        "ours, one at a time": timed(model, tokenizer, prompts, 1, max_new_tokens, False, args.repeat),
    }
    load_after = os.getloadavg()[0]
    for run in runs.values():
        run["sentences_s"] = len(prompts) / run["seconds"]
        run["tokens_s"] = run["count"] / run["seconds"]
    reference = runs["generate, one at a time"]
    ours = runs["ours, batched"]
    speedup = ours["tokens_s"] / reference["tokens_s"]
    same = {name: sum(a == b for a, b in zip(run["tokens"], reference["tokens"])) for name, run in runs.items()}
    verdict = "met" if speedup >= TARGET_SPEEDUP else f"MISSED (floor {TARGET_SPEEDUP}x)"
    lines = [f"# Batched generation (KV cache, finished rows leave the batch) vs one sentence at a time ({args.model})",
             "",
             f"Machine: {machine_line} at the start, {load_after:.1f} at the end.",
             f"Command: `python bench/generation.py" + (" --quick" if args.quick else "") + "`. "
             f"{len(prompts)} {args.pair} test sentences from {args.test}, params.yaml's prompt template, greedy, "
             f"max_new_tokens={max_new_tokens}, all through kslottery.evaluation.translate.translate_tokens (prompts sorted by "
             "length, left padding, KV cache, stop at a token holding a newline, or eos); the runs differ in the "
             "decoding loop (ours, or transformers' `generate`) and the batch size. Wall time of the whole "
             f"call{'' if args.repeat == 1 else f', best of {args.repeat}'}, after a warm-up call. Tokens: the "
             "generated ids through each sentence's stop token. Rows x steps: what the loop computed; `generate` "
             "decodes every row of a batch until its longest row stops, ours drops a row when it stops.",
             "",
             "| run | batch size | seconds | generated tokens | sentences/s | tokens/s | rows x steps decoded "
             "| tokens / (rows x steps) | outputs identical to the reference |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in runs.items():
        lines.append(f"| {name} | {run['batch_size']} | {run['seconds']:.1f} | {run['count']:,} "
                     f"| {run['sentences_s']:.2f} | {run['tokens_s']:.1f} | {run['row_steps']:,} "
                     f"| {run['count'] / run['row_steps']:.0%} | {same[name]} of {len(prompts)} |")
    generate_batched = runs["generate, batched"]
    lines += ["",
              f"- tokens/s, ours batched / generate one at a time: **{speedup:.2f}x** (target >= {TARGET_SPEEDUP}x: "
              f"{verdict}).",
              f"- ours batched / generate batched: {ours['tokens_s'] / generate_batched['tokens_s']:.2f}x (dropping "
              f"finished rows: generate computed {generate_batched['row_steps']:,} rows x steps for "
              f"{generate_batched['count']:,} tokens); ours one at a time / generate one at a time: "
              f"{runs['ours, one at a time']['tokens_s'] / reference['tokens_s']:.2f}x (the loop's own overhead).",
              f"- identical outputs (token ids): " + ", ".join(f"{name} {n} of {len(prompts)}" for name, n in same.items()) + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or (None if args.quick else "results/bench.md")
    if out:
        write_section(out, "generation", text)


if __name__ == "__main__":
    main()
