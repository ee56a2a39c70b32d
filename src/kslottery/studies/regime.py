"""The regime map: which embedding-tuning settings make the KS test select tens of rows, or thousands.

`ksl regime` tunes the embedding (methods.KS_SOURCE) with every setting of a grid (learning rate x
schedule, with an optimizer, a warmup share and a number of steps), each run exactly as the
finetune stage runs it
(the stage script, on a copy of params.yaml in which only train.embed differs), then runs the
ks-select stage script on the result. A trial keeps: its settings, the rows that moved, the tickets
at params alpha and their classes (tickets.TOKEN_CLASSES: template, punctuation, frequent, content),
and the embedding-only model's dev chrF++ and BLEU. The test split is never looked at.

results/regime/{pair}-s{seed}.csv keeps every trial (a new trial of the same settings replaces the
old row); regime.md and regime.png are drawn from all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from kslottery.atomic import atomic_file, write_text
from kslottery.studies.calibrate import CalibrationError, merge_rows, read_table, train_in_scratch
from kslottery.pipeline.launch import stages_dir
from kslottery.config.registry import KS_SOURCE, method as registry_entry
from kslottery.lottery.tickets import TOKEN_CLASSES

SETTINGS = ["optimizer", "momentum", "lr", "schedule", "warmup", "steps"]
GROUPS = ["optimizer", "momentum", "schedule", "warmup", "steps"]  # one line per group in the plot
OLD_DEFAULTS = {"optimizer": "adamw", "momentum": 0.0}
"""The settings a trial file written before they were columns ran with."""
CLASS_COLUMNS = [f"n_{name}" for name in TOKEN_CLASSES]
COLUMNS = [*SETTINGS, "alpha", "n_moved", "n_tickets", *CLASS_COLUMNS, "dev_chrf++", "dev_bleu", "final_loss", "seconds"]


DEFAULT_LRS = (2e-5, 6.3e-5, 2e-4, 6.3e-4, 2e-3, 6.3e-3, 1e-2)
"""The embedding lrs a map tries when none are given: 2e-5 to 1e-2, half a decade apart."""


def settings_grid(current, lrs=(), schedules=(), warmup: float | None = None, steps: int | None = None,
                  optimizer: str | None = None, momentum: float | None = None) -> list[dict]:
    """The trials' train.embed settings: every lr (DEFAULT_LRS if none) under every schedule (the
    current one if none), with `optimizer`, `momentum`, `warmup` and `steps` where given, else the
    current settings' own."""
    optimizer = optimizer or current.optimizer
    momentum = (current.momentum if optimizer == current.optimizer else 0.0) if momentum is None else momentum
    return [{"optimizer": optimizer, "momentum": momentum, "lr": lr, "schedule": schedule,
             "warmup": current.warmup if warmup is None else warmup, "steps": steps or current.steps}
            for schedule in (schedules or (current.schedule,)) for lr in sorted(set(lrs) or DEFAULT_LRS)]


def run_trial(raw_params: dict, setting: dict, pair: str, seed: int, base: Path, data: Path,
              accelerate_config: str) -> dict:
    """Tune the embedding with `setting` (SETTINGS), select its tickets; its row."""
    section = registry_entry(KS_SOURCE).section
    overrides = {f"train.{section}.{key}": value for key, value in setting.items()}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ksl-regime-") as scratch:
        scratch = Path(scratch)
        trained = train_in_scratch(raw_params, overrides, KS_SOURCE, pair, seed, base, data, scratch / "none",
                                   accelerate_config, scratch)
        command = [sys.executable, str(stages_dir() / "ks_select.py"), "--params", str(scratch / "params.yaml"),
                   "--pair", pair, "--base", str(base), "--embed", str(scratch / "model"), "--data", str(data),
                   "--out", str(scratch / "tickets.json"), "--metrics", str(scratch / "ks.json"),
                   "--histogram", str(scratch / "hist.csv"), "--allow-empty"]
        if subprocess.run(command).returncode != 0:
            raise CalibrationError(f"ks-select after {setting} failed; its log is above")
        selected = json.loads((scratch / "ks.json").read_text())
    return {**setting, "alpha": selected["alpha"], "n_moved": selected["n_moved"], "n_tickets": selected["n_tickets"],
            **{column: selected[column] for column in CLASS_COLUMNS},
            "dev_chrf++": trained["dev_chrf++"], "dev_bleu": trained["dev_bleu"], "final_loss": trained["final_loss"],
            "seconds": round(time.perf_counter() - start)}


def read_trials(csv: Path) -> pd.DataFrame | None:
    """The regime trials on file (None when there are none yet); a file from before the optimizer
    columns holds AdamW trials (OLD_DEFAULTS)."""
    if csv.is_file():
        head = pd.read_csv(csv, nrows=0).columns
        if set(OLD_DEFAULTS).isdisjoint(head) and set(COLUMNS) - set(OLD_DEFAULTS) <= set(head):
            trials = pd.read_csv(csv)
            return trials.assign(**OLD_DEFAULTS)[COLUMNS]
    return read_table(csv, COLUMNS, "ksl regime")


def merge_trials(old: pd.DataFrame | None, new: list[dict]) -> pd.DataFrame:
    """Old trials plus new ones; a new trial of the same settings and alpha replaces the old row."""
    return merge_rows(old, new, COLUMNS, [*GROUPS, "alpha", "lr"])


def to_markdown(trials: pd.DataFrame, pair: str, seed: int) -> str:
    """One row per trial: settings, moved rows, tickets and their classes, dev scores."""
    shown = trials.copy()
    shown["lr"] = shown["lr"].map(lambda v: f"{v:g}")
    shown = shown.rename(columns={"n_moved": "rows moved", "n_tickets": "tickets", "dev_chrf++": "dev chrF++",
                                  "dev_bleu": "dev BLEU", "final_loss": "final loss"}
                         | {c: c.removeprefix("n_") for c in CLASS_COLUMNS})
    return (f"### {pair}, seed {seed}: embedding-tuning settings -> KS tickets\n\n"
            f"Tickets at the alpha of each row; their classes: {', '.join(TOKEN_CLASSES)} (first match; "
            "`frequent`: among the 100 most frequent tokens of the training inputs). Dev scores: the "
            "embedding-only model after training (first line).\n\n"
            + shown.to_markdown(index=False, floatfmt=".4g") + "\n")


def write_report(out: Path) -> list[Path]:
    """Redraw out/regime.md and out/regime.png from every out/regime/{pair}-s{seed}.csv; the paths
    written (none when there are no trials)."""
    runs = {path.stem: read_trials(path) for path in sorted((out / "regime").glob("*-s*.csv"))}
    if not runs:
        return []
    sections = [to_markdown(trials, *_run_name(run)) for run, trials in runs.items()]
    write_text(out / "regime.md", "\n".join(sections))
    with atomic_file(out / "regime.png") as tmp:
        plot(runs, tmp)
    return [out / "regime.md", out / "regime.png"]


def _group_name(optimizer: str, momentum: float, schedule: str, warmup: float, steps: int) -> str:
    moment = f" (momentum {momentum:g})" if momentum else ""
    return f"{optimizer}{moment}, {schedule}, warmup {warmup:g}, {steps} steps"


def _run_name(run: str) -> tuple[str, int]:
    pair, seed = run.rsplit("-s", 1)
    return pair, int(seed)


def plot(trials_by_run: dict[str, pd.DataFrame], out_png: str | Path) -> None:
    """Per run: tickets against lr (log axes, zero kept), one line per optimizer/schedule/warmup/steps; the
    classes' shares as stacked bars at each lr in a second panel; dev chrF++ against lr in a third."""
    from kslottery.report.figures import label_axes, pyplot, save_png

    plt = pyplot()
    fig, axes = plt.subplots(len(trials_by_run), 3, figsize=(18, 4.4 * len(trials_by_run)), squeeze=False)
    colours = {"template": "#dd8452", "punctuation": "#937860", "frequent": "#4c72b0", "content": "#55a868"}
    for row, (run, trials) in zip(axes, sorted(trials_by_run.items())):
        pair, seed = _run_name(run)
        groups = list(trials.groupby(GROUPS))
        for group, rows in groups:
            rows = rows.sort_values("lr")
            name = _group_name(*group)
            row[0].plot(rows["lr"], rows["n_tickets"], "o-", label=name)
            row[2].plot(rows["lr"], rows["dev_chrf++"], "o-", label=name)
        row[0].set_xscale("log")
        row[0].set_yscale("symlog", linthresh=1)  # log above 1 ticket, and 0 tickets still on the axis
        row[0].set_ylim(bottom=0)
        label_axes(row[0], f"{pair}, seed {seed}: KS tickets by embedding lr", "embedding lr", "tickets")
        group, first = groups[0]
        first = first.sort_values("lr")
        bottom = pd.Series(0.0, index=first.index)
        labels = [f"{lr:g}" for lr in first["lr"]]
        for name in TOKEN_CLASSES:
            share = first[f"n_{name}"] / first["n_tickets"].clip(lower=1)
            row[1].bar(labels, share, bottom=bottom, color=colours[name], label=name)
            bottom += share
        row[1].set_ylim(0, 1)
        label_axes(row[1], f"ticket classes ({_group_name(*group)})", "embedding lr",
                   "share of the tickets")
        row[2].set_xscale("log")
        label_axes(row[2], "embedding-only dev chrF++", "embedding lr", "dev chrF++ (first line)")
    save_png(fig, out_png, dpi=110)
