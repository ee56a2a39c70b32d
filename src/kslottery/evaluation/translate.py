"""Batched greedy translation: left padding, KV cache, each sentence decoded until eos or
`max_new_tokens`. The whole continuation comes back; how much of it counts is the scoring
protocol's business (scoring.py: its first line, or all of it).

Prompts are sorted by length before batching so that a batch carries little padding; outputs
come back in the caller's order.

`greedy` is our decoding loop rather than `model.generate`: a row that has ended is dropped from
the batch (and from the KV cache) at once, where `generate` decodes every row until the longest one
stops; one sentence that runs on to `max_new_tokens` kept a whole batch of finished rows computing. Same greedy choices, so the same outputs (tests compare it with `generate`).
Prompt-learning models (prefix tuning) build their own cache inside peft's forward and keep
`generate`.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from kslottery.progress import progress
from kslottery.data.prompts import encode_prompt


def translate(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int, desc: str = "translate",
              num_beams: int = 1) -> list[str]:
    """Greedy (or beam-search) continuation of each prompt, until eos or max_new_tokens, as text
    (special tokens dropped). One string per prompt."""
    tokens = translate_tokens(model, tokenizer, prompts, batch_size, max_new_tokens, desc, num_beams=num_beams)
    return [tokenizer.decode(t, skip_special_tokens=True) for t in tokens]


def translate_tokens(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int,
                     desc: str = "translate", use_generate: bool | None = None, num_beams: int = 1) -> list[list[int]]:
    """The new token ids of each prompt, up to and including its first end token (eos).

    `num_beams` > 1: beam search, with transformers' `model.generate`. `use_generate`: greedy
    decoding with `model.generate` instead of `greedy` (same tokens, slower; the benchmark's
    reference). Default: only for prompt-learning models."""
    if use_generate is None:
        use_generate = getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False)
    use_generate = use_generate or num_beams > 1
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    outputs: list[list[int]] = [[] for _ in prompts]
    device = next(model.parameters()).device
    stop_ids = end_ids(tokenizer).to(device)
    for start in progress(range(0, len(order), batch_size), desc=desc, unit="batch"):
        rows = order[start:start + batch_size]
        # generation appends on the right, so pad on the left
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, padding_side="left",
                              return_tensors="pt").to(device)
        with torch.inference_mode():
            if use_generate:
                generated = model.generate(**batch, do_sample=False, num_beams=num_beams, max_new_tokens=max_new_tokens,
                                           pad_token_id=tokenizer.pad_token_id, eos_token_id=stop_ids.tolist())
                stops = set(stop_ids.tolist())
                new_tokens = [_through_first(t.tolist(), stops) for t in generated[:, batch["input_ids"].shape[1]:]]
            else:
                new_tokens = greedy(model, batch["input_ids"], batch["attention_mask"], stop_ids, max_new_tokens)
        for row, tokens in zip(rows, new_tokens):
            outputs[row] = tokens
    return outputs


def _through_first(tokens: list[int], stops: set[int]) -> list[int]:
    """`tokens` up to and including the first stop id (generate pads a finished row after it)."""
    for i, token in enumerate(tokens):
        if token in stops:
            return tokens[: i + 1]
    return tokens


def greedy(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, stop_ids: torch.Tensor,
           max_new_tokens: int) -> list[list[int]]:
    """Greedy decoding of a left-padded batch; a row leaves the batch once it emits a stop id.

    Returns each row's new tokens, the stop token included (as `generate` does). Positions count
    real tokens only (padding excluded), as in `generate`."""
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    cache = DynamicCache(config=model.config)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    alive = torch.arange(len(input_ids), device=input_ids.device)  # batch row of each cache row
    position = position_ids[:, -1]
    new_tokens: list[list[int]] = [[] for _ in range(len(input_ids))]
    for step in range(max_new_tokens):
        token = logits[:, -1].argmax(-1)
        for row, t in zip(alive.tolist(), token.tolist()):
            new_tokens[row].append(t)
        running = ~torch.isin(token, stop_ids)
        if step == max_new_tokens - 1 or not running.any():
            break
        if not running.all():
            keep = running.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            alive, token, position, attention_mask = alive[keep], token[keep], position[keep], attention_mask[keep]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(alive), 1)], dim=1)
        position = position + 1
        logits = model(input_ids=token[:, None], attention_mask=attention_mask, position_ids=position[:, None],
                       past_key_values=cache, use_cache=True).logits
    return new_tokens


def end_ids(tokenizer) -> torch.Tensor:
    """The token that ends a continuation: the tokenizer's eos (what training appends to every target)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token; a continuation could never end")
    return torch.tensor([tokenizer.eos_token_id], dtype=torch.long)
