"""The winning tickets, and the rows of the controls that are measured against them.

Pure functions of arrays and records: no model, no files. The KS test itself is ks.py.

* `select_tickets`: the rows whose KS shift is significant at level alpha, ranked (by p, D or the
  l2 shift), optionally capped at top_k;
* `control_rows`: the rows a token method trains (methods.Method.rows): the tickets themselves, or
  a control's rows (random from the vocabulary or from the training inputs, the most frequent
  input tokens, the template's tokens), k being the ticket count.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np




@dataclass(frozen=True)
class Tickets:
    """Winning tickets: rows with p < alpha, in the order of the ranking that chose them."""

    token_ids: np.ndarray  # (k,) int64
    statistic: np.ndarray  # (k,)
    pvalue: np.ndarray  # (k,)
    shift: np.ndarray  # (k,) l2 norm of each ticket row's change; NaN where it was not given
    n_significant: int  # rows with p < alpha before any top_k cap
    n_moved: int  # rows that changed at all

    def record(self, token_strings: list[str], alpha: float, top_k: int | None, rank_by: str, vocab_size: int,
               classes: list[str] | None = None) -> dict:
        """The JSON form written to tickets.json: summary counts, then one entry per ticket, in rank order
        (with its TOKEN_CLASSES class where `classes` are given).

        An unknown shift (NaN) is written as null: json.dumps would write NaN, which is not JSON.
        """
        record = {
            "alpha": alpha,
            "top_k": top_k,
            "rank_by": rank_by,
            "vocab_size": vocab_size,
            "n_moved": self.n_moved,
            "n_significant": self.n_significant,
            "n_tickets": len(self.token_ids),
            "tickets": [
                {"token_id": int(t), "token": s, "D": float(d), "p": float(p),
                 "l2": None if np.isnan(l2) else round(float(l2), 6)}
                for t, s, d, p, l2 in zip(self.token_ids, token_strings, self.statistic, self.pvalue, self.shift)
            ],
        }
        if classes is not None:
            record |= {f"n_{name}": classes.count(name) for name in TOKEN_CLASSES}
            for ticket, name in zip(record["tickets"], classes):
                ticket["class"] = name
        return record


def row_shift(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(V, d), (V, d) -> (V,): the Euclidean norm of each row's change, in float64."""
    return np.linalg.norm(np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64), axis=1)


def select_tickets(statistic: np.ndarray, pvalue: np.ndarray, alpha: float, top_k: int | None = None,
                   rank_by: str = "p", shift: np.ndarray | None = None) -> Tickets:
    """Rows whose KS shift is significant at level alpha, ranked, then capped at top_k.

    rank_by: `p` (smallest first, then larger D, then token id), `D` (largest first, then smaller p,
    then token id) or `l2` (largest `shift` first, then token id). Every row has the same number of
    values d, so p is a non-increasing function of D and `p` and `D` give the same order; `l2` is
    the ablation that ranks by how far a row moved rather than by how its values' distribution
    changed. Without top_k the ranking changes the order of the tickets, not the set.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if shift is None:
        if rank_by == "l2":
            raise ValueError("rank_by='l2' needs the row shifts (shift=row_shift(before, after))")
        shift = np.full(len(pvalue), np.nan)
    ids = np.arange(len(pvalue))
    keys = {  # np.lexsort: the last key is the primary one
        "p": (ids, -statistic, pvalue),
        "D": (ids, pvalue, -statistic),
        "l2": (ids, -shift),
    }
    if rank_by not in keys:
        raise ValueError(f"rank_by={rank_by!r} is unknown; use one of {', '.join(keys)}")
    order = np.lexsort(keys[rank_by])
    significant = order[pvalue[order] < alpha]
    chosen = significant if top_k is None else significant[:top_k]
    return Tickets(
        token_ids=chosen.astype(np.int64),
        statistic=statistic[chosen],
        pvalue=pvalue[chosen],
        shift=shift[chosen],
        n_significant=int(len(significant)),
        n_moved=int((statistic > 0).sum()),
    )


# ---------------------------------------------------------------------------------------------
# Controls: rows chosen without the KS test, k at a time (k = the ticket count)




def random_rows(vocab_size: int, k: int, seed: int) -> np.ndarray:
    """k distinct rows drawn uniformly from the vocabulary, seeded; sorted."""
    if not 0 < k <= vocab_size:
        raise ValueError(f"k={k} must be in [1, {vocab_size}] (the vocabulary size)")
    return np.sort(np.random.default_rng(seed).choice(vocab_size, size=k, replace=False)).astype(np.int64)


def most_frequent_rows(counts: dict[int, int], k: int) -> np.ndarray:
    """The k most frequent token ids (ties broken by the smaller id); fewer if fewer occur."""
    if k <= 0:
        raise ValueError(f"k={k} must be positive")
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return np.array([token for token, _ in ranked[:k]], dtype=np.int64)


@dataclass(frozen=True)
class TrainingTokens:
    """What the control rules read of the training data: the token ids of every training input as
    the model sees it (prompt, source and target) and of every prompt alone."""

    inputs: list[list[int]]
    prompts: list[list[int]]

    def counts(self) -> dict[int, int]:
        """How often each token id occurs in the training inputs."""
        counts: dict[int, int] = {}
        for ids in self.inputs:
            for token in ids:
                counts[token] = counts.get(token, 0) + 1
        return counts

    def seen(self) -> np.ndarray:
        """The distinct token ids of the training inputs, sorted: the rows embedding tuning moves."""
        return np.unique(np.concatenate([np.asarray(ids, dtype=np.int64) for ids in self.inputs]))

    def template(self) -> np.ndarray:
        """The token ids that occur in every prompt, sorted: the template's own tokens (its words, the
        language names, special tokens), however each source is tokenized."""
        common = set(self.prompts[0]).intersection(*map(set, self.prompts[1:]))
        return np.array(sorted(common), dtype=np.int64)


def random_seen_rows(seen: np.ndarray, k: int, seed: int) -> np.ndarray:
    """min(k, len(seen)) distinct rows drawn uniformly among `seen`, seeded; sorted."""
    if k <= 0:
        raise ValueError(f"k={k} must be positive")
    chosen = np.random.default_rng(seed).choice(seen, size=min(k, len(seen)), replace=False)
    return np.sort(chosen).astype(np.int64)


def control_rows(rule: str, ticket_rows: list[int], vocab_size: int, seed: int, tokens: TrainingTokens) -> list[int]:
    """The rows a token method trains, by its registry entry's `rows` rule (k = len(ticket_rows)):

    * `tickets`: the ticket rows themselves;
    * `random`: k rows drawn uniformly from the whole vocabulary (seeded): the paper's control;
    * `random_seen`: k rows drawn uniformly among the tokens of the training inputs (seeded), the
      rows that get a gradient at all; fewer if fewer distinct tokens occur;
    * `frequent`: the k most frequent tokens of the training inputs; fewer if fewer occur;
    * `template_tokens`: the tokens of every training prompt, however many (k is not used).
    """
    k = len(ticket_rows)
    if rule == "tickets":
        return list(ticket_rows)
    if rule == "random":
        return random_rows(vocab_size, k, seed=seed).tolist()
    if rule == "random_seen":
        return random_seen_rows(tokens.seen(), k, seed=seed).tolist()
    if rule == "frequent":
        return most_frequent_rows(tokens.counts(), k).tolist()
    if rule == "template_tokens":
        template = tokens.template().tolist()
        if not template:
            raise ValueError("no token occurs in every training prompt, so the template-tokens control has no "
                             "rows: give `prompt.template` fixed words around {source}, or leave this control out")
        return template
    raise ValueError(f"unknown row rule {rule!r}; use tickets, random, random_seen, frequent or template_tokens")


def histogram_csv(statistic: np.ndarray, ticket_ids: np.ndarray) -> str:
    """One line per distinct D among the moved rows (D only takes the values h/d): how many rows, how
    many of them tickets. The DVC plot data of ks-select."""
    moved = statistic > 0
    is_ticket = np.zeros(len(statistic), dtype=bool)
    is_ticket[ticket_ids] = True
    values, which, rows = np.unique(statistic[moved], return_inverse=True, return_counts=True)
    tickets = np.bincount(which, weights=is_ticket[moved], minlength=len(values)).astype(int)
    return "D,rows,tickets\n" + "".join(f"{d:.6f},{r},{t}\n" for d, r, t in zip(values, rows, tickets))


def ticket_rows(record: dict) -> list[int]:
    """The token ids of a tickets.json record (Tickets.record), in rank order."""
    return [ticket["token_id"] for ticket in record["tickets"]]


TOKEN_CLASSES = ("template", "punctuation", "frequent", "content")
"""What a ticket is, first match wins: a token of the prompt template (in every training prompt),
punctuation or whitespace, one of the FREQUENT_TOP most frequent tokens of the training inputs
(function words, mostly), or anything else (content)."""
FREQUENT_TOP = 100


def token_class(token_id: int, text: str, template: set[int], frequent: set[int]) -> str:
    """The TOKEN_CLASSES entry of one token; `text` is the token decoded on its own."""
    if token_id in template:
        return "template"
    stripped = text.strip()
    if not stripped or all(unicodedata.category(ch)[0] in "PSZC" for ch in stripped):
        return "punctuation"
    if token_id in frequent:
        return "frequent"
    return "content"


def token_classes(token_ids, texts: list[str], tokens: TrainingTokens) -> list[str]:
    """The class of each token (token_class), with the template and frequent sets of `tokens`."""
    template = set(tokens.template().tolist())
    frequent = set(most_frequent_rows(tokens.counts(), FREQUENT_TOP).tolist())
    return [token_class(int(t), text, template, frequent) for t, text in zip(token_ids, texts)]
