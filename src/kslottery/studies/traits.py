"""What makes a ticket: for every row embedding tuning moved, what the KS test saw (D, p, ticket or
not) beside what the row and its update look like, and a simulation of what the test can see.

The KS statistic compares the distribution of a row's d values before and after tuning, not the
values one by one. In the limit of many coordinates, an update that moves every coordinate the same
way (a shift of the row's location) or in proportion to its distance from the row's mean (a change
of its spread) moves the CDF at first order in the update's size, while small independent nudges
change it only at second order (the spread grows by the square of their size). With d samples the
empirical CDF also moves when nudged values cross their neighbours, which independent nudges do;
`simulate` measures which effect the test sees at the model's d, on the model's own rows, and
`row_traits` whether the coherence of an update (its share that is location or spread) or its
size decides which rows become tickets.

Traits per moved row (`TRAITS`), each a column of `row_traits`; `simulate` draws the KS distance of
real rows under the three kinds of nudge (`NUDGES`) at growing sizes. `ksl traits` runs both on a
pipeline run's base model, tuned embedding, tickets and training split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import optimize, special, stats

from kslottery.lottery.ks import ks_2samp_rows
from kslottery.lottery.certify import critical_statistic
from kslottery.progress import progress
from kslottery.training.loop import LengthGroupedBatches, target_loss
from kslottery.data.prompts import collate

TRAITS = {
    "spread": "std of the row's d values before tuning",
    "update": "root mean square of the update (after - before), over the row's spread",
    "location": "share of the update's energy that is one shift of every coordinate (mean^2 / mean square)",
    "scale": "share that is a change of the row's spread (the update regressed on the centred row)",
    "coherence": "location + scale: the share of the update the KS test sees at first order "
                 "(~2/d for independent nudges)",
    "inputs": "training inputs that hold the token (not as their last token)",
    "gradient": "gradient mass: the sum over one epoch's batches of the norm of the row's gradient at the base model",
}
"""The columns of `row_traits` besides D, p and ticket, and what each measures."""

NUDGES = ("location", "scale", "independent")
"""The updates `simulate` applies to a row x of spread s, at size eps: eps*s to every coordinate;
eps*(x - mean x); eps*s*z with z independent standard normal per coordinate."""


def update_shares(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, (location, scale): the shares of the update's energy sum(u^2) that are its mean
    (d * mean(u)^2) and its projection on the centred row (<u, x - mean x>^2 / |x - mean x|^2).
    The two directions are orthogonal, so the shares add up to at most 1."""
    update = (after - before).astype(np.float64)
    energy = (update ** 2).sum(axis=1)
    centred = before - before.mean(axis=1, keepdims=True)
    location = update.shape[1] * update.mean(axis=1) ** 2
    norm = (centred ** 2).sum(axis=1)
    scale = np.divide((update * centred).sum(axis=1) ** 2, norm, out=np.zeros_like(norm), where=norm > 0)
    safe = np.where(energy > 0, energy, 1.0)
    return np.where(energy > 0, location / safe, 0.0), np.where(energy > 0, scale / safe, 0.0)


def row_traits(before: np.ndarray, after: np.ndarray, ticket_ids, counts: np.ndarray,
               gradient: np.ndarray) -> pd.DataFrame:
    """One line per moved row (any coordinate changed): its id, D, p, whether it is a ticket, and
    the TRAITS. before, after: (V, d) float32; counts, gradient: per row."""
    moved = np.flatnonzero(np.any(after != before, axis=1))
    b, a = before[moved].astype(np.float64), after[moved].astype(np.float64)
    statistic, pvalue = ks_2samp_rows(before[moved], after[moved])
    spread = b.std(axis=1)
    location, scale = update_shares(b, a)
    rms = np.sqrt(((a - b) ** 2).mean(axis=1))
    tickets = set(np.asarray(ticket_ids, dtype=np.int64).tolist())
    return pd.DataFrame({
        "row": moved, "D": statistic, "p": pvalue, "is_ticket": [int(r) in tickets for r in moved],
        "spread": spread, "update": np.divide(rms, spread, out=np.zeros_like(rms), where=spread > 0),
        "location": location, "scale": scale, "coherence": location + scale,
        "inputs": counts[moved], "gradient": gradient[moved],
    })


def gradient_mass(model, examples, batch_size: int, seed: int, pad_token_id: int) -> np.ndarray:
    """Per input-embedding row, the sum over one epoch's batches (the training loop's batch order
    for `seed`) of the norm of the row's gradient of the training loss, at the model's weights."""
    embedding = model.get_input_embeddings().weight
    requires = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    embedding.requires_grad_(True)
    mass = torch.zeros(embedding.shape[0], dtype=torch.float64)
    batches = LengthGroupedBatches([len(e.input_ids) for e in examples], batch_size, seed)
    try:
        for indices in progress(batches, desc="gradient mass", unit="batch", total=len(batches)):
            embedding.grad = None
            target_loss(model, collate([examples[i] for i in indices], pad_token_id)).backward()
            mass += embedding.grad.detach().double().norm(dim=1).cpu()
    finally:
        embedding.grad = None
        for name, p in model.named_parameters():
            p.requires_grad_(requires[name])
    return mass.numpy()


def simulate(rows: np.ndarray, sizes, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """The KS distance between each of `rows` (n, d) and itself after each NUDGE of each size: one
    line per (nudge, size) with the mean D and the share of rows it makes significant at `alpha`
    (D at or above critical_statistic)."""
    generator = np.random.default_rng(seed)
    rows = rows.astype(np.float64)
    spread = rows.std(axis=1, keepdims=True)
    centred = rows - rows.mean(axis=1, keepdims=True)
    noise = generator.standard_normal(rows.shape)
    d = rows.shape[1]
    lines = []
    for nudge in NUDGES:
        for size in sizes:
            update = {"location": size * spread * np.ones_like(rows), "scale": size * centred,
                      "independent": size * spread * noise}[nudge]
            statistic, _ = ks_2samp_rows(rows.astype(np.float32), (rows + update).astype(np.float32))
            lines.append({"nudge": nudge, "size": size, "mean_D": float(statistic.mean()),
                          "significant": float((statistic >= critical_statistic(d, alpha)).mean())})
    return pd.DataFrame(lines)


def rank_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per trait: Spearman's rank correlation with D (over the moved rows) and the AUC of the trait
    for telling tickets from the other moved rows (0.5: no better than chance; below: tickets
    have less of it)."""
    lines = []
    for trait in TRAITS:
        rho = stats.spearmanr(frame[trait], frame["D"]).statistic
        ticket, other = frame.loc[frame["is_ticket"], trait], frame.loc[~frame["is_ticket"], trait]
        auc = (stats.mannwhitneyu(ticket, other).statistic / (len(ticket) * len(other))
               if len(ticket) and len(other) else float("nan"))
        lines.append({"trait": trait, "spearman with D": round(float(rho), 3), "AUC for tickets": round(float(auc), 3)})
    return pd.DataFrame(lines)


def log_feature(values: np.ndarray) -> np.ndarray:
    """log of a non-negative trait, with zeros at half the smallest positive value (not at a floor
    of its own far below the data, which would make them outliers of the standardised log)."""
    values = np.asarray(values, dtype=np.float64)
    positive = values[values > 0]
    return np.log(np.maximum(values, positive.min() / 2 if len(positive) else 1.0))


def logistic_fit(frame: pd.DataFrame, traits=("spread", "update", "coherence", "inputs", "gradient"),
                 penalty: float = 1.0) -> pd.DataFrame:
    """A small logistic regression of ticket status on the standardised logs of `traits` (one
    model, all together): which trait carries the signal once the others are held fixed. An L2
    `penalty` on the coefficients (not the intercept) keeps them finite where a trait separates
    tickets from the other rows completely."""
    features = np.column_stack([log_feature(frame[t].to_numpy()) for t in traits])
    features = (features - features.mean(axis=0)) / np.where(features.std(axis=0) > 0, features.std(axis=0), 1.0)
    design = np.column_stack([np.ones(len(frame)), features])
    target = frame["is_ticket"].to_numpy(dtype=np.float64)
    ridge = np.r_[0.0, np.full(len(traits), penalty)]

    def loss(weights):
        z = design @ weights
        value = np.sum(np.logaddexp(0.0, z) - target * z) + 0.5 * np.sum(ridge * weights ** 2)
        return float(value), design.T @ (special.expit(z) - target) + ridge * weights

    weights = optimize.minimize(loss, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B").x
    return pd.DataFrame({"trait": ["(intercept)", *traits], "coefficient (per std of log)": np.round(weights, 3)})


SIZES = tuple(float(s) for s in np.round(np.geomspace(0.01, 1.0, 9), 4))
"""Nudge sizes of the simulation, in units of the row's spread: 0.01 to 1."""


def run_traits(base, embed, tickets, train, pair: str, template: str, max_length: int, batch_size: int,
               seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """row_traits for one pipeline run (base model, its tuned embedding `embed`, its tickets.json and
    the training split, encoded as the stage encodes it), and the base rows the run moved (the
    simulation's rows)."""
    from kslottery.data.corpus import read_pairs
    from kslottery.data.prompts import encode_pairs
    from kslottery.lottery.tickets import read_tickets_file, ticket_rows
    from kslottery.model.saved import embedding_rows
    from kslottery.studies.shifts import input_counts

    model, tokenizer, before, after = embedding_rows(base, embed)
    examples = encode_pairs(tokenizer, read_pairs(train), pair, template, max_length)
    counts = input_counts([e.input_ids for e in examples], before.shape[0])
    gradient = gradient_mass(model, examples, batch_size, seed, tokenizer.pad_token_id)
    frame = row_traits(before, after, ticket_rows(read_tickets_file(tickets)), counts, gradient)
    return frame, before[frame["row"].to_numpy()]


def traits_markdown(frames: dict[int, pd.DataFrame], simulation: pd.DataFrame, pair: str, d: int,
                    alpha: float) -> str:
    """Per seed the rank summary, then the logistic fit over the seeds' rows together, the
    traits' medians for tickets and other moved rows, and the simulation."""
    pooled = pd.concat(frames.values(), ignore_index=True)
    lines = [f"# What makes a ticket ({pair}, seeds {', '.join(map(str, frames))})", "",
             "Every row embedding tuning moved, its KS distance D and ticket status against what the row and its "
             "update look like (`ksl traits`; src/kslottery/studies/traits.py). Traits:", ""]
    lines += [f"- `{name}`: {text}" for name, text in TRAITS.items()]
    lines += ["", "## Rank correlations", ""]
    for seed, frame in frames.items():
        lines += [f"Seed {seed}: {len(frame):,} moved rows, {int(frame['is_ticket'].sum())} tickets.", "",
                  rank_summary(frame).to_markdown(index=False), ""]
    medians = pooled.groupby("is_ticket")[list(TRAITS)].median().rename(index={True: "tickets", False: "other moved rows"})
    lines += ["## Medians, all seeds", "", medians.T.to_markdown(floatfmt=".4g"), "",
              "## Logistic fit, all seeds", "",
              "Ticket status on the standardised logs of the traits, all at once (a coefficient: the change in "
              "log-odds per standard deviation of the trait's log, the others fixed).", "",
              logistic_fit(pooled).to_markdown(index=False), "",
              "## Simulation: what the KS test sees", "",
              f"Real moved rows (d = {d}) nudged three ways at sizes in units of the row's spread: mean D and the "
              f"share significant at alpha {alpha:g} (D >= {critical_statistic(d, alpha):.4f}).", "",
              simulation.pivot(index="size", columns="nudge", values=["mean_D", "significant"])
              .to_markdown(floatfmt=".4g"), ""]
    return "\n".join(lines)


def plot_traits(frames: dict[int, pd.DataFrame], simulation: pd.DataFrame, d: int, alpha: float,
                out_png) -> None:
    """Left: D against the update's coherence, every moved row of the first seed, tickets marked.
    Middle: D against the token's training inputs, likewise. Right: the simulation's mean D by
    nudge size, with the critical D at `alpha`."""
    from kslottery.report.figures import label_axes, pyplot, save_png

    plt = pyplot()
    seed, frame = next(iter(frames.items()))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    critical = critical_statistic(d, alpha)
    for ax, trait, xlabel in ((axes[0], "coherence", "coherence of the update (location + scale share)"),
                              (axes[1], "inputs", "training inputs that hold the token")):
        for is_ticket, look in ((False, dict(s=4, color="#8c8c8c", alpha=0.4, label="other moved rows")),
                                (True, dict(s=14, color="#dd8452", label="KS tickets"))):
            rows = frame[frame["is_ticket"] == is_ticket]
            ax.scatter(rows[trait].clip(lower=1e-6 if trait == "coherence" else 0.5), rows["D"], **look)
        ax.axhline(critical, color="k", lw=0.8, ls="--", label=f"critical D (alpha {alpha:g})")
        ax.set_xscale("log")
        label_axes(ax, f"seed {seed}: KS distance of every moved row", xlabel, "D")
    for nudge, colour in zip(NUDGES, ("#4c72b0", "#55a868", "#c44e52")):
        rows = simulation[simulation["nudge"] == nudge]
        axes[2].plot(rows["size"], rows["mean_D"], "o-", color=colour, label=nudge)
    axes[2].axhline(critical, color="k", lw=0.8, ls="--", label=f"critical D (alpha {alpha:g})")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    label_axes(axes[2], "simulation: D of a real row after a nudge", "nudge size (x the row's spread)", "mean D")
    save_png(fig, out_png, dpi=110)
