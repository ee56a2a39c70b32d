"""Learning rates chosen on the dev split.

`ksl calibrate METHOD` trains one method at several learning rates, each run exactly as its
pipeline stage runs it (the same stage script under `accelerate launch`, on a copy of the params
file in which only that method's lr differs, outputs in a scratch directory), and keeps the dev
chrF++ and BLEU the stage measures after its last step. The test split is never looked at: pick
the lr here, write it into params.yaml, then `dvc repro`.

results/calibration/{pair}-s{seed}.csv keeps every trial (a new trial of the same method and lr
replaces the old row); calibration.md and calibration.png are drawn from all of them.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from kslottery import KSLotteryError
from kslottery.atomic import atomic_file, write_text
from kslottery.data.corpus import read_pairs
from kslottery.pipeline.launch import config_problems, finetune_command
from kslottery.config.registry import method as registry_entry, names, run_entry, run_name, split_run, trained
from kslottery.report.legend import colour, label
from kslottery.config.params import Params

COLUMNS = ["method", "lr", "dev_chrf++", "dev_bleu", "final_loss", "trainable_params", "seconds"]


class CalibrationError(KSLotteryError, RuntimeError):
    pass


def lr_key(method: str) -> str:
    """Where `method`'s (or a run's, METHOD@PATTERN) learning rate lives in params.yaml:
    train.<section>.lr (the controls share the ticket's section)."""
    return f"train.{run_entry(method).section}.lr"


def with_overrides(raw: dict, overrides: dict) -> dict:
    """A copy of the raw params mapping with each dotted key of `overrides` set (`train.embed.lr`)."""
    changed = copy.deepcopy(raw)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = changed
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return changed


def with_lr(raw: dict, method: str, lr: float) -> dict:
    """A copy of the raw params mapping with `method`'s learning rate set to `lr`."""
    return with_overrides(raw, {lr_key(method): lr})


def default_grid(lr: float) -> list[float]:
    """Half a decade either side of `lr`: lr / 3.16, lr, lr * 3.16 (two significant digits)."""
    return [float(f"{lr * 10 ** step:.2g}") for step in (-0.5, 0.0, 0.5)]


def check_trial_inputs(params: Params, method: str, pair: str, seed: int, base: Path, data: Path,
                       tickets: Path, target: str | None = None) -> None:
    """Everything a trial needs, checked before the first one trains (each takes minutes)."""
    problems = []
    if pair not in params.pairs:
        problems.append(f"pair {pair!r} is not in params pairs {list(params.pairs)}")
    if seed not in params.seeds:
        problems.append(f"seed {seed} is not in params seeds {list(params.seeds)}")
    if not base.is_dir():
        problems.append(f"{base} does not exist; run `dvc repro prepare-model` first")
    dev = data / "dev.tsv"
    if not dev.is_file():
        problems.append(f"{dev} does not exist; run `dvc repro prepare-data@{pair}` first")
    elif not read_pairs(dev):
        problems.append(f"{dev} holds no pairs; set data.dev_size > 0 and rerun prepare-data")
    problems += config_problems(params.accelerate)
    if params.evaluate.dev_limit == 0:
        problems.append("evaluate.dev_limit is 0 (no dev evaluation); set it to null or a number of dev pairs")
    entry = registry_entry(method)
    if entry.needs_tickets and not tickets.is_file():
        problems.append(f"{tickets} does not exist; {method} trains the tickets' rows: "
                        f"run `dvc repro ks-select@{pair}-{seed}` first")
    if entry.target and (problem := params.target_problem(target)):
        problems.append(f"{method} trains the matrices of a ks.target pattern: {problem}")
    elif not entry.target and target is not None:
        problems.append(f"--target is for the target methods only, not {method}")
    elif entry.needs_target_tickets and not tickets.is_file():
        problems.append(f"{tickets} does not exist; run `dvc repro target-select@{pair}-{seed}-{target}` first")
    if problems:
        raise CalibrationError("cannot calibrate: " + "; ".join(problems))


def train_in_scratch(raw_params: dict, overrides: dict, method: str, pair: str, seed: int, base: Path, data: Path,
                     tickets: Path, accelerate_config: str, scratch: Path, target: str | None = None) -> dict:
    """Run the training stage of `method` as `dvc repro` would, on a copy of the params with
    `overrides`, writing into `scratch` (scratch/params.yaml, scratch/model, ...); its metrics."""
    (scratch / "params.yaml").write_text(yaml.safe_dump(with_overrides(raw_params, overrides), sort_keys=False))
    needs_tickets = registry_entry(method).needs_tickets or registry_entry(method).needs_target_tickets
    command = finetune_command(accelerate_config, method=method, seed=seed, pair=pair, base=base, data=data,
                               out=scratch / "model", metrics=scratch / "metrics.json", loss_csv=scratch / "loss.csv",
                               dev_csv=scratch / "dev.csv", tickets=tickets if needs_tickets else None, target=target,
                               params=scratch / "params.yaml")
    finished = subprocess.run(command)  # its log and progress bars go to the terminal
    settings = ", ".join(f"{k} {v}" for k, v in overrides.items())
    if finished.returncode != 0:
        raise CalibrationError(f"{method} with {settings} failed (exit {finished.returncode}); its log is above")
    metrics = json.loads((scratch / "metrics.json").read_text())
    if "dev_chrf++" not in metrics:
        raise CalibrationError(f"{method} with {settings} recorded no dev score; is evaluate.dev_limit 0?")
    return metrics


def run_trial(raw_params: dict, method: str, lr: float, pair: str, seed: int, base: Path, data: Path,
              tickets: Path, accelerate_config: str, target: str | None = None) -> dict:
    """Train `method` (of ks.target pattern `target`) at `lr` with the stage script in a scratch
    directory; return its row, named by the run (METHOD@PATTERN for a target method)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"ksl-calibrate-{method}-") as scratch:
        metrics = train_in_scratch(raw_params, {lr_key(method): lr}, method, pair, seed, base, data, tickets,
                                   accelerate_config, Path(scratch), target)
    return {"method": run_name(method, target), "lr": lr, "dev_chrf++": metrics["dev_chrf++"], "dev_bleu": metrics["dev_bleu"],
            "final_loss": metrics["final_loss"], "trainable_params": metrics["trainable_params"],
            "seconds": round(time.perf_counter() - start)}


def read_table(csv: Path, columns: list[str], command: str) -> pd.DataFrame | None:
    """A trial table on file (None when there is none yet); one without `columns` is refused."""
    if not csv.is_file():
        return None
    trials = pd.read_csv(csv)
    if missing := [c for c in columns if c not in trials.columns]:
        raise CalibrationError(f"{csv} lacks the columns {missing}: not a `{command}` trial file; "
                               "move it away (or pass another --out)")
    return trials


def merge_rows(old: pd.DataFrame | None, new: list[dict], columns: list[str], keys: list[str]) -> pd.DataFrame:
    """Old trials plus new ones; a new trial with the same `keys` replaces the old row; sorted by `keys`."""
    frame = pd.DataFrame(new, columns=columns)
    if old is not None and len(old):
        frame = pd.concat([old[columns], frame]).drop_duplicates(keys, keep="last")
    return frame.sort_values(keys).reset_index(drop=True)


def read_trials(csv: Path) -> pd.DataFrame | None:
    """The calibration trials on file (None when there are none yet)."""
    return read_table(csv, COLUMNS, "ksl calibrate")


def merge_trials(old: pd.DataFrame | None, new: list[dict]) -> pd.DataFrame:
    """Old trials plus new ones; a new trial of the same (method, lr) replaces the old row."""
    return merge_rows(old, new, COLUMNS, ["method", "lr"])


def best_lrs(trials: pd.DataFrame) -> dict[str, float]:
    """method -> the lr with the highest dev chrF++ (ties: the smaller lr)."""
    ranked = trials.sort_values(["dev_chrf++", "lr"], ascending=[False, True])
    return {method: float(rows["lr"].iloc[0]) for method, rows in ranked.groupby("method", sort=False)}


def to_markdown(trials: pd.DataFrame, pair: str, seed: int, current: dict[str, float], dev_pairs: int | None) -> str:
    """The trials of one pair and seed as a table: best dev chrF++ per method in bold, the lr in
    params.yaml marked, and a note where the best lr is at the edge of what was tried."""
    best = best_lrs(trials)
    size = f" ({dev_pairs} dev pairs)" if dev_pairs is not None else ""
    lines = [f"### {pair}, seed {seed}: dev chrF++ by learning rate{size}", "",
             "| method | lr | dev chrF++ | dev BLEU | final train loss | seconds | |",
             "|---|---:|---:|---:|---:|---:|---|"]
    edges = []
    for method, rows in trials.groupby("method", sort=True):
        for row in rows.to_dict("records"):
            chrf = f"{row['dev_chrf++']:.2f}"
            notes = ["params.yaml" if math.isclose(row["lr"], current.get(split_run(method)[0], -1)) else "",
                     "best" if row["lr"] == best[method] else ""]
            lines.append(f"| {method} | {row['lr']:g} | {f'**{chrf}**' if 'best' in notes else chrf} | "
                         f"{row['dev_bleu']:.2f} | {row['final_loss']:.3f} | {row['seconds']} | "
                         f"{', '.join(n for n in notes if n)} |")
        if len(rows) > 1 and best[method] in (rows["lr"].min(), rows["lr"].max()):
            edges.append(method)
    if edges:
        lines += ["", f"Best at the edge of the lrs tried (try beyond it): {', '.join(edges)}."]
    return "\n".join(lines) + "\n"


def write_report(out: Path, params: Params, prepared: Path) -> list[Path]:
    """Redraw out/calibration.md and out/calibration.png from every out/calibration/{pair}-s{seed}.csv
    (the lrs in `params` marked); return the paths written (none when there are no trials)."""
    runs = {path.stem: read_trials(path) for path in sorted((out / "calibration").glob("*-s*.csv"))}
    if not runs:
        return []
    current = {method: params.train_settings(method).lr for method in names(trained)}
    sections = []
    for run, trials in runs.items():
        pair, seed = run.rsplit("-s", 1)
        dev = prepared / pair / "dev.tsv"
        dev_pairs = len(read_pairs(dev)[: params.evaluate.dev_limit]) if dev.is_file() else None
        sections.append(to_markdown(trials, pair, int(seed), current, dev_pairs))
    write_text(out / "calibration.md", "\n".join(sections))
    with atomic_file(out / "calibration.png") as tmp:
        plot(runs, tmp)
    return [out / "calibration.md", out / "calibration.png"]


def plot(trials_by_run: dict[str, pd.DataFrame], out_png: str | Path) -> None:
    """Dev chrF++ against lr (log scale), one line per method, one panel per run ("{pair}-s{seed}")."""
    from kslottery.report.figures import label_axes, pyplot, save_png

    plt = pyplot()
    fig, axes = plt.subplots(1, len(trials_by_run), figsize=(6.5 * len(trials_by_run), 4.2), squeeze=False)
    for ax, (run, trials) in zip(axes[0], sorted(trials_by_run.items())):
        best = best_lrs(trials)
        for method, rows in trials.groupby("method"):
            ax.plot(rows["lr"], rows["dev_chrf++"], marker="o", color=colour(method), label=label(method))
            top = rows[rows["lr"] == best[method]]
            ax.scatter(top["lr"], top["dev_chrf++"], marker="*", s=180, color=colour(method), zorder=3)
        ax.set_xscale("log")
        pair, seed = run.rsplit("-s", 1)
        label_axes(ax, f"{pair}, seed {seed}: dev chrF++ by learning rate (star: best)", "learning rate",
                   "dev chrF++ after training")
    save_png(fig, out_png, dpi=110)
