"""Experiments side by side: what `dvc exp run -S ...` varied, and what it changed.

Input is the JSON of `dvc exp show --json` (the workspace, each commit shown, and their
experiments, each with its params.yaml values and the metrics files of metrics/summary/). Output:

* a table with one row per experiment: the params that differ between experiments (the swept
  ones: alpha, ks.rank_by, ks.top_k, train.embed.lr, ...), then per pair the ticket count
  and chrF++/BLEU of the tickets and of the methods they are measured against;
* a plot of tickets and chrF++ against alpha, when alpha was swept.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

from kslottery.config.registry import KS_SOURCE, TICKETS, names, token_method
from kslottery.report.legend import colour, label, order
from kslottery.report.tables import PAIR_SUMMARIES, SUMMARY_DIR

# The methods an alpha or ranking change moves (the token methods), and the embedding they are cut from
COMPARED = (TICKETS, KS_SOURCE, *(name for name in order(names(token_method)) if name != TICKETS))
SCORES = {"chrf++": "chrF++", "bleu": "BLEU", "whole_chrf++": "chrF++ (whole)"}
NOT_RESULTS = ("checkpoint_every",)  # params that change how a run gets there, never its result


def dvc_exp_show(repo: str | Path = ".", all_commits: bool = False) -> list[dict]:
    """Run `dvc exp show --json` in `repo` (`-A` with all_commits) and return its parsed output."""
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json"] + (["-A"] if all_commits else [])
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"`dvc exp show --json` failed in {repo}:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def _runs(entries: list[dict]):
    """Yield (name, params, summary) for every finished revision in `dvc exp show --json` output.

    Queued, running and failed experiments are skipped: DVC shows them with their new params but
    with the metrics of the commit they started from, which would pair params with wrong results."""
    for entry in entries:
        data = entry.get("data") or {}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
        summary = summary_of(data.get("metrics") or {})
        if params is not None and summary and not entry.get("error"):
            rev = str(entry.get("rev", "?"))
            yield entry.get("name") or (rev if rev == "workspace" else rev[:7]), params, summary
        for experiment in entry.get("experiments") or []:
            state = (experiment.get("executor") or {}).get("state", "success")
            if state == "success":
                yield from _runs(experiment.get("revs") or [])


def summary_of(metrics: dict) -> dict:
    """The metrics files of SUMMARY_DIR in one `dvc exp show` revision, as pair -> name -> record."""
    summary: dict = {}
    for path, entry in metrics.items():
        parts = Path(path).parts
        if Path(path).parent.parent.as_posix() == SUMMARY_DIR and path.endswith(".json"):
            summary.setdefault(parts[-2], {})[Path(path).stem] = (entry or {}).get("data") or {}
    return summary


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


def experiment_table(exp_show: list[dict]) -> pd.DataFrame:
    """One row per experiment (duplicates of the same params and results dropped, e.g. the workspace
    and its commit): the swept params, then per pair tickets and the compared methods' scores."""
    rows = []
    for name, params, summary in _runs(exp_show):
        row = {"experiment": name, **{f"param {k}": v for k, v in _flatten(params).items()}}
        for pair, methods in sorted(summary.items()):
            row[f"{pair} tickets"] = (methods.get(PAIR_SUMMARIES["tickets"][0]) or {}).get("n_tickets")
            for method in COMPARED:
                for score, label in SCORES.items():
                    if score in (methods.get(method) or {}):
                        row[f"{pair} {method} {label}"] = methods[method][score]
        rows.append(row)
    if not rows:
        raise ValueError(f"no run in the `dvc exp show` output has both params.yaml and {SUMMARY_DIR}/; "
                         "run the pipeline (dvc repro / dvc exp run) first")
    frame = pd.DataFrame(rows)
    frame = frame.loc[~frame.drop(columns="experiment").apply(_text).duplicated()]
    param_columns = [c for c in frame if c.startswith("param ")]
    swept = [c for c in param_columns
             if _text(frame[c]).nunique() > 1 and c.removeprefix("param ") not in NOT_RESULTS]
    frame = frame.drop(columns=sorted(set(param_columns) - set(swept)))
    frame = frame.rename(columns={c: c.removeprefix("param ") for c in swept})
    swept = [c.removeprefix("param ") for c in swept]
    return frame.sort_values(swept or ["experiment"], key=_sort_key).set_index("experiment")


def _text(column: pd.Series) -> pd.Series:
    """Each value as Python's str, null and NaN included (pandas' astype(str) keeps NaN missing)."""
    return column.map(str)


def _sort_key(column: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(column, errors="coerce")
    return numeric if numeric.notna().all() else column.astype(str)


def alpha_sweep(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of an alpha sweep: those whose other swept params equal the workspace's (else the
    most common values), so that a ranking ablation in the same table is not joined into the
    alpha line."""
    if "alpha" not in table:
        raise ValueError("alpha was not swept: every experiment has the same alpha")
    others = [c for c in table.columns if " " not in c and c != "alpha"]  # swept params have no spaces
    keep = pd.Series(True, index=table.index)
    for column in others:
        values = _text(table[column])
        reference = values["workspace"] if "workspace" in values.index else values.mode().iloc[0]
        keep &= values == reference
    return table[keep]


def plot_alpha_sweep(table: pd.DataFrame, out_png: str | Path) -> None:
    """Tickets (left axis, log) and chrF++ (right axis) against alpha (log), one line per method,
    over the alpha sweep's rows (`alpha_sweep`)."""
    from kslottery.report.figures import pyplot, save_png

    plt = pyplot()
    table = alpha_sweep(table).sort_values("alpha")
    alpha = table["alpha"].astype(float)
    pairs = sorted({c.split(" ")[0] for c in table if c.endswith(" tickets")})
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.5 * len(pairs), 4.8), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        ax.plot(alpha, table[f"{pair} tickets"], "o-", color="#555555", label="tickets (left axis)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("alpha")
        ax.set_ylabel("tickets")
        right = ax.twinx()
        for method, style in zip(COMPARED, ("o-", "-", "^:", "s--")):
            column = f"{pair} {method} chrF++"
            if column in table:
                right.plot(alpha, table[column], style, color=colour(method), label=f"{label(method)} chrF++")
        right.set_ylabel("chrF++")
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)  # below the axes, clear of the lines
        ax.set_title(f"{pair}: tickets and translation quality vs alpha")
    save_png(fig, out_png)


def to_markdown(table: pd.DataFrame) -> str:
    def cell(value, is_param: bool):
        if isinstance(value, float) and math.isnan(value):
            return "null"  # as params.yaml writes it
        if isinstance(value, float) and math.isfinite(value) and value == int(value) and (is_param or abs(value) >= 1000):
            return f"{int(value):,}"
        return value

    shown = table.copy()
    for column in shown.columns:
        is_param = " " not in column  # swept params are dotted keys; result columns are "{pair} ..."
        shown[column] = shown[column].map(lambda v, p=is_param: cell(v, p)).astype(object)
    return shown.to_markdown(floatfmt=".4g") + "\n"
