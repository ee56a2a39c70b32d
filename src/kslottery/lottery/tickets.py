"""The winning tickets: which rows the KS test selects, and what kind of token each is.

Pure functions of arrays and records: no model, no files. The KS test itself is ks.py.

* `select_tickets`: the rows whose KS shift is significant at level alpha, ranked (by p, D or the
  l2 shift), optionally capped at top_k;
* `token_classes`: what each ticket is (template, punctuation, frequent or content token).

The rows a control trains instead are its method's rule (src/kslottery/methods/).
"""

from __future__ import annotations

import json

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kslottery.atomic import read_json, require
from kslottery.data.training_tokens import TrainingTokens


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


def read_tickets_file(path: str | Path, fix: str = "rerun ks-select (`dvc repro ks-select`) to write it") -> dict:
    """A tickets.json record (what ks-select wrote), refused in one line if it is not one: a JSON
    object whose "tickets" is a list of objects with a non-negative integer "token_id"."""
    record = read_json(path, fix)
    require(path, isinstance(record, dict) and isinstance(record.get("tickets"), list),
            'expected a JSON object with a "tickets" list (ks-select\'s tickets.json)', fix)
    for number, ticket in enumerate(record["tickets"]):
        token_id = ticket.get("token_id") if isinstance(ticket, dict) else None
        require(path, isinstance(token_id, int) and not isinstance(token_id, bool) and token_id >= 0,
                f"tickets[{number}] has token_id {json.dumps(token_id)}, not a token id (an integer >= 0)", fix)
    return record


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
    frequent = set(tokens.most_frequent(FREQUENT_TOP).tolist())
    return [token_class(int(t), text, template, frequent) for t, text in zip(token_ids, texts)]
