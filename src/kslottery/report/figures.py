"""Figures drawn from the small metrics files, as PNGs under results/, so that they open offline.

* loss_curves.png: training loss per step of every method, one panel per pair (a 10-step moving
  average over the raw curve; with several seeds, their mean).
* ks_histogram.png: how many rows reached each value of the KS statistic D (only h/d values
  occur), tickets in colour, and the critical D of alpha as a line: the rows right of it are the
  winning tickets. One panel per pair (first seed).
* dev curves (`ksl table --train-dir DIR --dev-curves PNG`): dev chrF++ after every epoch of each
  run, for runs trained more than one epoch (e.g. to convergence with train.patience).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kslottery.config.registry import TICKETS, in_scope
from kslottery.evaluation.scoring import PROTOCOL_LABELS, PROTOCOLS, score_key
from kslottery.report.tables import COST_COLUMNS, SCORES, score_prefix
from kslottery.report.legend import colour, label, label_colour, order


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_axes(ax, title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels, a small legend and a light grid: the finish every line plot here shares."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def save_png(fig, out_png: str | Path, dpi: int = 120) -> None:
    """Write the figure as a PNG (also to a path without .png, e.g. an atomic temporary) and close it."""
    fig.tight_layout()
    fig.savefig(out_png, dpi=dpi, format="png")
    pyplot().close(fig)


def run_files(train_dir: str | Path, suffix: str):
    """(pair, seed, method, path) of every {pair}/s{seed}/{method}{suffix} under a training metrics dir."""
    for path in sorted(Path(train_dir).glob(f"*/s*/*{suffix}")):
        yield path.parts[-3], int(path.parts[-2][1:]), path.name.removesuffix(suffix), path


def read_losses(train_dir: str | Path, pairs, seeds, targets=None) -> dict[str, dict[str, pd.DataFrame]]:
    """pair -> method -> DataFrame(step, one column per seed) from {pair}/s{seed}/{method}.loss.csv
    (of the given pairs, seeds and, for target methods, ks.target patterns)."""
    curves: dict[str, dict[str, dict[int, pd.Series]]] = {}
    for pair, seed, method, path in run_files(train_dir, ".loss.csv"):
        if pair in pairs and seed in seeds and in_scope(method, targets):
            curves.setdefault(pair, {}).setdefault(method, {})[seed] = pd.read_csv(path, index_col="step")["loss"]
    return {pair: {m: pd.DataFrame(by_seed) for m, by_seed in methods.items()} for pair, methods in curves.items()}


def loss_curves_frame(train_dir: str | Path, pairs, seeds, targets=None) -> pd.DataFrame | None:
    """The first pair's loss per step, one column per method (mean over seeds), for DVC's loss
    comparison plot (results/loss_curves.csv); None when there are no curves yet."""
    curves = read_losses(train_dir, set(pairs), set(seeds), targets)
    if not curves:
        return None
    methods = curves[sorted(curves)[0]]
    frame = pd.DataFrame({method: methods[method].mean(axis=1) for method in order(methods)})
    return frame.rename_axis("step").round(4)


def plot_losses(train_dir: str | Path, pairs, seeds, out_png: str | Path, targets=None) -> bool:
    """Loss curves per method; False (and nothing written) when there are none yet."""
    curves = read_losses(train_dir, set(pairs), set(seeds), targets)
    if not curves:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(6.5 * len(curves), 4.2), squeeze=False)
    for ax, (pair, methods) in zip(axes[0], sorted(curves.items())):
        for method in order(methods):
            mean = methods[method].mean(axis=1)
            ax.plot(mean.index, mean, color=colour(method), alpha=0.2, linewidth=0.8)
            ax.plot(mean.index, mean.rolling(10, min_periods=1).mean(), color=colour(method), linewidth=1.8,
                    label=label(method))
        label_axes(ax, f"{pair}: training loss" + (f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""),
                   "optimizer step", "loss on target tokens")
    save_png(fig, out_png)
    return True


def dev_curves_frame(train_dir: str | Path) -> pd.DataFrame:
    """Every run's dev scores per epoch, long: pair, seed, method, epoch, chrF++, BLEU (from
    {pair}/s{seed}/{method}.dev.csv, which the training stages write after every epoch)."""
    frames = []
    for pair, seed, method, path in run_files(train_dir, ".dev.csv"):
        frame = pd.read_csv(path)
        if not frame.empty:
            frames.append(frame.rename(columns={"chrf++": "chrF++", "bleu": "BLEU"}).assign(pair=pair, seed=seed, method=method))
    columns = ["pair", "seed", "method", "epoch", "chrF++", "BLEU"]
    return pd.concat(frames)[columns].reset_index(drop=True) if frames else pd.DataFrame(columns=columns)


def mean_dev_curve(runs: pd.DataFrame) -> pd.Series:
    """One method's mean dev chrF++ over seeds per epoch, over the epochs every seed ran: a seed that
    stopped early leaves the mean there, rather than the mean jumping to the other seeds' scores."""
    every_seed_ran = runs.groupby("seed")["epoch"].max().min()
    return runs[runs["epoch"] <= every_seed_ran].groupby("epoch")["chrF++"].mean()


def plot_dev_curves(curves: pd.DataFrame, out_png: str | Path) -> bool:
    """Dev chrF++ per epoch, one panel per pair: each seed thin, the mean over seeds bold (mean_dev_curve),
    per method; only runs of more than one epoch. False (and nothing written) when there are none."""
    curves = curves[curves.groupby(["pair", "seed", "method"])["epoch"].transform("count") > 1]
    if curves.empty:
        return False
    plt = pyplot()
    pairs = sorted(curves["pair"].unique())
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.5 * len(pairs), 4.2), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        mine = curves[curves["pair"] == pair]
        for method in order(set(mine["method"])):
            runs = mine[mine["method"] == method]
            for _, run in runs.groupby("seed"):
                ax.plot(run["epoch"], run["chrF++"], color=colour(method), alpha=0.3, linewidth=0.8, marker=".")
            mean = mean_dev_curve(runs)
            ax.plot(mean.index, mean, color=colour(method), linewidth=1.8, label=label(method))
        ax.set_xticks(sorted(mine["epoch"].unique()))
        label_axes(ax, f"{pair}: dev chrF++ per epoch (thin: seeds; bold: mean while all run)", "epoch", "dev chrF++")
    save_png(fig, out_png)
    return True


def plot_ks_histogram(ks_dir: str | Path, pairs, seeds, out_png: str | Path) -> bool:
    """Rows per value of D with the alpha threshold; False (and nothing written) without data."""
    panels = []
    for pair in sorted(pairs):
        for seed in sorted(seeds):
            csv, summary = Path(ks_dir) / pair / f"s{seed}.hist.csv", Path(ks_dir) / pair / f"s{seed}.json"
            if csv.is_file() and summary.is_file():
                panels.append((pair, seed, pd.read_csv(csv), json.loads(summary.read_text())))
                break  # the first seed: one panel per pair
    if not panels:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, (pair, seed, histogram, summary) in zip(axes[0], panels):
        width = histogram["D"].diff().min() if len(histogram) > 1 else 0.01
        others = histogram["rows"] - histogram["tickets"]
        ax.bar(histogram["D"], others, width=width, color="#9aa5b1", label="not tickets")
        ax.bar(histogram["D"], histogram["tickets"], bottom=others, width=width, color=colour(TICKETS),
               label=f"tickets ({summary['n_tickets']:,})")
        critical = summary.get("critical_D")
        if critical is not None:
            ax.axvline(critical - width / 2, color="#333333", linestyle="--", linewidth=1,
                       label=f"alpha = {summary['alpha']:g}: D >= {critical:.4f}")
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5)  # a bar of one row stays visible
        ax.set_xlabel("KS statistic D of the row (before vs after embedding tuning)")
        ax.set_ylabel("rows")
        ax.set_title(f"{pair} seed {seed}: {summary['n_moved']:,} of {summary['vocab_size']:,} rows moved")
        ax.legend(fontsize=8)
    save_png(fig, out_png)
    return True


def plot_cost(scores: pd.DataFrame, costs: pd.DataFrame, out_png: str | Path) -> bool:
    """chrF++ (report.build_table's `scores`) against trainable parameters and against seconds per
    step (report.cost_table's `costs`), log axes, one point per trained method: filled for the
    first-line score, hollow for the whole continuation's. False (nothing drawn) without costs."""
    if costs.empty:
        return False
    plt = pyplot()
    prefix = score_prefix(scores)
    trained = scores.join(costs, how="inner")
    colours = {name: label_colour(name) for name in trained.index}
    step = COST_COLUMNS["seconds_per_step"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for ax, (x, xlabel) in zip(axes, (("trainable params", "trainable parameters"),
                                      (step, "seconds per training step (median)"))):
        for protocol, filled in zip(PROTOCOLS, (True, False)):
            column = f"{prefix} {SCORES[score_key(protocol, 'chrf++')]}"
            if column not in trained:
                continue
            for name, row in trained.iterrows():
                ax.scatter(row[x], row[column], s=45, color=colours[name] if filled else "none",
                           edgecolors=colours[name], label=("first line" if filled else "whole continuation")
                           if name == trained.index[0] else None)
                if filled:
                    ax.annotate(name, (row[x], row[column]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        label_axes(ax, "score against size" if x == "trainable params" else "score against training time", xlabel,
                   f"{prefix} chrF++")
    save_png(fig, out_png)
    return True


def plot_scores(table: pd.DataFrame, out_png: Path) -> None:
    """Horizontal bars of chrF++ per method (first pair, or the average), one panel per scoring
    protocol, labelled with #params; error bars of one standard deviation over seeds where there are
    several."""
    plt = pyplot()
    prefix = score_prefix(table)
    panels = [(protocol, f"{prefix} {SCORES[score_key(protocol, 'chrf++')]}") for protocol in PROTOCOLS]
    panels = [(protocol, column) for protocol, column in panels if column in table]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 0.5 * len(table) + 1.2), squeeze=False,
                             sharey=True)
    for ax, (protocol, column) in zip(axes[0], panels):
        errors = table[f"{column} std"][::-1].fillna(0) if f"{column} std" in table else None
        ax.barh(table.index[::-1], table[column][::-1], xerr=errors, color="#4c72b0", ecolor="#333333", capsize=3)
        for y, (score, n) in enumerate(zip(table[column][::-1], table["trainable params"][::-1])):
            ax.text(score, y, f" {score:.1f}  ({n:,} params)", va="center", fontsize=8)
        ax.set_xlabel(column)
        ax.set_xlim(0, max(table[column].max() * 1.45, 1))
        ax.set_title(f"chrF++ of the {PROTOCOL_LABELS[protocol]}")
    save_png(fig, out_png)

