"""Certification by measurement: how much of embedding tuning do the ticket rows alone carry?

Take the embedding-tuned model, put every non-ticket row back to its base value, and compare it
with the embedding-tuned model on the test set:

* next-token agreement: teacher-forced on the reference translations, the share of target
  positions where both models' greedy next token is the same (1.0 = indistinguishable there);
* each model's next-token accuracy against the reference;
* the score difference of their translations (computed by the stage with translate + scoring).

This is a measurement on one test set, not a theorem.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from kslottery.prompts import IGNORE_INDEX, Example, collate


def keep_rows(base: torch.Tensor, tuned: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """(V, d): `tuned` on `rows`, `base` everywhere else."""
    if base.shape != tuned.shape:
        raise ValueError(f"embedding shapes differ: {tuple(base.shape)} vs {tuple(tuned.shape)}")
    kept = base.clone()
    index = torch.as_tensor(rows, dtype=torch.long)
    kept[index] = tuned[index]
    return kept


@torch.no_grad()
def greedy_next_tokens(model, examples: list[Example], pad_token_id: int, batch_size: int, desc: str) -> list[torch.Tensor]:
    """Per example, the model's argmax next token at every target position (teacher-forced)."""
    device = next(model.parameters()).device
    predictions = []
    for start in tqdm(range(0, len(examples), batch_size), desc=desc, unit="batch", dynamic_ncols=True):
        chunk = examples[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_token_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
        predicted = logits[:, :-1].argmax(-1)  # (B, T-1): the token predicted for position t+1
        targets = batch["labels"][:, 1:]
        for row in range(len(chunk)):
            predictions.append(predicted[row][targets[row] != IGNORE_INDEX].cpu())
    return predictions


def agreement(predictions_a: list[torch.Tensor], predictions_b: list[torch.Tensor]) -> float:
    """Share of target positions where two models predict the same next token."""
    same = sum(int((a == b).sum()) for a, b in zip(predictions_a, predictions_b))
    total = sum(len(a) for a in predictions_a)
    return same / total if total else 1.0


def accuracy(predictions: list[torch.Tensor], examples: list[Example]) -> float:
    """Share of target positions where the greedy next token is the reference token."""
    correct = total = 0
    for predicted, example in zip(predictions, examples):
        reference = torch.tensor([t for t in example.labels[1:] if t != IGNORE_INDEX])
        correct += int((predicted == reference).sum())
        total += len(reference)
    return correct / total if total else 0.0
