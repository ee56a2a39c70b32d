"""Prompts and tokenization: the model sees `prompt + " " + target + eos`, and learns only the target.

The prompt and the target are tokenized separately and concatenated, so the prompt tokens at
training time are exactly the prompt tokens at generation time (no merge across the boundary).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kslottery import KSLotteryError
from kslottery.config.languages import LANGUAGE_NAMES

IGNORE_INDEX = -100  # label of prompt and padding tokens: no loss there


class PromptError(KSLotteryError, ValueError):
    """A prompt that does not fit the settings (max_length); the message names the key and the fix."""


def split_pair(pair: str) -> tuple[str, str]:
    """'en-ca' -> ('en', 'ca')."""
    src, tgt = pair.split("-")
    return src, tgt


def format_prompt(template: str, pair: str, source: str) -> str:
    src, tgt = split_pair(pair)
    return template.format(src=LANGUAGE_NAMES[src], tgt=LANGUAGE_NAMES[tgt], source=source)


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on prompt tokens

    @property
    def prompt_ids(self) -> list[int]:
        """The prompt's tokens: those before the first target token."""
        first_target = next((i for i, label in enumerate(self.labels) if label != IGNORE_INDEX), len(self.labels))
        return self.input_ids[:first_target]


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Token ids of a prompt, with the tokenizer's special tokens: LLaMA's and Gemma's <bos> (which
    they need; SmolLM2's tokenizer adds none)."""
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


def encode_example(tokenizer, prompt: str, target: str, max_length: int) -> Example:
    """Token ids of prompt + target + eos, with the loss only on target and eos."""
    prompt_ids = encode_prompt(tokenizer, prompt)
    if len(prompt_ids) >= max_length:
        raise PromptError(f"max_length: {max_length} leaves no room for the target after a prompt of "
                          f"{len(prompt_ids)} tokens; raise train.max_length (or the method's own) above "
                          f"{len(prompt_ids)}, or lower data.max_source_words")
    target_ids = tokenizer(" " + target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    target_ids = target_ids[: max_length - len(prompt_ids)]  # long targets lose their end
    input_ids = prompt_ids + target_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + target_ids
    return Example(input_ids=input_ids, labels=labels)


def encode_pairs(tokenizer, pairs, pair: str, template: str, max_length: int) -> list[Example]:
    """Training examples for SentencePairs of language pair `pair` (e.g. 'en-ca'); refused whole if
    the longest prompt leaves no room for its target (PromptError, before any is encoded)."""
    if pairs and (longest := longest_prompt(tokenizer, pairs, pair, template)) >= max_length:
        raise PromptError(f"max_length: {max_length} leaves no room for the target after the longest prompt "
                          f"({longest} tokens); raise train.max_length (or the method's own) above {longest}, "
                          "or lower data.max_source_words")
    return [encode_example(tokenizer, format_prompt(template, pair, p.source), p.target, max_length) for p in pairs]


def longest_prompt(tokenizer, pairs, pair: str, template: str) -> int:
    """The token count of the longest prompt of `pairs` (0 for none)."""
    return max((len(encode_prompt(tokenizer, format_prompt(template, pair, p.source))) for p in pairs), default=0)


def collate(examples: list[Example], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch for training: input_ids, attention_mask, labels, each (B, T)."""
    length = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
