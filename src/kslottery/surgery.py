"""Model surgery: which parameters train, and how the result is saved and loaded back.

A method (methods.py) is nothing more than this. The training loop (train.py) never knows which
one it runs. Each function below is named by a registry entry's `surgery`, and takes the model,
the method's params section (train.<section>) and, for token methods, the rows to train:

* prepare_full    every weight trains; saved as a whole model directory.
* prepare_lora    peft LoRA adapters on train.lora.targets; saved as a peft adapter.
* prepare_prefix  peft prefix-tuning (train.prefix.tokens virtual tokens); saved as a peft adapter.
* prepare_embed   every row of the input embedding trains; everything else is frozen. Saved as the
                  whole tuned matrix (`embedding.safetensors`, key `weight`, shape (V, d)) for ks-select.
* prepare_tokens  only the given rows train (the tickets, or a control's rows), through peft's
                  TrainableTokens: the original rows and the trained rows are kept apart and
                  spliced together at forward (index_copy), so gradients and optimizer state exist
                  only for the k rows, an untrained adapter is exactly the identity, and every
                  other weight stays bit-identical. Saved as a peft adapter directory that loads
                  with `PeftModel.from_pretrained(base, dir)`.
* prepare_target  KS beyond the embedding: the linear matrices of a ks.target pattern train, every
                  row of them (method `target-tuned`, saved as the tuned matrices) or only given rows
                  (method `target-ticket`, saved as the rows and their change): a RowDelta adds
                  x @ delta.T to those output units, so gradients and optimizer state exist only
                  for the k rows, an untrained one is exactly the identity, and every other weight
                  stays bit-identical (as peft's TrainableTokens does for embedding rows).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, PrefixTuningConfig, TrainableTokensConfig, get_peft_model
from safetensors.torch import load_file, save_file

from kslottery.methods import BASE, LoraSettings, MethodSettings, PrefixSettings, method as registry_entry, run_entry
from kslottery.models import load_saved

HALF_DTYPES = (torch.bfloat16, torch.float16)
EMBEDDING_FILE = "embedding.safetensors"
TARGET_FILE = "target.safetensors"
MANIFEST = "method.json"


def freeze(model) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(False)


def input_embedding_name(model) -> str:
    """Module name of the input embedding, e.g. 'model.embed_tokens' (for peft's target_modules)."""
    embedding = model.get_input_embeddings()
    return next(name for name, module in model.named_modules() if module is embedding)


def prepare_embed(model, settings: MethodSettings | None = None, rows=None):
    """Embedding-only tuning: the (V, d) input embedding is the only trainable tensor.

    In a bf16/fp16 model it trains in float32 (its output is cast back to the model's dtype): a
    half-precision row cannot take an update much smaller than 1/256 of its size, and AdamW's steps
    at a small learning rate would be rounded away."""
    freeze(model)
    train_in_float32(model.get_input_embeddings())
    return model


def prepare_tokens(model, settings: MethodSettings | None = None, rows: list[int] | None = None):
    """Train only the `rows` of the input embedding (the tickets, or a control's rows).

    peft keeps the rows in float32 in a bf16/fp16 model (its adapters are upcast), and casts them
    to the model's dtype in the forward pass: small updates accumulate instead of rounding away."""
    token_ids = list(rows or [])
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


def prepare_full(model, settings: MethodSettings | None = None, rows=None):
    """Full fine-tuning: every parameter trains."""
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def prepare_lora(model, settings: LoraSettings, rows=None):
    """LoRA on the named modules (e.g. q_proj, v_proj); the base stays frozen."""
    freeze(model)
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, target_modules=list(settings.targets),
                        lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def prepare_prefix(model, settings: PrefixSettings, rows=None):
    """Prefix-tuning: trained key/value prefixes in every layer; the base stays frozen."""
    freeze(model)
    return get_peft_model(model, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=settings.tokens))


class RowDelta(torch.nn.Module):
    """A frozen nn.Linear whose `rows` output units train: y = base(x), then y[..., rows] += x @ delta.T.

    delta (k, d_in) starts at zero, and adding zero changes no value: an untrained RowDelta is the
    base module exactly. Merged, W[rows] += delta. It holds no copy of the base weight, so the
    gradient and the optimizer state are those of the k rows alone. In a bf16/fp16 model delta is
    float32 (the update is cast to the output's dtype), as peft upcasts its adapters."""

    def __init__(self, base: torch.nn.Linear, rows: list[int]):
        super().__init__()
        weight = base.weight
        self.base = base
        self.register_buffer("rows", torch.tensor(sorted(rows), dtype=torch.long, device=weight.device))
        dtype = torch.float32 if weight.dtype in HALF_DTYPES else weight.dtype
        self.delta = torch.nn.Parameter(torch.zeros(len(rows), base.in_features, dtype=dtype, device=weight.device))

    def forward(self, x):
        y = self.base(x)  # (..., d_out)
        update = torch.nn.functional.linear(x.to(self.delta.dtype), self.delta)  # (..., k)
        return y.index_add(-1, self.rows, update.to(y.dtype))


def _set_module(model, name: str, module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def train_in_float32(module: torch.nn.Module) -> None:
    """Make `module`'s weight trainable; in a bf16/fp16 model as a float32 copy (any bias too, frozen),
    its output cast back to the model's dtype (and, for a linear module, its input cast up): a
    half-precision weight cannot take an update much smaller than 1/256 of its size."""
    dtype = module.weight.dtype
    if dtype in HALF_DTYPES:
        module.weight = torch.nn.Parameter(module.weight.detach().float())
        if getattr(module, "bias", None) is not None:
            module.bias = torch.nn.Parameter(module.bias.detach().float(), requires_grad=False)
        if isinstance(module, torch.nn.Linear):  # an embedding's input is token ids
            module.register_forward_pre_hook(lambda m, args: tuple(a.float() for a in args))
        module.register_forward_hook(lambda m, args, output: output.to(dtype))
    module.weight.requires_grad_(True)


def prepare_target(model, settings: MethodSettings | None = None, rows: dict[str, list[int] | None] | None = None):
    """Train rows of linear matrices: `rows` maps each module name (targets.matching_linears) to its
    rows, or to None for every row (method `target-tuned`: the matrix's weight itself trains). Every
    other weight is frozen."""
    if not rows:
        raise ValueError("no target rows to train: the target ticket is empty (raise alpha or check target-select)")
    freeze(model)
    embedding = model.get_input_embeddings().weight
    for name, chosen in rows.items():
        module = model.get_submodule(name)
        if not isinstance(module, torch.nn.Linear):
            raise ValueError(f"{name} is a {type(module).__name__}, not a linear module: ks.target rows are output units")
        if module.weight is embedding:
            raise ValueError(f"{name} shares its weight with the input embedding (tied); untie it first "
                             "(prepare-model does) or target another module")
        if chosen is None:
            train_in_float32(module)
            continue
        bad = [r for r in chosen if not 0 <= r < module.out_features]
        if bad or not chosen or len(set(chosen)) < len(chosen):
            raise ValueError(f"{name}: rows {bad[:5] or chosen[:5]} are outside [0, {module.out_features}), "
                             "repeated or none")
        _set_module(model, name, RowDelta(module, chosen))
    return model


def prepare(name: str, model, settings: MethodSettings, rows: list[int] | None = None):
    """The surgery of method `name` (its registry entry names the function); `settings` is its
    params section, `rows` the token rows of a token method."""
    entry = registry_entry(name)
    if entry.surgery is None:
        raise ValueError(f"method {name!r} trains nothing; there is no surgery to run")
    return globals()[entry.surgery](model, settings, rows)


def save_trained(model, name: str, out_dir: Path, info: dict, state_dict: dict | None = None) -> None:
    """Write what method `name` trained into out_dir (as its registry entry's `saved_as` says), plus a
    manifest naming the method (a run name: METHOD@PATTERN for a target method).

    `state_dict`: the model's whole state, gathered from the processes that hold its shards (FSDP);
    None reads the weights from `model` itself."""
    saved_as = run_entry(name).saved_as
    if saved_as is None:
        raise ValueError(f"method {name!r} trains nothing; there is nothing to save")
    out_dir.mkdir(parents=True, exist_ok=True)
    if saved_as in ("weights", "rows"):
        save_file(target_tensors(model, saved_as, info["modules"], state_dict), out_dir / TARGET_FILE)
    elif saved_as == "embedding":
        if state_dict is not None:
            weight = state_dict[f"{input_embedding_name(model)}.weight"]
        else:
            weight = model.get_input_embeddings().weight
        save_file({"weight": weight.detach().to("cpu").contiguous()}, out_dir / EMBEDDING_FILE)
    else:
        model.save_pretrained(out_dir, state_dict=state_dict)  # a peft adapter, or a whole model
    (out_dir / MANIFEST).write_text(json.dumps({"method": name, **info}, indent=2) + "\n")


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
    """The tuned (V, d) input embedding saved by the embedding tuning (finetune@PAIR-SEED-embed)."""
    path = Path(method_dir) / EMBEDDING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run the embedding tuning first (`dvc repro finetune@PAIR-SEED-embed`)")
    return load_file(path)["weight"]


def embedding_rows(base_dir: Path, embed_dir: Path):
    """(model, tokenizer, before, after): the base model and its tokenizer, and the input embedding's
    rows before and after embedding tuning (finetune@PAIR-SEED-embed), as float32 arrays (V, d):
    what the KS test compares, row by row."""
    model, tokenizer = load_saved(base_dir)
    before = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    return model, tokenizer, before, load_embedding(embed_dir).float().numpy()


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
    What a target method trained is always written into the weights (W[rows] += delta).
    """
    name = read_manifest(method_dir)["method"] if method_dir is not None else BASE
    try:
        saved_as = run_entry(name).saved_as
    except ValueError:
        raise ValueError(f"{method_dir}/{MANIFEST} names unknown method {name!r}") from None
    if saved_as == "model":  # a whole model of its own (the base's tokenizer): no need to load the base weights
        return load_saved(method_dir, device=device, tokenizer_dir=base_dir)
    model, tokenizer = load_saved(base_dir, device=device)
    if saved_as == "embedding":
        with torch.no_grad():
            embedding = model.get_input_embeddings().weight
            embedding.copy_(load_embedding(method_dir).to(embedding))
    elif saved_as in ("weights", "rows"):
        apply_target(model, load_target(method_dir))
    elif saved_as == "adapter":
        model = PeftModel.from_pretrained(model, method_dir).eval()
        if merge and not model.active_peft_config.is_prompt_learning:
            model = model.merge_and_unload()
    return model, tokenizer
