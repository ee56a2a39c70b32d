"""The methods: one registry, read by every other module (no list of method names lives elsewhere).

A method is a way of fine-tuning the base model for translation. What it *is*, beyond this table,
is only its surgery (surgery.py: which parameters train, how the result is saved); the training
loop never knows which method it runs.

Torch-free, so that the command line, the params and the report can read it without loading torch.

Adding a method:
  1. an entry in METHODS below (and, if it has settings beyond the lr, a settings class here);
  2. its surgery function in surgery.py (named by `surgery`);
  3. its name in the training matrix of dvc.yaml that fits it (`finetune` if it does not read the
     tickets, `ticket-finetune` if it does) and in the `evaluate` matrix; tests/test_methods.py
     checks that dvc.yaml and this registry agree.

The target methods (`target-tuned`, `target-ticket`) run once per module pattern of `ks.target`: their
runs are named METHOD@PATTERN (models/{pair}/s{seed}/target-tuned@mlp.down_proj), and the table shows
them as "label (pattern)".
"""

from __future__ import annotations

from dataclasses import dataclass

from kslottery.rules import checked, not_empty, positive

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


# ---------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Method:
    name: str
    """As in dvc.yaml, paths (models/{pair}/s{seed}/{name}) and metrics."""
    label: str
    """Row label in the table and legend of the plots."""
    description: str
    """What a trained directory of this method holds (the model card's first sentence)."""
    colour: str
    """Colour in every plot."""
    section: str | None = None
    """Its params section, train.<section>; None: nothing trains (the base model)."""
    settings: type[MethodSettings] = MethodSettings
    """The dataclass of train.<section> (only read for the method that owns the section)."""
    surgery: str | None = None
    """The function of surgery.py that prepares a model for this method's training."""
    saved_as: str | None = None
    """How the result is saved: `embedding` (the tuned (V, d) matrix), `adapter` (a peft adapter
    directory) or `model` (a whole model directory)."""
    rows: str | None = None
    """Token methods only: how their embedding rows are chosen (tickets.control_rows): `tickets` (the
    KS winners), `random` (k rows drawn from the whole vocabulary), `random_seen` (k rows drawn
    among those that occur in the training inputs), `frequent` (the k most frequent tokens of the
    training inputs) or `template_tokens` (the prompt template's own tokens, however many). k is the
    ticket count, so every token method reads the tickets."""
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


# The table's row order (the paper's), which is also the legend order of every plot.
METHODS: tuple[Method, ...] = (
    Method("base", "base (zero-shot)", "the base model, untrained", "#8c8c8c"),
    Method("full", "full fine-tuning", "full fine-tuning: every weight trained; a whole model", "#4c72b0",
           section="full", surgery="prepare_full", saved_as="model"),
    Method("embed", "embedding only",
           "the whole input-embedding matrix after embedding-only tuning (every other weight frozen)", "#55a868",
           section="embed", surgery="prepare_embed", saved_as="embedding"),
    Method("lora", "LoRA", "a LoRA adapter (peft)", "#c44e52",
           section="lora", settings=LoraSettings, surgery="prepare_lora", saved_as="adapter"),
    Method("prefix", "prefix-tuning", "a prefix-tuning adapter (peft)", "#8172b2",
           section="prefix", settings=PrefixSettings, surgery="prepare_prefix", saved_as="adapter"),
    Method("random-k", "random k rows",
           "a control: as many embedding rows as the ticket, drawn at random from the whole vocabulary", "#937860",
           section="ticket", surgery="prepare_tokens", saved_as="adapter", rows="random"),
    Method("random-seen-k", "random k seen rows",
           "a control: as many embedding rows as the ticket, drawn at random among the tokens of the training "
           "inputs (the rows embedding tuning moves)", "#8c613c",
           section="ticket", surgery="prepare_tokens", saved_as="adapter", rows="random_seen"),
    Method("frequent-k", "most frequent k rows",
           "a control: as many embedding rows as the ticket, the most frequent tokens of the training inputs "
           "(prompt, source and target)", "#da8bc3",
           section="ticket", surgery="prepare_tokens", saved_as="adapter", rows="frequent"),
    Method("template-tokens", "template tokens",
           "a control: the rows of the prompt template's own tokens (those in every training prompt), "
           "a prompt-tuning-like baseline", "#17becf",
           section="ticket", surgery="prepare_tokens", saved_as="adapter", rows="template_tokens"),
    Method("ticket", "KS tickets",
           "the KS-Lottery winning tickets: only the embedding rows whose KS shift was significant were trained",
           "#dd8452", section="ticket", surgery="prepare_tokens", saved_as="adapter", rows="tickets"),
    # KS beyond the embedding (ks.target): the same three steps on other matrices, rows = output units
    Method("target-tuned", "target matrices only",
           "the tuned matrices of a ks.target module pattern: every row of them trained, every other weight frozen",
           "#bcbd22", section="target_tuned", surgery="prepare_target", saved_as="weights", target=True),
    Method("target-ticket", "target KS rows",
           "only the rows (output units) of a ks.target pattern's matrices whose KS shift was significant were "
           "trained", "#7f7f7f", section="target_ticket", surgery="prepare_target", saved_as="rows", target=True),
)

BY_NAME = {m.name: m for m in METHODS}
NAMES = tuple(BY_NAME)
TRAINED = tuple(m.name for m in METHODS if m.trains)
TOKEN_METHODS = tuple(m.name for m in METHODS if m.needs_tickets)
TARGET_METHODS = tuple(m.name for m in METHODS if m.target)
SECTIONS = {m.section: m.settings for m in METHODS if m.trains and m.name.replace("-", "_") == m.section}
"""train.<section> -> its settings class, from the method that owns each section."""

BASE = "base"
"""The untrained base model: the zero-shot row of the table."""
KS_SOURCE = "embed"
"""The method whose tuned embedding ks-select tests, row by row, against the base."""
TICKETS = "ticket"
"""The method that trains the KS winners: the row every significance test compares against."""
GAIN_REFERENCES = ("embed", "full")
"""The methods whose gains over the base the table's shares are taken of (embedding-only, full)."""
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


def run_entry(run: str) -> Method:
    """The registry entry of a run's method (METHOD or METHOD@PATTERN)."""
    return method(split_run(run)[0])


def in_scope(run: str, targets) -> bool:
    """False for a target method's run whose pattern is not among `targets` (a pattern removed from
    ks.target: DVC leaves its outputs on disk); True for every other run, and for any with None."""
    return targets is None or split_run(run)[1] in (None, *targets)


def method(name: str) -> Method:
    """The registry entry of `name`; a clear error for an unknown one."""
    if name not in BY_NAME:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(NAMES)}")
    return BY_NAME[name]


def order(names) -> list[str]:
    """`names` (runs) in the registry's order, a target method's patterns sorted; unknown names last
    (sorted)."""
    def key(run):
        name, target = split_run(run)
        return (NAMES.index(name), target or "") if name in BY_NAME else (len(NAMES), run)
    return sorted(set(names), key=key)


def label(run: str) -> str:
    """The table label of a run: the method's label, with its pattern for a target method."""
    name, target = split_run(run)
    if name not in BY_NAME:
        return run
    return BY_NAME[name].label if target is None else f"{BY_NAME[name].label} ({target})"


def colour(run: str) -> str | None:
    name, _ = split_run(run)
    return BY_NAME[name].colour if name in BY_NAME else None


def label_colour(run_label: str) -> str | None:
    """The colour of a table row, from its label (a target run's is "label (pattern)")."""
    by_label = {m.label: m.colour for m in METHODS}
    return by_label.get(run_label, by_label.get(run_label.rsplit(" (", 1)[0]))


assert all(m.section in SECTIONS for m in METHODS if m.trains), "every section is owned by a method of that name"
assert all(TARGET_SEPARATOR not in m.name for m in METHODS)
