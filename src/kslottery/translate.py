"""Batched greedy translation: left padding, KV cache, stop at end of line or eos.

Prompts are sorted by length before batching so that a batch carries little padding; outputs
come back in the caller's order.
"""

from __future__ import annotations

import torch

from kslottery.progress import progress


def translate(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int, desc: str = "translate") -> list[str]:
    """Greedy continuation of each prompt, cut at the first newline. One string per prompt."""
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    outputs: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    for start in progress(range(0, len(order), batch_size), desc=desc, unit="batch"):
        rows = order[start:start + batch_size]
        # generation appends on the right, so pad on the left
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, padding_side="left",
                              return_tensors="pt").to(device)
        with torch.inference_mode():
            generated = model.generate(
                **batch,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                stop_strings=["\n"],
                tokenizer=tokenizer,
            )
        new_tokens = generated[:, batch["input_ids"].shape[1]:]  # (B, new)
        for row, tokens in zip(rows, new_tokens):
            outputs[row] = postprocess(tokenizer.decode(tokens, skip_special_tokens=True))
    return outputs


def postprocess(text: str) -> str:
    """The first line of a continuation, stripped."""
    return text.strip().split("\n", 1)[0].strip()
