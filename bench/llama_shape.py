"""Benchmark: embed-finetune and ks-select throughput on a LLaMA-7B-shaped model with random weights.

A LlamaForCausalLM with LLaMA-7B's shape (vocabulary 32000, hidden 4096, 32 heads, MLP 11008, untied
lm_head; `--layers` decoder layers, 32 for the whole 7B) in bf16 on the GPU (float32 on a CPU),
trained embedding-only through the real loop (kslottery.model.surgery.prepare_embed: a float32 copy of the
embedding in a bf16 model; kslottery.training.loop.train: AdamW) on random sequences; then the KS test of
every row before vs after (kslottery.lottery.ks.ks_2samp_rows, on the device the rows are on). Prints the
training tokens/s, seconds per step, peak GPU memory, and the KS time for the 32000 rows, and writes
its section of results/bench.md.

    python bench/llama_shape.py                  # 32 layers (7B) on the GPU: about 14 GB bf16 + a float32 embedding
    python bench/llama_shape.py --layers 2       # a slice of it, e.g. on a CPU
    python bench/llama_shape.py --quick          # 1 layer, small vocabulary, a smoke run
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from kslottery.lottery.ks import ks_2samp_rows
from kslottery.model.surgery import prepare_embed
from kslottery.config.params import TrainSettings
from kslottery.data.prompts import IGNORE_INDEX, Example
from kslottery.training.loop import train
from report import machine, write_section  # bench/report.py


def build(vocab: int, hidden: int, intermediate: int, layers: int, dtype: torch.dtype, device: str):
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=hidden // 128,
                         num_key_value_heads=hidden // 128, max_position_embeddings=4096, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    return model


def random_examples(vocab: int, n: int, prompt: int, target: int) -> list[Example]:
    generator = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (prompt + target,), generator=generator).tolist()
        rows.append(Example(input_ids=ids, labels=[IGNORE_INDEX] * prompt + ids[prompt:]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="1 layer, vocabulary 4000, hidden 512, 3 steps")
    parser.add_argument("--out", help="default results/bench.md; a --quick run writes only where --out says")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    vocab, hidden, intermediate, layers, steps = ((4000, 512, 1024, 1, 3) if args.quick else
                                                  (32000, 4096, 11008, args.layers, args.steps))
    prompt, target = 64, 64
    model = build(vocab, hidden, intermediate, layers, dtype, device)
    parameters = sum(p.numel() for p in model.parameters())
    before = model.get_input_embeddings().weight.detach().float().clone()
    model = prepare_embed(model)
    data = random_examples(vocab, 4 * args.batch_size, prompt, target)
    params = TrainSettings(lr=1e-4, steps=steps, batch_size=args.batch_size, max_length=prompt + target)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = train(model, data, params, pad_token_id=0, seed=0, desc="llama-shape embed")
    step_seconds = result.seconds / steps
    tokens = args.batch_size * (prompt + target)
    after = model.get_input_embeddings().weight.detach().float()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    statistic, pvalue = ks_2samp_rows(before, after)
    if device == "cuda":
        torch.cuda.synchronize()
    ks_seconds = time.perf_counter() - start
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "n/a (CPU)"

    lines = [f"# LLaMA-7B-shaped embed-finetune and ks-select ({device})",
             "",
             f"Machine: {machine()}.",
             f"Command: `python bench/llama_shape.py{' --quick' if args.quick else f' --layers {layers}'}"
             f"{f' --steps {steps}' if not args.quick and steps != 20 else ''}`. "
             f"Random-init LlamaForCausalLM, vocabulary {vocab}, hidden {hidden}, MLP {intermediate}, {layers} "
             f"layer(s) ({parameters / 1e9:.2f} B parameters), {str(dtype).replace('torch.', '')}; embedding-only "
             f"tuning through kslottery.training.loop (AdamW, float32 embedding), batch {args.batch_size} x "
             f"{prompt + target} tokens ({target} with loss), {steps} steps; then ks_2samp_rows over the {vocab} rows.",
             "",
             "| what | value |",
             "|---|---:|",
             f"| seconds per training step | {step_seconds:.3f} |",
             f"| training tokens/s | {tokens / step_seconds:,.0f} |",
             f"| peak GPU memory | {peak} |",
             f"| ks_2samp_rows, {vocab} x {hidden} | {ks_seconds:.2f} s |",
             f"| rows with p < 0.05 | {int((torch.as_tensor(pvalue) < 0.05).sum())} of {vocab} |"]
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or (None if args.quick else "results/bench.md")
    if out:
        write_section(out, f"llama-shape-{device}", text)


if __name__ == "__main__":
    main()
