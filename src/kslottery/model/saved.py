"""Saving what a method trained, and loading it back: one row per saved form.

A method names its form (`saved_as` in its file under src/kslottery/methods/); each form below is
how to write it, how to apply it to the base model, and the lines a card shows to load it:

* embedding  the whole tuned (V, d) input embedding, `embedding.safetensors` (key `weight`): what
             ks-select tests row by row; loading copies it into the base model.
* adapter    a peft adapter directory (LoRA, prefix-tuning, TrainableTokens for the token methods):
             loads with `PeftModel.from_pretrained(base, dir)`.
* model      a whole model directory (full fine-tuning), with the base's tokenizer.
* weights    the tuned matrices of a ks.target pattern, `target.safetensors` (NAME.weight).
* rows       the trained rows of those matrices and their change, `target.safetensors` (NAME.rows,
             NAME.delta): loading adds W[rows] += delta.

Beside every form, `method.json` names the method (the run name, METHOD@PATTERN for a target method)
and what the stage recorded (pair, seed, trainable_params, the rows).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file

from kslottery.atomic import FileContentError, read_json, require
from kslottery.config.registry import BASE, names, run_entry, split_run
from kslottery.model.loading import load_saved
from kslottery.model.surgery import input_embedding_name

EMBEDDING_FILE = "embedding.safetensors"
TARGET_FILE = "target.safetensors"
MANIFEST = "method.json"


# ---------------------------------------------------------------------------------------------
# What each form writes and reads


def _save_embedding(model, out_dir: Path, info: dict, state_dict: dict | None) -> None:
    if state_dict is not None:
        weight = state_dict[f"{input_embedding_name(model)}.weight"]
    else:
        weight = model.get_input_embeddings().weight
    save_file({"weight": weight.detach().to("cpu").contiguous()}, out_dir / EMBEDDING_FILE)


def _save_pretrained(model, out_dir: Path, info: dict, state_dict: dict | None) -> None:
    model.save_pretrained(out_dir, state_dict=state_dict)  # a peft adapter, or a whole model


def _target_saver(form: str):
    def save(model, out_dir: Path, info: dict, state_dict: dict | None) -> None:
        save_file(target_tensors(model, form, info["modules"], state_dict), out_dir / TARGET_FILE)
    return save


def _apply_embedding(model, method_dir: Path, merge: bool):
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding.copy_(load_embedding(method_dir).to(embedding))
    return model


def _apply_adapter(model, method_dir: Path, merge: bool):
    model = PeftModel.from_pretrained(model, method_dir).eval()
    if merge and not model.active_peft_config.is_prompt_learning:
        model = model.merge_and_unload()
    return model


def _apply_target(model, method_dir: Path, merge: bool):
    apply_target(model, load_target(method_dir))
    return model


def _load_snippet(base_dir: str, out_dir: str, comment: str) -> str:
    return (f'from kslottery.model.saved import load_trained\n'
            f'model, tokenizer = load_trained("{base_dir}", "{out_dir}")  # {comment}')


@dataclass(frozen=True)
class SavedForm:
    library: str
    """The library the card names (`library_name`): peft or transformers."""
    save: Callable
    """(model, out_dir, info, state_dict) -> None: write what was trained into out_dir."""
    apply: Callable | None
    """(base model, method_dir, merge) -> model: what was trained applied; None: a model of its own."""
    snippet: Callable[[str, str], str]
    """(base_dir, out_dir) -> the Python lines that load it (for the card)."""


FORMS: dict[str, SavedForm] = {
    "embedding": SavedForm(
        "transformers", _save_embedding, _apply_embedding,
        lambda base, out: _load_snippet(base, out, "the base model, this embedding copied in") +
        f'\n# or by hand: model.get_input_embeddings().weight.data = '
        f'safetensors.torch.load_file("{out}/{EMBEDDING_FILE}")["weight"]'),
    "adapter": SavedForm(
        "peft", _save_pretrained, _apply_adapter,
        lambda base, out: (f'from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n'
                           f'model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base}"), "{out}")\n'
                           f'tokenizer = AutoTokenizer.from_pretrained("{base}")')),
    "model": SavedForm(
        "transformers", _save_pretrained, None,
        lambda base, out: (f'from transformers import AutoModelForCausalLM, AutoTokenizer\n'
                           f'model = AutoModelForCausalLM.from_pretrained("{out}")\n'
                           f'tokenizer = AutoTokenizer.from_pretrained("{base}")')),
    "weights": SavedForm(
        "transformers", _target_saver("weights"), _apply_target,
        lambda base, out: _load_snippet(base, out, "the base model, these matrices written in") +
        f"\n# {TARGET_FILE} holds NAME.weight: every row of each tuned matrix"),
    "rows": SavedForm(
        "transformers", _target_saver("rows"), _apply_target,
        lambda base, out: _load_snippet(base, out, "the base model, these rows written in") +
        f"\n# {TARGET_FILE} holds NAME.rows and NAME.delta: W[rows] += delta"),
}


def form_of(run: str) -> SavedForm:
    """The saved form of a run's method (METHOD or METHOD@PATTERN); an error for one that trains nothing."""
    saved_as = run_entry(run).saved_as
    if saved_as is None:
        raise ValueError(f"method {run!r} trains nothing; there is nothing to save or load")
    return FORMS[saved_as]


# ---------------------------------------------------------------------------------------------
# Save and load


def save_trained(model, name: str, out_dir: Path, info: dict, state_dict: dict | None = None) -> None:
    """Write what method `name` (a run name) trained into out_dir in its saved form, plus the manifest.

    `state_dict`: the model's whole state, gathered from the processes that hold its shards (FSDP);
    None reads the weights from `model` itself."""
    form = form_of(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    form.save(model, out_dir, info, state_dict)
    (out_dir / MANIFEST).write_text(json.dumps({"method": name, **info}, indent=2) + "\n")


def read_manifest(method_dir: Path) -> dict:
    """What a training stage wrote beside its output: the method, trainable_params, pair, rows."""
    path = Path(method_dir) / MANIFEST
    fix = "pass a folder a training stage wrote (models/PAIR/sSEED/METHOD), or rerun that stage"
    if not path.is_file():
        raise FileContentError(f"{path} is missing: {method_dir} was not written by a training stage; {fix}")
    manifest = read_json(path, fix)
    require(path, isinstance(manifest, dict) and isinstance(manifest.get("method"), str),
            'expected a JSON object naming its "method"', fix)
    require(path, split_run(manifest["method"])[0] in names(),
            f"names method {manifest['method']!r}, which this version does not know (known: {', '.join(names())})", fix)
    return manifest


def load_trained(base_dir: Path, method_dir: Path | None, device=None, merge: bool = False):
    """(model, tokenizer): the base model with what `method_dir` trained applied; None -> base.

    merge=True folds mergeable adapters (LoRA, TrainableTokens: exact) into the weights, so that
    generation runs at the base model's speed; prefix-tuning cannot be merged and stays a PeftModel.
    What a target method trained is always written into the weights (W[rows] += delta).
    """
    name = read_manifest(method_dir)["method"] if method_dir is not None else BASE
    if name == BASE:
        return load_saved(base_dir, device=device)
    try:
        form = form_of(name)
    except ValueError:
        raise ValueError(f"{method_dir}/{MANIFEST} names unknown method {name!r}") from None
    if form.apply is None:  # a whole model of its own (the base's tokenizer): no need to load the base weights
        return load_saved(method_dir, device=device, tokenizer_dir=base_dir)
    model, tokenizer = load_saved(base_dir, device=device)
    return form.apply(model, method_dir, merge), tokenizer


# ---------------------------------------------------------------------------------------------
# The tensors of the embedding and target forms


def target_tensors(model, saved_as: str, modules: list[str], state_dict: dict | None = None) -> dict[str, torch.Tensor]:
    """What a target method trained in `modules`: `weights` -> {NAME.weight: (out, in)}; `rows` ->
    {NAME.rows: (k,), NAME.delta: (k, in)} of each RowDelta. Read from `state_dict` (gathered from
    the shards under FSDP) when given, else from the model."""
    if not modules:
        raise ValueError(f"nothing to save as {saved_as}: no target module was trained")
    keys = ("weight",) if saved_as == "weights" else ("rows", "delta")
    if state_dict is None:
        state_dict = {f"{name}.{key}": getattr(model.get_submodule(name), key) for name in modules for key in keys}
    return {f"{name}.{key}": state_dict[f"{name}.{key}"].detach().cpu().contiguous() for name in modules for key in keys}


def load_target(method_dir: Path) -> dict[str, torch.Tensor]:
    """The tensors a target method saved (target_tensors)."""
    path = Path(method_dir) / TARGET_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run the target tuning first (`dvc repro target-finetune`)")
    return load_file(path)


def apply_target(model, tensors: dict[str, torch.Tensor]) -> None:
    """Write what a target method trained into `model`'s weights: whole matrices, or rows + delta
    (W[rows] += delta, in the weight's dtype)."""
    with torch.no_grad():
        for key, tensor in tensors.items():
            name, _, kind = key.rpartition(".")
            weight = model.get_submodule(name).weight
            if kind == "weight":
                weight.copy_(tensor.to(weight))
            elif kind == "delta":  # added in float32, then rounded once to the weight's dtype
                rows = tensors[f"{name}.rows"].to(weight.device)
                weight[rows] = (weight[rows].float() + tensor.to(weight.device).float()).to(weight.dtype)


def load_embedding(method_dir: Path) -> torch.Tensor:
    """The tuned (V, d) input embedding saved by the embedding tuning (embed-finetune@PAIR-SEED)."""
    path = Path(method_dir) / EMBEDDING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run the embedding tuning first (`dvc repro embed-finetune@PAIR-SEED`)")
    return load_file(path)["weight"]


def embedding_rows(base_dir: Path, embed_dir: Path):
    """(model, tokenizer, before, after): the base model and its tokenizer, and the input embedding's
    rows before and after embedding tuning (embed-finetune@PAIR-SEED), as float32 arrays (V, d):
    what the KS test compares, row by row."""
    model, tokenizer = load_saved(base_dir)
    before = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    return model, tokenizer, before, load_embedding(embed_dir).float().numpy()
