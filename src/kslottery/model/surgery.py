"""Model surgery: which parameters train. How the result is saved and loaded back is saved.py.

A method (src/kslottery/methods/) is nothing more than this and its saved form. The training loop
never knows which one it runs. Each function below is named by a method's `surgery`, and takes the model,
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

import torch
from peft import LoraConfig, PrefixTuningConfig, TrainableTokensConfig, get_peft_model

from kslottery.config.registry import LoraSettings, MethodSettings, PrefixSettings, method as registry_entry
from kslottery.model.loading import ModelError
from kslottery.model.targets import unmatched_modules

HALF_DTYPES = (torch.bfloat16, torch.float16)


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
    if problems := unmatched_modules(model, "train.lora.targets", settings.targets):
        raise ModelError("; ".join(problems))
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
