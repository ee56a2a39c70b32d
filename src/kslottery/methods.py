"""Model surgery: which parameters train, and how the result is saved and loaded back.

A method is nothing more than this. The training loop (train.py) never knows which one it runs.

* base    nothing trains (the zero-shot reference).
* full    every weight trains; saved as a whole model directory.
* lora    peft LoRA adapters on `baseline.lora_targets`; saved as a peft adapter.
* prefix  peft prefix-tuning (`baseline.prefix_tokens` virtual tokens); saved as a peft adapter.

* embed   every row of the input embedding trains; everything else is frozen. Saved as the whole
          tuned matrix (`embedding.safetensors`, key `weight`, shape (V, d)) for ks-select.
* ticket  only the given rows train, through peft's TrainableTokens: the original rows and the
          trained rows are kept apart and spliced together at forward (index_copy), so gradients and
          optimizer state exist only for the k rows, an untrained adapter is exactly the identity,
          and every other weight stays bit-identical. Saved as a peft adapter directory that loads
          with `PeftModel.from_pretrained(base, dir)`.
* random-k, frequent-k   the controls: exactly the ticket's surgery on other rows (k random rows
          of the vocabulary, or the k most frequent target tokens), so they differ only in rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, PrefixTuningConfig, TrainableTokensConfig, get_peft_model
from safetensors.torch import load_file, save_file

from kslottery.models import load_saved
from kslottery.params import BaselineParams

HALF_DTYPES = (torch.bfloat16, torch.float16)
TOKEN_METHODS = ("ticket", "random-k", "frequent-k")  # TrainableTokens on chosen rows
ADAPTER_METHODS = (*TOKEN_METHODS, "lora", "prefix")  # saved as peft adapters
TRAINED_METHODS = ("embed", "full", *ADAPTER_METHODS)
METHODS = ("base", *TRAINED_METHODS)
EMBEDDING_FILE = "embedding.safetensors"
MANIFEST = "method.json"


def freeze(model) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(False)


def input_embedding_name(model) -> str:
    """Module name of the input embedding, e.g. 'model.embed_tokens' (for peft's target_modules)."""
    embedding = model.get_input_embeddings()
    return next(name for name, module in model.named_modules() if module is embedding)


def prepare_embed(model):
    """Embedding-only tuning: the (V, d) input embedding is the only trainable tensor.

    In a bf16/fp16 model it trains in float32 (its output is cast back to the model's dtype): a
    half-precision row cannot take an update much smaller than 1/256 of its size, and AdamW's steps
    at a small learning rate would be rounded away."""
    freeze(model)
    embedding = model.get_input_embeddings()
    dtype = embedding.weight.dtype
    if dtype in HALF_DTYPES:
        embedding.weight = torch.nn.Parameter(embedding.weight.detach().float())
        embedding.register_forward_hook(lambda module, args, output: output.to(dtype))
    embedding.weight.requires_grad_(True)
    return model


def prepare_tokens(model, token_ids: list[int]):
    """Train only `token_ids` rows of the input embedding (the ticket, or a random/frequent control).

    peft keeps the rows in float32 in a bf16/fp16 model (its adapters are upcast), and casts them
    to the model's dtype in the forward pass: small updates accumulate instead of rounding away."""
    if not token_ids:
        raise ValueError("no token rows to train: the ticket is empty (raise alpha or check ks-select's output)")
    vocab_rows = model.get_input_embeddings().weight.shape[0]
    bad = [t for t in token_ids if not 0 <= t < vocab_rows]
    if bad:
        raise ValueError(f"token ids {bad[:5]} are outside the vocabulary [0, {vocab_rows})")
    freeze(model)
    config = TrainableTokensConfig(target_modules=[input_embedding_name(model).split(".")[-1]],
                                   token_indices=sorted(int(t) for t in token_ids))
    return get_peft_model(model, config)


def prepare_full(model):
    """Full fine-tuning: every parameter trains."""
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def prepare_lora(model, rank: int, alpha: int, targets: tuple[str, ...]):
    """LoRA on the named modules (e.g. q_proj, v_proj); the base stays frozen."""
    freeze(model)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, bias="none",
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def prepare_prefix(model, virtual_tokens: int):
    """Prefix-tuning: trained key/value prefixes in every layer; the base stays frozen."""
    freeze(model)
    return get_peft_model(model, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=virtual_tokens))


def prepare(method: str, model, baseline: BaselineParams, rows: list[int] | None = None):
    """The surgery of `method`; `rows` are the token rows of the ticket and control methods."""
    if method == "embed":
        return prepare_embed(model)
    if method in TOKEN_METHODS:
        return prepare_tokens(model, rows or [])
    if method == "full":
        return prepare_full(model)
    if method == "lora":
        return prepare_lora(model, baseline.lora.r, baseline.lora.alpha, baseline.lora.targets)
    if method == "prefix":
        return prepare_prefix(model, baseline.prefix.tokens)
    raise ValueError(f"unknown method {method!r}; known: {', '.join(TRAINED_METHODS)}")


def save_trained(model, method: str, out_dir: Path, info: dict, state_dict: dict | None = None) -> None:
    """Write what `method` trained into out_dir, plus a manifest naming the method.

    `state_dict`: the model's whole state, gathered from the processes that hold its shards (FSDP);
    None reads the weights from `model` itself."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if method not in TRAINED_METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(TRAINED_METHODS)}")
    if method == "embed":
        if state_dict is not None:
            weight = state_dict[f"{input_embedding_name(model)}.weight"]
        else:
            weight = model.get_input_embeddings().weight
        save_file({"weight": weight.detach().to("cpu").contiguous()}, out_dir / EMBEDDING_FILE)
    else:
        model.save_pretrained(out_dir, state_dict=state_dict)  # a peft adapter, or (full) a whole model
    (out_dir / MANIFEST).write_text(json.dumps({"method": method, **info}, indent=2) + "\n")


def load_embedding(method_dir: Path) -> torch.Tensor:
    """The tuned (V, d) input embedding saved by embed-finetune."""
    path = Path(method_dir) / EMBEDDING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run embed-finetune first (`dvc repro embed-finetune`)")
    return load_file(path)["weight"]


def read_manifest(method_dir: Path) -> dict:
    """What a training stage wrote beside its output: the method, trainable_params, pair, rows."""
    path = Path(method_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {method_dir} was not written by a training stage")
    return json.loads(path.read_text())


def load_trained(base_dir: Path, method_dir: Path | None, device=None, merge: bool = False):
    """(model, tokenizer): the base model with what `method_dir` trained applied; None -> base.

    merge=True folds mergeable adapters (LoRA, TrainableTokens: exact) into the weights, so that
    generation runs at the base model's speed; prefix-tuning cannot be merged and stays a PeftModel.
    """
    method = read_manifest(method_dir)["method"] if method_dir is not None else "base"
    if method == "full":  # a whole model of its own (the base's tokenizer): no need to load the base weights
        return load_saved(method_dir, device=device, tokenizer_dir=base_dir)
    model, tokenizer = load_saved(base_dir, device=device)
    if method == "base":
        return model, tokenizer
    if method == "embed":
        with torch.no_grad():
            embedding = model.get_input_embeddings().weight
            embedding.copy_(load_embedding(method_dir).to(embedding))
    elif method in ADAPTER_METHODS:
        model = PeftModel.from_pretrained(model, method_dir).eval()
        if merge and not model.active_peft_config.is_prompt_learning:
            model = model.merge_and_unload()
    else:
        raise ValueError(f"{method_dir}/{MANIFEST} names unknown method {method!r}")
    return model, tokenizer
