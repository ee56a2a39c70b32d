"""How the methods look in the table and the plots: label, colour, description, and the row order.

Presentation only, read by the report and the studies, never by a stage that trains or evaluates:
changing a label or a colour reruns the `table` stage alone. A method missing here (a new one) is
shown by its name, after these, in the default colour.
"""

from __future__ import annotations

from dataclasses import dataclass

from kslottery.config.registry import split_run


@dataclass(frozen=True)
class Look:
    label: str
    """Row label in the table and legend of the plots."""
    colour: str
    """Colour in every plot."""
    description: str
    """What the method trains, in a sentence (the table's notes)."""


# The table's row order (the paper's), which is also the legend order of every plot.
LEGEND: dict[str, Look] = {
    "base": Look("base (zero-shot)", "#8c8c8c", "the base model, untrained"),
    "full": Look("full fine-tuning", "#4c72b0", "full fine-tuning: every weight trained; a whole model"),
    "embed": Look("embedding only", "#55a868",
                  "the whole input-embedding matrix after embedding-only tuning (every other weight frozen)"),
    "lora": Look("LoRA", "#c44e52", "a LoRA adapter (peft)"),
    "prefix": Look("prefix-tuning", "#8172b2", "a prefix-tuning adapter (peft)"),
    "random-k": Look("random k rows", "#937860",
                     "a control: as many embedding rows as the ticket, drawn at random from the whole vocabulary"),
    "random-seen-k": Look("random k seen rows", "#8c613c",
                          "a control: as many embedding rows as the ticket, drawn at random among the tokens of the "
                          "training inputs (the rows embedding tuning moves)"),
    "frequent-k": Look("most frequent k rows", "#da8bc3",
                       "a control: as many embedding rows as the ticket, the most frequent tokens of the training "
                       "inputs (prompt, source and target)"),
    "template-tokens": Look("template tokens", "#17becf",
                            "a control: the rows of the prompt template's own tokens (those in every training "
                            "prompt), a prompt-tuning-like baseline"),
    "stop-tokens": Look("end and newline rows", "#2ca02c",
                        "a control: only the rows a translation ends with (end of text, newline): what learning "
                        "to stop alone recovers"),
    "ticket": Look("KS tickets", "#dd8452",
                   "the KS-Lottery winning tickets: only the embedding rows whose KS shift was significant were "
                   "trained"),
    # KS beyond the embedding (ks.target): the same three steps on other matrices, rows = output units
    "target-tuned": Look("target matrices only", "#bcbd22",
                         "the tuned matrices of a ks.target module pattern: every row of them trained, every other "
                         "weight frozen"),
    "target-ticket": Look("target KS rows", "#7f7f7f",
                          "only the rows (output units) of a ks.target pattern's matrices whose KS shift was "
                          "significant were trained"),
}
ORDER = tuple(LEGEND)

GAIN_REFERENCES = ("embed", "full")
"""The methods whose gains over the base the table's shares are taken of (embedding-only, full)."""
FEWER_THAN_K = ("random-seen-k", "frequent-k")
"""Token methods that draw from the training inputs, so may find fewer than k rows."""


def order(names) -> list[str]:
    """`names` (runs) in the legend's order, a target method's patterns sorted; unknown names last
    (sorted)."""
    def key(run):
        name, target = split_run(run)
        return (ORDER.index(name), target or "") if name in LEGEND else (len(ORDER), run)
    return sorted(set(names), key=key)


def label(run: str) -> str:
    """The table label of a run: the method's label, with its pattern for a target method; a method
    without a Look is shown by its name."""
    name, target = split_run(run)
    text = LEGEND[name].label if name in LEGEND else name
    return text if target is None else f"{text} ({target})"


def colour(run: str) -> str | None:
    name, _ = split_run(run)
    return LEGEND[name].colour if name in LEGEND else None


def description(run: str) -> str:
    name, _ = split_run(run)
    return LEGEND[name].description if name in LEGEND else f"method {name}"


def label_colour(run_label: str) -> str | None:
    """The colour of a table row, from its label (a target run's is "label (pattern)")."""
    by_label = {look.label: look.colour for look in LEGEND.values()}
    return by_label.get(run_label, by_label.get(run_label.rsplit(" (", 1)[0]))


assert len({look.colour for look in LEGEND.values()}) == len(LEGEND) == len({look.label for look in LEGEND.values()})
