"""The paper's comparison table (pandas), its companions and its plot (matplotlib PNG), from metrics.

Inputs are the small JSON files the stages write:
    metrics/eval/{pair}/base.json, metrics/eval/{pair}/s{seed}/{method}.json
        {"pair", "method", "seed", "bleu", "chrf++", "trainable_params", "total_params", ...}
    metrics/certify/{pair}/s{seed}.json, metrics/ks/{pair}/s{seed}.json, metrics/train/{pair}/s{seed}/{method}.json
Outputs: one row per method with #trainable params (and % of full fine-tuning's, i.e. of the model's),
BLEU and chrF++ per pair (mean over seeds, ± the sample standard deviation when there are several),
their average over pairs; the certification table; ticket overlaps across pairs and seeds; and the
nested summary that is the pipeline's one DVC metrics file.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from itertools import combinations
from pathlib import Path

import pandas as pd

from kslottery.atomic import read_json, require
from kslottery.lottery.tickets import TOKEN_CLASSES
from kslottery.evaluation.scoring import PROTOCOL_LABELS, PROTOCOLS, TRANSLATION_COLUMNS, score_key
from kslottery.config.registry import BASE, TICKETS, in_scope, methods, split_run
from kslottery.report.legend import FEWER_THAN_K, GAIN_REFERENCES, description, label as method_label
from kslottery.report.legend import order as method_order

SCORES = {score_key(protocol, score): label + ("" if protocol == "first_line" else f" ({protocol})")
          for protocol in PROTOCOLS for score, label in (("bleu", "BLEU"), ("chrf++", "chrF++"))}
"""record key -> column label: `chrF++` scores the continuation's first line, `chrF++ (whole)` all of it."""
SEED_DIR = re.compile(r"^s(\d+)(\.json)?$")


def read_records(directory: str | Path, pairs=None, seeds=None, targets=None) -> list[dict]:
    """Every JSON record under `directory` ({pair}/s{seed}/{method}.json, {pair}/s{seed}.json or
    {pair}/{method}.json), completed with the pair, seed and method its path names if it lacks them.

    pairs, seeds: keep only these (a record without a seed, like the base model's, is kept for any
    seeds); targets: keep a target method's runs of these ks.target patterns only. DVC leaves the
    outputs of a pair, seed or pattern that was removed from params.yaml in place, so the table stage
    passes the current ones."""
    records = []
    for path in sorted(Path(directory).rglob("*.json")):
        record = read_json(path, "rerun the stage that wrote it (`dvc repro`), or delete it if its stage is gone")
        require(path, isinstance(record, dict), "expected a JSON object (a metrics record)", "rerun the stage that wrote it")
        parts = path.relative_to(directory).parts
        path_seeds = [int(m.group(1)) for part in parts if (m := SEED_DIR.match(part))]
        if record.get("seed") is None and path_seeds:
            record["seed"] = path_seeds[0]
        if len(parts) > 1:
            record.setdefault("pair", parts[0])
        if not SEED_DIR.match(parts[-1]):
            record.setdefault("method", path.stem)
        if pairs is not None and record.get("pair") not in pairs:
            continue
        if seeds is not None and record.get("seed") is not None and record["seed"] not in seeds:
            continue
        if "method" in record and not in_scope(record["method"], targets):
            continue
        records.append(record)
    return records


def _eval_records(eval_dir: str | Path, pairs=None, seeds=None, targets=None) -> list[dict]:
    records = read_records(eval_dir, pairs, seeds, targets)
    if not records:
        raise FileNotFoundError(f"no evaluation metrics under {eval_dir}; run the evaluate stages first")
    return records


def build_table(records: list[dict]) -> pd.DataFrame:
    """Wide table: index = method label; columns = params, '%', then '{pair} BLEU', '{pair} chrF++'
    (means over seeds), '{pair} BLEU std' ... when some method ran with several seeds, and the
    average over pairs when there are several pairs."""
    frame = pd.DataFrame(records)
    pairs = sorted(frame["pair"].unique())
    scores = {key: label for key, label in SCORES.items() if key in frame}  # metrics of older runs lack some
    grouped = frame.groupby(["method", "pair"])
    mean, std = grouped[list(scores)].mean(), grouped[list(scores)].std(ddof=1)  # std: NaN for one seed
    several_seeds = bool((grouped.size() > 1).any())
    rows = []
    for method in method_order(set(frame["method"])):
        subset = frame[frame["method"] == method]
        row = {"method": method_label(method),
               "trainable params": int(subset["trainable_params"].max()),
               "% of full": 100.0 * subset["trainable_params"].max() / subset["total_params"].max(),
               "seeds": _count_range(grouped.size()[method])}
        for pair in pairs:
            for score, label in scores.items():
                row[f"{pair} {label}"] = mean[score].get((method, pair), float("nan"))
                if several_seeds:
                    row[f"{pair} {label} std"] = std[score].get((method, pair), float("nan"))
        if len(pairs) > 1:
            for score, label in scores.items():
                # NaN unless the method ran on every pair: an average over fewer pairs is another number
                row[f"avg {label}"] = pd.Series([row[f"{pair} {label}"] for pair in pairs]).mean(skipna=False)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("method")
    return table if several_seeds else table.drop(columns="seeds")


def _count_range(counts: pd.Series) -> str:
    """Runs per pair of one method: '3', or '1-3' when pairs differ."""
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}-{high}"


def to_markdown(table: pd.DataFrame) -> str:
    """The table as markdown: thousands separators, two decimals, `mean ± std` where there is a std."""
    shown = table.copy()
    shown["trainable params"] = shown["trainable params"].map(lambda n: f"{n:,}")
    shown["% of full"] = shown["% of full"].map(lambda p: f"{p:.4f}")
    for column in [c for c in table.columns if f"{c} std" in table.columns]:
        shown[column] = [f"{m:.2f} ± {s:.2f}" if pd.notna(s) else f"{m:.2f}"
                         for m, s in zip(table[column], table[f"{column} std"])]
        shown = shown.drop(columns=f"{column} std")
    return shown.to_markdown(floatfmt=".2f", colalign=["left"] + ["right"] * len(shown.columns)) + "\n"


CERTIFY_COLUMNS = {
    "n_tickets": "tickets",
    "next_token_agreement": "next-token agreement",
    "next_token_accuracy_embed": "accuracy (embedding-tuned)",
    "next_token_accuracy_tickets_only": "accuracy (tickets only)",
    "chrf++_embed": "chrF++ (embedding-tuned)",
    "chrf++_tickets_only": "chrF++ (tickets only)",
}


def certification_markdown(records: list[dict]) -> str:
    """The certify stage's measurements, one row per pair (mean over seeds)."""
    frame = pd.DataFrame(records).groupby("pair")[list(CERTIFY_COLUMNS)].mean().sort_index()
    return frame.rename(columns=CERTIFY_COLUMNS).to_markdown(floatfmt=".4g") + "\n"


def ticket_sets(ks_records: list[dict]) -> dict[tuple[str, int], dict[int, str]]:
    """(pair, seed) -> {token id: token string} of its tickets, from the ks-select summaries."""
    return {(r["pair"], r["seed"]): dict(zip(r["token_ids"], r["tokens"])) for r in ks_records}


def jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def overlap_markdown(ks_records: list[dict], shown: int = 20) -> str:
    """Which tickets recur: across pairs (on the first seed every pair has) and across seeds (per
    pair with at least two). Empty when there is nothing to compare."""
    sets = ticket_sets(ks_records)
    pairs = sorted({pair for pair, _ in sets})
    parts = []
    shared_seeds = sorted(set.intersection(*({s for p, s in sets if p == pair} for pair in pairs))) if pairs else []
    if len(pairs) > 1 and shared_seeds:
        seed = shared_seeds[0]
        first = {pair: sets[(pair, seed)] for pair in pairs}
        rows = [{"pair A": a, "pair B": b, "tickets A": len(first[a]), "tickets B": len(first[b]),
                 "shared": len(first[a].keys() & first[b].keys()), "Jaccard": jaccard(first[a], first[b])}
                for a, b in combinations(pairs, 2)]
        common = set.intersection(*(set(t) for t in first.values()))
        ranked = [t for t in first[pairs[0]] if t in common][:shown]  # in the first pair's ticket order
        listing = (": " + " ".join(f"`{first[pairs[0]][t]}`" for t in ranked) + (" ..." if len(common) > shown else "")
                   if common else "")
        parts.append(f"Ticket overlap across pairs (seed {seed}):\n\n"
                     + pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f") + "\n\n"
                     + ("1 token is a ticket" if len(common) == 1 else f"{len(common)} tokens are tickets")
                     + f" of all {len(pairs)} pairs{listing}\n")
        if len(pairs) > 2:
            recurrence = Counter(t for tickets in first.values() for t in tickets)
            counts = Counter(recurrence.values())
            parts[-1] += ("\nTokens by how many pairs select them: "
                          + ", ".join(f"{counts[n]} in {n} pair{'s' * (n > 1)}" for n in range(len(pairs), 0, -1))
                          + f" ({len(recurrence)} distinct)\n")
    rows = []
    for pair in pairs:
        runs = [sets[key] for key in sorted(sets) if key[0] == pair]
        if len(runs) < 2:
            continue
        pairwise = [jaccard(a, b) for a, b in combinations(runs, 2)]
        rows.append({"pair": pair, "seeds": len(runs), "tickets (mean)": sum(map(len, runs)) / len(runs),
                     "in every seed": len(set.intersection(*(set(r) for r in runs))),
                     "mean Jaccard between seeds": sum(pairwise) / len(pairwise)})
    if rows:
        parts.append("Ticket stability across seeds:\n\n" + pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f")
                     + "\n")
    return "\n".join(parts)


def token_rows_markdown(eval_records: list[dict], ks_records: list[dict]) -> str:
    """What each token method trains: its rows (mean over seeds and pairs), next to k, the ticket count,
    and what it draws them from; a method that found fewer than k rows says so."""
    k = pd.Series([r["n_tickets"] for r in ks_records]).mean() if ks_records else float("nan")
    lines = []
    for method in method_order({r["method"] for r in eval_records}):
        entry = methods().get(method)
        rows = [r["rows"] for r in eval_records if r["method"] == method and r.get("rows") is not None]
        if entry is None or not entry.needs_tickets or not rows:
            continue
        mean_rows = sum(rows) / len(rows)
        short = f" (fewer than k = {k:,.0f}: no more distinct tokens to take)" if mean_rows < k and \
            method in FEWER_THAN_K else ""
        lines.append(f"- {method_label(method)}: {mean_rows:,.0f} rows{short}; {description(method)}.")
    if not lines:
        return ""
    return "What the token methods train (k = the ticket count, mean over runs):\n\n" + "\n".join(lines) + "\n"


def gain_shares_markdown(table: pd.DataFrame) -> str:
    """Per method and protocol: its chrF++ gain over the base model as a % of each reference's gain
    (methods.GAIN_REFERENCES: embedding-only tuning, full fine-tuning), from the table's means over
    seeds (its `avg` columns when there are several pairs). No share where a reference gained nothing."""
    base, references = method_label(BASE), [method_label(name) for name in GAIN_REFERENCES]
    if not {base, *references} <= set(table.index):
        return ""
    several_pairs = any(c.startswith("avg ") for c in table)
    lines = {}
    for protocol in PROTOCOLS:
        label = SCORES[score_key(protocol, "chrf++")]
        column = f"avg {label}" if several_pairs else next((c for c in table if c.endswith(f" {label}")), None)
        if column not in table:
            continue
        score = table[column]
        for reference in references:
            gain = score[reference] - score[base]
            share = 100 * (score - score[base]) / gain if gain > 0 else score * float("nan")
            lines[f"% of {reference}'s gain ({PROTOCOL_LABELS[protocol]})"] = share
    if not lines:
        return ""
    shares = pd.DataFrame(lines).drop(index=base).round(0) + 0.0  # + 0.0: a share rounded to -0 prints as 0
    return ("Share of the chrF++ gains over the base model each method recovers ((method - base) / (reference - "
            "base), from the means over seeds; nan where the reference gained nothing):\n\n"
            + shares.to_markdown(floatfmt=".0f") + "\n")


def stopping_markdown(table: pd.DataFrame) -> str:
    """Per method: its whole-continuation chrF++ gain over the base model split into translation (the
    first line's gain) and stopping (the rest: what scoring the whole continuation adds or takes
    away, against the base's), from the table's means over seeds (its `avg` columns when there are
    several pairs). Empty without both protocols or the base."""
    first, whole = SCORES[score_key("first_line", "chrf++")], SCORES[score_key("whole", "chrf++")]
    several_pairs = any(c.startswith("avg ") for c in table)
    columns = [f"avg {label}" if several_pairs else next((c for c in table if c.endswith(f" {label}")), None)
               for label in (first, whole)]
    base = method_label(BASE)
    if base not in table.index or not all(c in table for c in columns):
        return ""
    gain = table[columns].sub(table.loc[base, columns])
    split = pd.DataFrame({"whole-continuation gain": gain[columns[1]], "translation (first line)": gain[columns[0]],
                          "stopping (the rest)": gain[columns[1]] - gain[columns[0]]}).drop(index=base)
    whole_gain = split["whole-continuation gain"]
    split["% stopping"] = (100 * split["stopping (the rest)"] / whole_gain).where(whole_gain >= 0.5)
    return ("Where each method's whole-continuation chrF++ gain over the base comes from: translation (its "
            "first line's gain) and stopping (the rest: scoring the whole continuation, against the base's; "
            "% stopping only where the whole gain is at least +0.5):\n\n"
            + (split.round(2) + 0.0).to_markdown(floatfmt=".2f") + "\n")


def epochs_markdown(train_records: list[dict]) -> str:
    """For runs that stopped early (train.patience: their metrics hold `kept_epoch`): per method,
    the epoch whose weights each seed kept, the epochs it ran and the kept dev chrF++. Empty when
    no run used early stopping."""
    runs = [r for r in train_records if r.get("kept_epoch") is not None]
    if not runs:
        return ""
    lines = []
    for method in method_order({r["method"] for r in runs}):
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: (r.get("pair", ""), r.get("seed", 0)))
        lines.append({"method": method_label(method), "runs": len(mine),
                      "kept epoch": ", ".join(f"{r['kept_epoch']:g}" for r in mine),
                      "epochs run": ", ".join(f"{r['epochs']:g}" for r in mine),
                      "mean kept epoch": sum(r["kept_epoch"] for r in mine) / len(mine),
                      "dev chrF++ kept": ", ".join(f"{r['dev_chrf++']:.2f}" for r in mine if "dev_chrf++" in r)})
    return ("Early stopping (train.patience): the epoch whose weights each run kept (the best dev chrF++) and the "
            "epochs it ran, per run in pair and seed order:\n\n"
            + pd.DataFrame(lines).to_markdown(index=False, floatfmt=".2f") + "\n")


def stopping_report(profiles: dict[str, str | Path]) -> str:
    """stopping_markdown for each profile (name -> its evaluation metrics directory), one section each."""
    sections = []
    for name, eval_dir in profiles.items():
        split = stopping_markdown(build_table(_eval_records(eval_dir)))
        sections.append(f"## {name}\n\nFrom `{eval_dir}`. " + (split or "One protocol only: nothing to split.\n"))
    return ("# Where the gains come from: translation and stopping\n\n"
            "Made by `ksl stopping` from the committed metrics of each profile (chrF++, means over seeds).\n\n"
            + "\n".join(sections))


COST_COLUMNS = {
    "seconds_per_step": "s / step",
    "peak_memory_gib": "peak memory (GiB)",
    "training_state_mib": "gradients + optimizer state (MiB)",
    "saved_mib": "saved (MiB)",
}
"""The cost table's columns (medians over a method's runs), from the training stages' cost files."""


def cost_table(cost_records: list[dict]) -> pd.DataFrame:
    """One row per trained method (index: its label, in registry order): median s per step, peak
    memory, gradient + optimizer-state bytes and size on disk over its runs; empty without records."""
    frame = pd.DataFrame([r for r in cost_records if "seconds_per_step" in r])
    if frame.empty:
        return pd.DataFrame(columns=list(COST_COLUMNS.values()))
    frame["peak_memory_gib"] = frame["peak_memory_bytes"] / 2**30
    frame["training_state_mib"] = (frame["gradient_bytes"] + frame["optimizer_state_bytes"]) / 2**20
    frame["saved_mib"] = frame["saved_bytes"] / 2**20
    medians = frame.groupby("method")[list(COST_COLUMNS)].median()
    methods = method_order(set(medians.index))
    table = medians.loc[methods].rename(columns=COST_COLUMNS)
    table.index = [method_label(m) for m in methods]
    return table


def cost_markdown(cost_records: list[dict]) -> str:
    """The cost table, and ks-select's own time, as markdown ("" without cost records)."""
    table = cost_table(cost_records)
    if table.empty:
        return ""
    kinds = sorted({r["memory_kind"] for r in cost_records if "seconds_per_step" in r})
    text = ("What each method costs to train, on the machine that ran it (medians over runs; peak memory: "
            + " / ".join({"rss": "the process's peak resident set, model loading included",
                          "cuda": "torch's peak GPU allocation"}[k] for k in kinds)
            + ", dev evaluations included; time and memory vary across runs and machines, so they are kept "
            "apart from the deterministic table.md; no training state where the run was sharded over "
            "processes with FSDP or DeepSpeed, whose processes each hold a part of it):\n\n"
            + table.to_markdown(floatfmt=".2f") + "\n")
    selections = [r for r in cost_records if "ks_test_seconds" in r]
    if selections:
        test = pd.Series([r["ks_test_seconds"] for r in selections]).median()
        whole = pd.Series([r["stage_seconds"] for r in selections]).median()
        text += (f"\nks-select: the KS test of {selections[0]['rows']:,} rows of {selections[0]['d']} values took "
                 f"{test:.2f} s, the whole stage (model loading, selection, token classes) {whole:.1f} s.\n")
    return text + machines_markdown(cost_records)


def machines_markdown(cost_records: list[dict]) -> str:
    """Which machines the runs of a cost table ran on, with their run counts ("" where no record
    names one: cost files from before machines were recorded)."""
    runs = Counter(r.get("machine") or "not recorded" for r in cost_records)
    if set(runs) == {"not recorded"}:
        return ""
    listing = "; ".join(f"{name} ({count} run{'s' if count > 1 else ''})" for name, count in sorted(runs.items()))
    return f"\nRan on: {listing}.\n"


def params_note(records: list[dict]) -> str:
    """The note under the table where a method's runs trained different numbers of parameters (the
    table shows the largest), saying why for the kinds of method that differ; "" where none does."""
    counts = pd.DataFrame(records).groupby("method")["trainable_params"].nunique()
    differing = list(counts[counts.gt(1)].index)
    if not differing:
        return ""
    entries = [entry for run in differing if (entry := methods().get(split_run(run)[0])) is not None]
    reasons = []
    if any(entry.needs_tickets for entry in entries):
        reasons.append("a token method trains as many rows as its run's tickets; the mean count is listed below")
    if any(entry.needs_target_tickets for entry in entries):
        reasons.append("target KS rows train as many rows as their run's target tickets")
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return f"\nTrainable params and % of full: the largest over the runs of a method where they differ{why}.\n"


SCORE_LABELS = {"bleu": "BLEU", "chrf++": "chrF++", "spbleu": "spBLEU"}


def signatures_note(records: list[dict]) -> str:
    """The sacrebleu signature of each score, once (every record should agree; each differing one is
    listed)."""
    found: dict[str, set[str]] = {}
    for record in records:
        for score, signature in (record.get("signatures") or {}).items():
            found.setdefault(score, set()).add(signature)
    if not found:
        return ""
    parts = [f"{SCORE_LABELS.get(score, score)} `{signature}`" for score in SCORE_LABELS if score in found
             for signature in sorted(found[score])]
    return f"\nScore signatures (sacrebleu): {'; '.join(parts)}.\n"


def report_markdown(eval_dir: str | Path, certify_dir: str | Path | None = None, ks_dir: str | Path | None = None,
                    pairs=None, seeds=None, targets=None) -> tuple[pd.DataFrame, str]:
    """(table, markdown): the comparison table, then the gain shares, certification and ticket
    overlaps where available. Deterministic: what training cost is cost_markdown's (results/cost.md)."""
    records = _eval_records(eval_dir, pairs, seeds, targets)
    table = build_table(records)
    markdown = to_markdown(table) + (PROTOCOL_NOTE if any(c.endswith("(whole)") for c in table) else "")
    markdown += params_note(records) + signatures_note(records)
    shares = gain_shares_markdown(table)
    if shares:
        markdown += "\n" + shares
    stopping = stopping_markdown(table)
    if stopping:
        markdown += "\n" + stopping
    certified = read_records(certify_dir, pairs, seeds) if certify_dir else []
    if certified:
        markdown += ("\nCertification (the embedding-tuned model with every non-ticket row reverted to the base,"
                     " against the embedding-tuned model on the test set; docs/certification.md):\n\n"
                     + certification_markdown(certified))
    ks_records = read_records(ks_dir, pairs, seeds) if ks_dir else []
    rows = token_rows_markdown(records, ks_records)
    if rows:
        markdown += "\n" + rows
    overlap = overlap_markdown(ks_records)
    if overlap:
        markdown += "\n" + overlap
    uncertainty = uncertainty_markdown(eval_dir, pairs, seeds, targets)
    if uncertainty:
        markdown += "\n" + uncertainty
    return table, markdown


PROTOCOL_NOTE = ("\nBLEU and chrF++ score the first line of each continuation; (whole): the whole continuation, "
                 "newlines as spaces, as the evaluation code of the authors' earlier repository scores it. One decode, "
                 "both scores.\n")
BOOTSTRAP_SAMPLES = 1000


def read_translations(path: Path) -> pd.DataFrame:
    """An evaluate stage's TSV: source, reference, hypothesis (all text, empty strings kept)."""
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)


def significance(eval_dir: str | Path, pair: str, seed: int, baseline: str = TICKETS,
                 protocol: str = "first_line", targets=None) -> pd.DataFrame | None:
    """Every method's BLEU and chrF++ on the test set of (pair, seed) under a scoring protocol, with a
    95% confidence interval, and the p-value of its difference from `baseline`: sacrebleu's paired
    bootstrap resampling of the test sentences (1000 resamples, sacrebleu's fixed seed, so the table
    is reproducible). None when the baseline's translations (or that protocol's column) are missing."""
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    eval_dir = Path(eval_dir)
    paths = {BASE: eval_dir / pair / f"{BASE}.translations.tsv"}
    paths |= {p.name.removesuffix(".translations.tsv"): p
              for p in sorted((eval_dir / pair / f"s{seed}").glob("*.translations.tsv"))}
    paths = {m: p for m, p in paths.items() if p.is_file() and in_scope(m, targets)}
    if baseline not in paths or len(paths) < 2:
        return None
    frames = {m: read_translations(p) for m, p in paths.items()}
    column = TRANSLATION_COLUMNS[protocol]
    frames = {m: frame for m, frame in frames.items() if column in frame}  # older runs: no continuation column
    if baseline not in frames or len(frames) < 2:
        return None
    references = frames[baseline]["reference"].tolist()
    for method, frame in frames.items():
        if frame["reference"].tolist() != references:
            raise ValueError(f"{paths[method]}: its references differ from {paths[baseline]}'s; "
                             "the methods were not evaluated on the same test set")
    order = [baseline] + [m for m in method_order(set(frames)) if m != baseline]
    systems = [(m, frames[m][column].tolist()) for m in order]
    metrics = {"BLEU": BLEU(), "chrF++": CHRF(word_order=2)}
    _, results = PairedTest(systems, metrics, [references], test_type="bs", n_samples=BOOTSTRAP_SAMPLES)()
    rows = []
    for index, method in enumerate(order):
        row = {"pair": pair, "seed": seed, "method": method}
        for label, key in zip(metrics, [k for k in results if k != "System"]):
            result = results[key][index]
            row[label] = result.score
            row[f"{label} ci"] = result.ci
            row[f"{label} p"] = result.p_value  # None for the baseline itself
        rows.append(row)
    return pd.DataFrame(rows)


def uncertainty_markdown(eval_dir: str | Path, pairs=None, seeds=None, targets=None) -> str:
    """The significance tables of every (pair, seed) that has translations, as markdown."""
    eval_dir = Path(eval_dir)
    out = []
    for pair in sorted(pairs or [p.name for p in eval_dir.iterdir() if p.is_dir()]):
        found = sorted(int(m.group(1)) for d in (eval_dir / pair).glob("s*") if (m := SEED_DIR.match(d.name)))
        for seed, protocol in ((seed, protocol) for seed in sorted(seeds or found) for protocol in PROTOCOLS):
            frame = significance(eval_dir, pair, seed, protocol=protocol, targets=targets)
            if frame is None:
                continue
            table = pd.DataFrame({
                "method": [method_label(m) for m in frame["method"]],
                "BLEU (95% CI)": [f"{s:.2f} ± {c:.2f}" for s, c in zip(frame["BLEU"], frame["BLEU ci"])],
                f"p vs {method_label(TICKETS)} (BLEU)": [_p(p) for p in frame["BLEU p"]],
                "chrF++ (95% CI)": [f"{s:.2f} ± {c:.2f}" for s, c in zip(frame["chrF++"], frame["chrF++ ci"])],
                f"p vs {method_label(TICKETS)} (chrF++)": [_p(p) for p in frame["chrF++ p"]],
            })
            n = len(read_translations(eval_dir / pair / f"s{seed}" / f"{TICKETS}.translations.tsv"))
            out.append(f"Uncertainty, {pair} seed {seed}, {PROTOCOL_LABELS[protocol]}: sacrebleu paired bootstrap "
                       f"over the {n} test sentences "
                       f"({BOOTSTRAP_SAMPLES} resamples): each score with the half-width of its 95% confidence "
                       "interval, and the p-value of its difference from the KS tickets (small: the difference "
                       "is unlikely to be resampling noise of the test set; it says nothing of training noise, "
                       "which only more seeds measure).\n\n" + table.to_markdown(index=False) + "\n")
    return "\n".join(out)


def _p(value) -> str:
    """A bootstrap p-value as printed: its floor is 1 / (resamples + 1), so that reads as an upper bound."""
    if value is None or pd.isna(value):
        return ""
    return f"≤ {1 / (BOOTSTRAP_SAMPLES + 1):.3f}" if value <= 1 / (BOOTSTRAP_SAMPLES + 1) + 1e-12 else f"{value:.3f}"


def summary(eval_dir: str | Path, certify_dir: str | Path | None = None, ks_dir: str | Path | None = None,
            train_dir: str | Path | None = None, pairs=None, seeds=None, targets=None) -> dict:
    """Every summarised metric: pair -> method -> {bleu, chrf++, [std], trainable_params, final_loss},
    plus pair -> tickets and pair -> certify; means over seeds. summary_files cuts the metrics files
    from it."""
    def mean(records, key):
        values = [r[key] for r in records if r.get(key) is not None]
        if len(set(values)) == 1:
            return values[0]  # one seed (or all agree): the value as written, an int stays an int
        return round(sum(values) / len(values), 4) if values else None

    def std(records, key):
        values = [r[key] for r in records if r.get(key) is not None]
        return round(pd.Series(values).std(ddof=1), 4) if len(values) > 1 else None

    evaluations = _eval_records(eval_dir, pairs, seeds, targets)
    training = read_records(train_dir, pairs, seeds, targets) if train_dir else []
    result: dict = {}
    for pair in sorted({r["pair"] for r in evaluations}):
        entry = result.setdefault(pair, {})
        for method in method_order({r["method"] for r in evaluations if r["pair"] == pair}):
            runs = [r for r in evaluations if r["pair"] == pair and r["method"] == method]
            keys = [key for key in SCORES if any(key in r for r in runs)]
            leaf = {key: mean(runs, key) for key in keys}
            if len(runs) > 1:
                leaf.update({f"{key}_std": std(runs, key) for key in keys} | {"seeds": len(runs)})
            leaf["trainable_params"] = max(r["trainable_params"] for r in runs)
            losses = [r for r in training if r.get("pair") == pair and r.get("method") == method]
            if losses:
                leaf["final_loss"] = mean(losses, "final_loss")
            entry[method] = leaf
    for record_set, key, fields in (
            (read_records(ks_dir, pairs, seeds) if ks_dir else [], "tickets",
             ("n_tickets", "n_significant", "n_moved", *(f"n_{name}" for name in TOKEN_CLASSES))),
            (read_records(certify_dir, pairs, seeds) if certify_dir else [], "certify",
             ("next_token_agreement", "chrf++_tickets_only", "chrf++_difference"))):
        for pair in sorted({r["pair"] for r in record_set}):
            runs = [r for r in record_set if r["pair"] == pair]
            result.setdefault(pair, {})[key] = {field: mean(runs, field) for field in fields
                                                if any(field in r for r in runs)}
    return result


def dev_scores_frame(train_records: list[dict]) -> pd.DataFrame:
    """The dev scores after training of the first pair, one row per method (labelled, in the table's
    order; mean over seeds), for DVC's dev comparison plot (results/dev_scores.csv)."""
    scored = [r for r in train_records if r.get("dev_chrf++") is not None]
    if not scored:
        return pd.DataFrame(columns=["method", "dev chrF++", "dev BLEU"])
    pair = sorted({r["pair"] for r in scored})[0]
    rows = []
    for method in method_order({r["method"] for r in scored if r["pair"] == pair}):
        runs = [r for r in scored if r["pair"] == pair and r["method"] == method]
        rows.append({"method": method_label(method),
                     "dev chrF++": round(sum(r["dev_chrf++"] for r in runs) / len(runs), 2),
                     "dev BLEU": round(sum(r["dev_bleu"] for r in runs) / len(runs), 2)})
    return pd.DataFrame(rows)


SUMMARY_DIR = "metrics/summary"
"""The pipeline's DVC metrics: one small JSON file per pair and method (PAIR/METHOD.json), plus the
pair's KS selection (PAIR/ks-select.json) and certification (PAIR/certify.json), so that
`dvc metrics show --md` and `dvc metrics diff --md` print one row per method, a handful of columns."""
METHOD_SUMMARY = ("chrf++", "chrf++_std", "bleu", "bleu_std", "whole_chrf++", "whole_bleu", "seeds", "trainable_params")
PAIR_SUMMARIES = {"tickets": ("ks-select", {"n_tickets": "n_tickets", "n_moved": "n_moved"}),
                  "certify": ("certify", {"chrf++_tickets_only": "chrf++", "next_token_agreement": "agreement"})}
"""summary()'s per-pair entries -> (their file's name, {summary key: the file's key})."""


def summary_files(nested: dict) -> dict[str, dict]:
    """summary() as the files of SUMMARY_DIR: {"PAIR/NAME.json": {key: value}}, each flat and small."""
    files = {}
    for pair, entries in nested.items():
        for name, leaf in entries.items():
            if name in PAIR_SUMMARIES:
                file_name, keys = PAIR_SUMMARIES[name]
                files[f"{pair}/{file_name}.json"] = {new: leaf[old] for old, new in keys.items() if leaf.get(old) is not None}
            else:
                files[f"{pair}/{name}.json"] = {key: leaf[key] for key in METHOD_SUMMARY if leaf.get(key) is not None}
    return files


def score_prefix(table: pd.DataFrame) -> str:
    """The column prefix the figures plot: `avg` with several pairs, else the one pair."""
    return "avg" if any(c.startswith("avg ") for c in table) else next(c for c in table if c.endswith("chrF++")).split()[0]
