"""Benchmark: what ticket tuning (k=18 rows, peft TrainableTokens) holds, against embedding-only tuning,
and against a splice of the k rows that builds no (V, d) copy.

On a LLaMA-7B-shaped embedding (32000 x 4096, float32, random weights) in a one-layer LlamaForCausalLM
with its own lm_head, the three variants go through the real loop (kslottery.training.loop.train, AdamW) on
the same batches. Each runs in a fresh subprocess, so that its peak RSS is its own. Measured by the
loop itself (`TrainResult.cost()`, cost.py):

* the bytes of one step's gradients and of the AdamW state; every trainable tensor is checked to be
  the embedding's (the (V, d) weight, or the (k, d) trained rows), so these are the embedding's;
* peak RSS (ru_maxrss), and the RSS of the built model before training;
* the median step time (forward, backward, AdamW step).

For the ticket it also checks, after training, that the effective embedding differs from the original
in exactly the 18 ticket rows and that every base weight is bit-identical (hashes before and after).
Prints the ratios measured side by side and writes its section of results/bench.md.

    python bench/ticket_memory.py             # 32000 x 4096, 6 steps (about a minute)
    python bench/ticket_memory.py --quick     # 4000 x 512, 3 steps, a few seconds
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys

import psutil
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from kslottery.model.surgery import prepare_embed, prepare_tokens
from kslottery.config.params import TrainSettings
from kslottery.data.prompts import IGNORE_INDEX, Example
from kslottery.training.loop import train
from report import machine, write_section  # bench/report.py

K = 18
TARGET_RATIO = 100  # the floor on embedding-only / ticket grad+optimizer bytes
VARIANTS = {"embed": "embedding-only (prepare_embed)", "ticket": f"ticket k={K} (prepare_tokens)",
            "splice": f"ticket k={K}, splice without a (V, d) copy (this bench's SplicedRows)"}
SHAPES = {"full": dict(vocab=32000, hidden=4096, steps=6), "quick": dict(vocab=4000, hidden=512, steps=3)}
BATCH, LENGTH = 4, 32  # a batch of 4 random sequences of 32 tokens


def build_model(vocab: int, hidden: int) -> LlamaForCausalLM:
    """One LLaMA layer around a LLaMA-7B-shaped embedding; a small MLP keeps the rest cheap."""
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=512, num_hidden_layers=1,
                         num_attention_heads=hidden // 128, num_key_value_heads=hidden // 128,
                         max_position_embeddings=2 * LENGTH, tie_word_embeddings=False)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).float()


class SplicedRows(torch.nn.Module):
    """The k trainable rows put into the frozen embedding's output, not into a copy of its matrix:
    look every token up in the frozen (V, d) weight, then replace the positions of ticket tokens by
    their trainable row. Forward and backward hold (batch, length, d) tensors and the (k, d) rows;
    nothing of size (V, d) is built. A prototype, measured here against peft's TrainableTokens."""

    def __init__(self, base: torch.nn.Embedding, rows: list[int]):
        super().__init__()
        self.base = base
        index = torch.tensor(rows)
        slot = torch.full((base.weight.shape[0],), -1, dtype=torch.long)
        slot[index] = torch.arange(len(rows))
        self.register_buffer("slot", slot, persistent=False)  # token id -> its trainable row, or -1
        self.rows = torch.nn.Parameter(base.weight.detach()[index].clone())

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        looked_up = self.base(input_ids)
        slot = self.slot[input_ids]
        return torch.where((slot >= 0).unsqueeze(-1), self.rows[slot.clamp(min=0)], looked_up)


def prepare_splice(model, rows: list[int]):
    """Freeze everything, then train the k rows through SplicedRows."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model.set_input_embeddings(SplicedRows(model.get_input_embeddings(), rows))
    return model


def examples(vocab: int, ticket_rows: list[int]) -> list[Example]:
    """Random sequences that hold every ticket row at an input position (the last one gets no
    gradient: its prediction is never scored), so that all k rows receive gradients."""
    rng = random.Random(0)
    batch = []
    for _ in range(BATCH):
        ids = ticket_rows + [rng.randrange(vocab) for _ in range(LENGTH - 1 - len(ticket_rows))]
        rng.shuffle(ids)
        ids.append(rng.randrange(vocab))
        batch.append(Example(input_ids=ids, labels=[IGNORE_INDEX] * 4 + ids[4:]))  # a 4-token "prompt"
    return batch


def weight_hashes(model) -> dict[str, str]:
    """blake2b of every frozen weight's bytes (no copy)."""
    return {name: hashlib.blake2b(p.detach().contiguous().view(torch.uint8).numpy()).hexdigest()
            for name, p in model.named_parameters() if not p.requires_grad}


def run_variant(variant: str, vocab: int, hidden: int, steps: int) -> dict:
    """Train one variant in this process; return what was measured."""
    model = build_model(vocab, hidden)
    ticket_rows = sorted(random.Random(1).sample(range(vocab), K))
    if variant == "embed":
        model = prepare_embed(model)
        embedding_tensors = [model.get_input_embeddings().weight]  # (V, d)
    elif variant == "ticket":
        model = prepare_tokens(model, rows=ticket_rows)
        layer = model.get_input_embeddings()
        embedding_tensors = list(layer.trainable_tokens_delta.values())  # (k, d)
    else:
        model = prepare_splice(model, ticket_rows)
        embedding_tensors = [model.get_input_embeddings().rows]  # (k, d)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if {id(p) for p in trainable} != {id(p) for p in embedding_tensors}:
        raise AssertionError(f"{variant}: something besides the embedding trains; the byte counts would mix them")
    hashes_before = weight_hashes(model) if variant != "embed" else {}
    model_rss = psutil.Process().memory_info().rss
    params = TrainSettings(lr=1e-2, steps=steps, batch_size=BATCH, optimizer="adamw", weight_decay=0.0,
                           max_length=LENGTH, log_every=1)
    result = train(model, examples(vocab, ticket_rows), params, pad_token_id=0, desc=variant)
    cost = result.cost()
    out = {"variant": variant, "trainable_params": cost.trainable_params, "grad_bytes": cost.gradient_bytes,
           "optimizer_bytes": cost.optimizer_state_bytes, "model_rss": model_rss, "peak_rss": cost.peak_memory_bytes,
           "step_s": cost.seconds_per_step, "loop_s": result.seconds, "steps": steps, "losses": result.losses}
    if variant != "embed":
        out.update(check_ticket(model, ticket_rows, hashes_before))
    return out


def check_ticket(model, ticket_rows: list[int], hashes_before: dict[str, str]) -> dict:
    """Which rows of the effective embedding moved, and did any base weight change?"""
    layer = model.get_input_embeddings()
    base = layer.base if isinstance(layer, SplicedRows) else layer.base_layer
    with torch.no_grad():
        vocab = base.weight.shape[0]
        effective = layer(torch.arange(vocab))  # (V, d): the base rows with the trained rows spliced in
        moved = (effective != base.weight).any(dim=1).nonzero().flatten().tolist()
    changed_weights = [name for name, digest in weight_hashes(model).items() if hashes_before.get(name) != digest]
    return {"moved_rows": moved, "ticket_rows": ticket_rows, "changed_base_weights": changed_weights,
            "only_ticket_rows_moved": moved == ticket_rows and not changed_weights}


def spawn(variant: str, quick: bool) -> dict:
    """Run one variant in a fresh interpreter (its own peak RSS); its result is the last stdout line."""
    command = [sys.executable, __file__, "--variant", variant] + (["--quick"] if quick else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{variant} failed (exit {done.returncode}): {' '.join(command)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def report(results: dict[str, dict], shape: dict, quick: bool) -> str:
    embed, ticket, splice = results["embed"], results["ticket"], results["splice"]
    held = {name: r["grad_bytes"] + r["optimizer_bytes"] for name, r in results.items()}
    ratio = held["embed"] / held["ticket"]
    verdict = "met" if ratio >= TARGET_RATIO else f"MISSED (floor {TARGET_RATIO}x)"
    lines = [f"# Ticket vs embedding-only tuning: memory and step time ({shape['vocab']} x {shape['hidden']})",
             "",
             f"Machine: {machine()}.",
             "Command: `python bench/ticket_memory.py" + (" --quick" if quick else "") + "`. "
             f"Model: LlamaForCausalLM, 1 layer, vocab {shape['vocab']}, hidden {shape['hidden']}, intermediate 512, "
             f"untied lm_head, float32, random weights. Each variant runs kslottery.training.loop.train (AdamW, lr 1e-2) "
             f"for {shape['steps']} steps on the same batch of {BATCH} x {LENGTH} random tokens, each in a fresh "
             "process. Grad and optimizer bytes, peak RSS and the median step time are the loop's own measurements "
             "(cost.py); the bytes belong to the embedding only (checked).",
             "",
             "| variant | trainable params | grad bytes | optimizer state bytes | grad + optimizer | RSS of the model "
             "| peak RSS | peak - model | step (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        cells = [VARIANTS[name], f"{r['trainable_params']:,}", f"{r['grad_bytes']:,}", f"{r['optimizer_bytes']:,}",
                 f"{held[name]:,} ({mib(held[name])})", mib(r["model_rss"]), mib(r["peak_rss"]),
                 mib(r["peak_rss"] - r["model_rss"]), f"{r['step_s']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["",
              f"- grad + optimizer bytes, embedding-only / ticket: **{ratio:,.0f}x** "
              f"(target >= {TARGET_RATIO}x: {verdict}).",
              f"- peak RSS, embedding-only / ticket: {embed['peak_rss'] / ticket['peak_rss']:.2f}x; above the model: "
              f"{(embed['peak_rss'] - embed['model_rss']) / max(ticket['peak_rss'] - ticket['model_rss'], 1):.2f}x. "
              f"What the ticket's peak holds above the model includes a transient (V, d) float32 matrix "
              f"({mib(shape['vocab'] * shape['hidden'] * 4)}): peft's forward splices the k rows into a full copy of "
              "the matrix (`index_copy`), and the embedding's backward builds a dense (V, d) gradient for that copy "
              "before keeping only the k rows; neither outlives the step.",
              f"- step time, embedding-only / ticket: {embed['step_s'] / ticket['step_s']:.2f}x.",
              f"- without the copy: the splice holds {mib(splice['peak_rss'] - splice['model_rss'])} above the model "
              f"against peft's {mib(ticket['peak_rss'] - ticket['model_rss'])} "
              f"(peak RSS, peft / splice: {ticket['peak_rss'] / splice['peak_rss']:.2f}x; embedding-only / splice: "
              f"{embed['peak_rss'] / splice['peak_rss']:.2f}x), step time peft / splice "
              f"{ticket['step_s'] / splice['step_s']:.2f}x, the same grad + optimizer bytes "
              f"({held['splice']:,}); its losses {'equal' if splice['losses'] == ticket['losses'] else 'differ from'} "
              f"peft's (max difference {max(abs(a - b) for a, b in zip(splice['losses'], ticket['losses'])):.2e}); "
              f"its check: {len(splice['moved_rows'])} rows moved, "
              + ("exactly the ticket rows" if splice["only_ticket_rows_moved"] else "NOT only the ticket rows") + ".",
              f"- ticket check: the effective embedding differs from the original in {len(ticket['moved_rows'])} rows, "
              + ("exactly the 18 ticket rows" if ticket["moved_rows"] == ticket["ticket_rows"]
                 else f"NOT the ticket rows (moved {ticket['moved_rows'][:10]}, ticket {ticket['ticket_rows']})")
              + "; base weights changed: "
              + (", ".join(ticket["changed_base_weights"]) or "none (bit-identical)") + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4000 x 512, 3 steps: a smoke run of a few seconds")
    parser.add_argument("--out", help="default results/bench.md; a --quick run writes only where --out says")
    parser.add_argument("--variant", choices=VARIANTS, help="internal: run one variant here and print its result")
    args = parser.parse_args()
    shape = SHAPES["quick" if args.quick else "full"]
    if args.variant:
        print(json.dumps(run_variant(args.variant, **shape)))
        return
    results = {name: spawn(name, args.quick) for name in VARIANTS}
    text = report(results, shape, args.quick)
    print(text)
    out = args.out or (None if args.quick else "results/bench.md")
    if out:
        write_section(out, "ticket_memory", text)
    if not (results["ticket"]["only_ticket_rows_moved"] and results["splice"]["only_ticket_rows_moved"]):
        raise SystemExit("ticket check failed: rows other than the ticket's moved, or a base weight changed")


if __name__ == "__main__":
    main()
