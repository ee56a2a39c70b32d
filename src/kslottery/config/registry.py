"""The method registry: what each method *is* for training, read from one file per method.

A method is a way of fine-tuning the base model for translation. Its facts live in its own file,
src/kslottery/methods/NAME.py (named as the method, hyphens and all), which defines `METHOD`, a
`Method` below: its params section, the surgery that prepares a model for it, how its result is
saved and, for a token method, the rule that picks its embedding rows. Nothing else in the package
lists the methods; what they look like in the table and plots (label, colour, order, description)
is report/legend.py's.

Why one file per method: a stage that trains or evaluates method M depends (in dvc.yaml) on
methods/M.py and on the code it imports, never on a list of every method, so adding a method or
editing another one reruns none of M's stages. The registry loads every method file at start-up,
for one reason only: params.yaml is checked whole (an unknown `train.<section>` is an error), and
the sections come from the method files. Another method's file can make a params file invalid, but
it cannot change what M computes.

Adding a token method (k embedding rows chosen by a rule of your own):
  1. src/kslottery/methods/NAME.py: `METHOD = Method("NAME", section=..., surgery="prepare_tokens",
     saved_as="adapter", rows=your_rule)`; a rule is `(ticket_rows, vocab_size, seed, tokens) -> rows`
     (`tokens` is data.training_tokens.TrainingTokens);
  2. its params section in params.yaml (train.NAME: {lr: ...}) if it has its own;
  3. its name in the ticket-finetune and evaluate matrices of dvc.yaml;
  4. optionally its label and colour in report/legend.py (else the table shows its name).

Torch-free, so that the command line and the params loader read it without loading torch.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from kslottery.config.rules import checked, not_empty, positive

METHODS_DIR = Path(__file__).resolve().parents[1] / "methods"
"""One file per method, named as the method: methods/random-k.py defines random-k."""

# ---------------------------------------------------------------------------------------------
# Settings of a method's params section, train.<section>, read and checked by params.py. A section
# may also override a setting every method shares (train.steps, ...: params.TrainParams).


@dataclass(frozen=True)
class MethodSettings:
    lr: float = checked(positive)
    """Learning rate of this method (chosen on dev with `ksl calibrate`)."""


@dataclass(frozen=True)
class LoraSettings(MethodSettings):
    r: int = checked(positive, 8)
    """LoRA rank."""
    alpha: int = checked(positive, 16)
    """LoRA scaling numerator (peft lora_alpha)."""
    targets: tuple[str, ...] = checked(not_empty("name at least one module, e.g. [q_proj, v_proj]"), ("q_proj", "v_proj"))
    """Module names LoRA adapts (peft target_modules)."""


@dataclass(frozen=True)
class PrefixSettings(MethodSettings):
    tokens: int = checked(positive, 16)
    """Virtual tokens of prefix-tuning (peft num_virtual_tokens)."""


RowRule = Callable[..., list[int]]
"""(ticket_rows, vocab_size, seed, tokens) -> the rows a token method trains (k = len(ticket_rows))."""

SAVED_FORMS = ("embedding", "adapter", "model", "weights", "rows")
"""How a result is saved (model/saved.py holds one row per form): `embedding` (the tuned (V, d)
matrix), `adapter` (a peft adapter directory), `model` (a whole model directory), `weights` (the
tuned matrices of a ks.target pattern), `rows` (their trained rows and the change)."""


@dataclass(frozen=True)
class Method:
    name: str
    """As in dvc.yaml, paths (models/{pair}/s{seed}/{name}) and metrics."""
    section: str | None = None
    """Its params section, train.<section>; None: nothing trains (the base model)."""
    settings: type[MethodSettings] = MethodSettings
    """The dataclass of train.<section> (methods sharing a section must agree on it)."""
    surgery: str | None = None
    """The function of model/surgery.py that prepares a model for this method's training."""
    saved_as: str | None = None
    """How the result is saved: one of SAVED_FORMS."""
    rows: RowRule | None = None
    """Token methods only: how their embedding rows are chosen, k being the ticket count (so every
    token method reads the tickets)."""
    target: bool = False
    """It trains the matrices of a `ks.target` module pattern (KS beyond the embedding), once per
    pattern: `target-tuned` every row of them, `target-ticket` only their KS-significant rows."""

    @property
    def trains(self) -> bool:
        return self.section is not None

    @property
    def needs_tickets(self) -> bool:
        return self.rows is not None

    @property
    def needs_target_tickets(self) -> bool:
        """A target method that trains target-select's rows (not the tuning they come from)."""
        return self.target and self.saved_as == "rows"


# ---------------------------------------------------------------------------------------------
# The roles the pipeline gives some methods (the paper's steps), and run names.

BASE = "base"
"""The untrained base model: the zero-shot row of the table."""
KS_SOURCE = "embed"
"""The method whose tuned embedding ks-select tests, row by row, against the base."""
TICKETS = "ticket"
"""The method that trains the KS winners: the row every significance test compares against."""
TARGET_SOURCE = "target-tuned"
"""The method whose tuned matrices target-select tests row by row (the embedding's KS_SOURCE)."""
TARGET_SEPARATOR = "@"


def run_name(name: str, target: str | None = None) -> str:
    """The name of one run of method `name`: itself, or METHOD@PATTERN for a target method."""
    return name if target is None else f"{name}{TARGET_SEPARATOR}{target}"


def split_run(run: str) -> tuple[str, str | None]:
    """run_name's inverse: (method, pattern or None)."""
    name, _, target = run.partition(TARGET_SEPARATOR)
    return name, target or None


def in_scope(run: str, targets) -> bool:
    """False for a target method's run whose pattern is not among `targets` (a pattern removed from
    ks.target: DVC leaves its outputs on disk); True for every other run, and for any with None."""
    return targets is None or split_run(run)[1] in (None, *targets)


# ---------------------------------------------------------------------------------------------
# Loading the method files


def _load(path: Path) -> Method:
    module_name = f"kslottery.methods.{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    entry = getattr(module, "METHOD", None)
    if not isinstance(entry, Method) or entry.name != path.stem:
        raise ImportError(f"{path} must define METHOD = Method({path.stem!r}, ...)")
    if entry.saved_as is not None and entry.saved_as not in SAVED_FORMS:
        raise ImportError(f"{path}: saved_as {entry.saved_as!r} is none of {', '.join(SAVED_FORMS)}")
    if TARGET_SEPARATOR in entry.name:
        raise ImportError(f"{path}: a method's name cannot contain {TARGET_SEPARATOR!r}")
    return entry


@cache
def methods() -> dict[str, Method]:
    """Every method, by name (sorted by name: the table's order is report/legend.py's)."""
    return {path.stem: _load(path) for path in sorted(METHODS_DIR.glob("*.py")) if path.stem != "__init__"}


def method(name: str) -> Method:
    """The registry entry of `name`; a clear error for an unknown one."""
    if name not in methods():
        raise ValueError(f"unknown method {name!r}; known: {', '.join(methods())}")
    return methods()[name]


def run_entry(run: str) -> Method:
    """The registry entry of a run's method (METHOD or METHOD@PATTERN)."""
    return method(split_run(run)[0])


def names(where: Callable[[Method], bool] = lambda entry: True) -> tuple[str, ...]:
    """The methods `where` holds for, by name: names(), names(trained), names(token_method) ..."""
    return tuple(name for name, entry in methods().items() if where(entry))


def trained(entry: Method) -> bool:
    return entry.trains


def token_method(entry: Method) -> bool:
    return entry.needs_tickets


def target_method(entry: Method) -> bool:
    return entry.target


def sections() -> dict[str, type[MethodSettings]]:
    """train.<section> -> its settings class. Methods that share a section (the token controls
    train with train.ticket) must agree on its class."""
    found: dict[str, type[MethodSettings]] = {}
    for entry in methods().values():
        if entry.trains:
            if found.setdefault(entry.section, entry.settings) is not entry.settings:
                raise ImportError(f"methods disagree on the settings of train.{entry.section}")
    return found
