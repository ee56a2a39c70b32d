"""Which matrices a `ks.target` pattern names in a model, and what a target method trains of them.

The KS side of KS beyond the embedding (stacking the rows, the tickets' record) is lottery/targets.py.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def matches(name: str, pattern: str) -> bool:
    """Does module `name` (model.layers.3.mlp.down_proj) fit `pattern`: equal to it, or ending with
    `.pattern` (mlp.down_proj, layers.3.mlp.down_proj; never a partial name such as own_proj)?"""
    return name == pattern or name.endswith("." + pattern)


def linear_modules(model) -> dict[str, torch.nn.Linear]:
    """Every nn.Linear of `model`, by module name, in model order (the input embedding is not one)."""
    return {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}


def matching_linears(model, pattern: str) -> dict[str, torch.nn.Linear]:
    """The linear modules `pattern` names; a clear error if none, listing the kinds there are."""
    linears = linear_modules(model)
    found = {name: module for name, module in linears.items() if matches(name, pattern)}
    if not found:
        kinds = sorted({".".join(name.split(".")[-2:]) for name in linears})
        raise ValueError(f"ks.target: {pattern!r} matches no linear module of the model; its linear modules end "
                         f"with {', '.join(kinds[:12])}{' ...' if len(kinds) > 12 else ''}")
    return found


def meta_model(base_dir: str | Path):
    """The prepared base model built from its config alone, on the meta device (no weights read);
    None before prepare-model has run."""
    if not (Path(base_dir) / "config.json").is_file():
        return None
    try:
        config = AutoConfig.from_pretrained(base_dir)
    except (OSError, ValueError, KeyError):  # not a transformers config: load_saved says so where it matters
        return None
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def target_problems(patterns, base_dir: str | Path) -> list[str]:
    """Patterns of ks.target that match no linear module of the prepared base model, found from its
    config alone. Nothing to check before prepare-model has run."""
    model = meta_model(base_dir) if patterns else None
    if model is None:
        return []
    problems = []
    for pattern in patterns:
        try:
            matching_linears(model, pattern)
        except ValueError as err:
            problems.append(str(err))
    return problems


def unmatched_modules(model, key: str, names) -> list[str]:
    """One line per name of `names` (module-name suffixes, as peft's target_modules) that matches no
    linear module of `model`, naming params key `key` and the kinds of linear module there are."""
    linears = linear_modules(model)
    kinds = sorted({".".join(name.split(".")[-2:]) for name in linears})
    return [f"{key}: {name!r} matches no linear module of the model; its linear modules end with "
            f"{', '.join(kinds[:12])}{' ...' if len(kinds) > 12 else ''}"
            for name in names if not any(matches(module, name) for module in linears)]


def lora_problems(targets, base_dir: str | Path, key: str = "train.lora.targets") -> list[str]:
    """LoRA targets (params key `key`) that match no linear module of the prepared base model (from
    its config alone); nothing to check before prepare-model has run."""
    model = meta_model(base_dir)
    return [] if model is None else unmatched_modules(model, key, targets)


def rows_to_train(model, pattern: str, tickets: dict[str, list[int]] | None = None) -> dict[str, list[int] | None]:
    """What a target method trains, by module: every row of the matrices `pattern` matches (None per
    module, method `target-tuned`), or the ticket rows of target-select (`target-ticket`), checked to lie in
    those matrices."""
    linears = matching_linears(model, pattern)
    if tickets is None:
        return dict.fromkeys(linears)
    if unknown := sorted(set(tickets) - set(linears)):
        raise ValueError(f"the target tickets name modules {unknown[:3]} that {pattern!r} does not match in this "
                         "model; rerun target-select")
    return tickets


def row_count(model, rows: dict[str, list[int] | None]) -> int:
    """Rows (output units) a target method trains."""
    return sum(model.get_submodule(name).out_features if chosen is None else len(chosen) for name, chosen in rows.items())
