"""The paper's comparison table (pandas) and its plot (matplotlib PNG), from evaluation metrics.

Input: one record per (pair, method), as written by the evaluate stage:
    {"pair": "en-ca", "method": "ticket", "bleu": .., "chrf++": .., "trainable_params": .., "total_params": ..}
Output: one row per method, #trainable params (and % of full fine-tuning's, i.e. of the model's),
BLEU and chrF++ per pair, and
their average over pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

# Row order of the table: the paper's, methods not run are simply absent.
METHOD_ORDER = ["base", "full", "embed", "lora", "prefix", "random-k", "frequent-k", "ticket"]
METHOD_LABELS = {
    "base": "base (zero-shot)",
    "full": "full fine-tuning",
    "embed": "embedding only",
    "lora": "LoRA",
    "prefix": "prefix-tuning",
    "random-k": "random k rows",
    "frequent-k": "most frequent k rows",
    "ticket": "KS tickets",
}
SCORES = ("bleu", "chrf++")


def read_records(eval_dir: str | Path) -> list[dict]:
    """Every evaluation metrics JSON under eval_dir (metrics/eval/{pair}/{method}.json)."""
    paths = sorted(Path(eval_dir).glob("*/*.json"))
    if not paths:
        raise FileNotFoundError(f"no evaluation metrics under {eval_dir}; run the evaluate stages first")
    return [json.loads(p.read_text()) for p in paths]


def build_table(records: list[dict]) -> pd.DataFrame:
    """Wide table: index = method label; columns = params, '%', then '{pair} BLEU', '{pair} chrF++', avg."""
    frame = pd.DataFrame(records)
    pairs = sorted(frame["pair"].unique())
    methods = [m for m in METHOD_ORDER if m in set(frame["method"])] + sorted(set(frame["method"]) - set(METHOD_ORDER))
    rows = []
    for method in methods:
        subset = frame[frame["method"] == method].set_index("pair")
        row = {"method": METHOD_LABELS.get(method, method),
               "trainable params": int(subset["trainable_params"].max()),
               "% of full": 100.0 * subset["trainable_params"].max() / subset["total_params"].max()}
        for pair in pairs:
            for score in SCORES:
                row[f"{pair} {_label(score)}"] = subset[score].get(pair, float("nan"))
        if len(pairs) > 1:
            for score in SCORES:
                row[f"avg {_label(score)}"] = subset[score].reindex(pairs).mean()
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def _label(score: str) -> str:
    return {"bleu": "BLEU", "chrf++": "chrF++"}[score]


def to_markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    shown["trainable params"] = shown["trainable params"].map(lambda n: f"{n:,}")
    shown["% of full"] = shown["% of full"].map(lambda p: f"{p:.4f}")
    return shown.to_markdown(floatfmt=".2f") + "\n"


def certification_markdown(records: list[dict]) -> str:
    """The certify stage's measurements, one row per pair."""
    frame = pd.DataFrame(records).set_index("pair").sort_index()
    columns = {
        "n_tickets": "tickets",
        "next_token_agreement": "next-token agreement",
        "next_token_accuracy_embed": "accuracy (embedding-tuned)",
        "next_token_accuracy_tickets_only": "accuracy (tickets only)",
        "chrf++_embed": "chrF++ (embedding-tuned)",
        "chrf++_tickets_only": "chrF++ (tickets only)",
    }
    return frame[list(columns)].rename(columns=columns).to_markdown(floatfmt=".4g") + "\n"


def report_markdown(eval_dir: str | Path, certify_dir: str | Path | None = None) -> tuple[pd.DataFrame, str]:
    """(table, markdown): the comparison table, followed by the certification table if there is one."""
    table = build_table(read_records(eval_dir))
    markdown = to_markdown(table)
    records = [json.loads(p.read_text()) for p in sorted(Path(certify_dir).glob("*.json"))] if certify_dir else []
    if records:
        markdown += ("\nCertification (the embedding-tuned model with every non-ticket row reverted to the base,"
                     " against the embedding-tuned model on the test set):\n\n" + certification_markdown(records))
    return table, markdown


def plot_scores(table: pd.DataFrame, out_png: Path) -> None:
    """Horizontal bars of chrF++ per method (first pair, or the average), labelled with #params."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = "avg chrF++" if "avg chrF++" in table else next(c for c in table if c.endswith("chrF++"))
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(table) + 1.2))
    ax.barh(table.index[::-1], table[column][::-1], color="#4c72b0")
    for y, (score, n) in enumerate(zip(table[column][::-1], table["trainable params"][::-1])):
        ax.text(score, y, f" {score:.1f}  ({n:,} params)", va="center", fontsize=8)
    ax.set_xlabel(column)
    ax.set_xlim(0, max(table[column].max() * 1.35, 1))
    ax.set_title("Translation quality by method")
    fig.tight_layout()
    fig.savefig(out_png, dpi=120, format="png")
    plt.close(fig)
