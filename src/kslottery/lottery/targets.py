"""KS beyond the embedding (`ks.target`): the row tickets of a module pattern's matrices.

The embedding's three steps, on other matrices: tune every row of the matrices a pattern matches
(method `target-tuned`), KS-test each row before vs after (a row is one output unit: its d_in weights are
the two samples, as an embedding row's d values are), and train only the significant rows from the
base (method `target-ticket`). The test and the selection are ks.py and tickets.select_tickets,
run on the rows of all the matched matrices at once; this module maps them to (module, row).
Which matrices a pattern names, and what a target method trains of them, is model/targets.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from kslottery.atomic import read_json, require
from kslottery.lottery.tickets import Tickets


def stacked_rows(weights: dict[str, torch.Tensor]) -> tuple[list[str], list[np.ndarray]]:
    """(names, matrices): the weights in name order, as float numpy arrays (out, in)."""
    names = sorted(weights)
    return names, [weights[name].detach().float().cpu().numpy() for name in names]


def row_index(names: list[str], matrices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(module, row) of every row of the matrices stacked in order: two (R,) arrays, the module as
    an index into `names`."""
    module = np.concatenate([np.full(m.shape[0], i, dtype=np.int64) for i, m in enumerate(matrices)])
    row = np.concatenate([np.arange(m.shape[0], dtype=np.int64) for m in matrices])
    return module, row


def target_record(tickets: Tickets, names: list[str], matrices: list[np.ndarray], pattern: str, alpha: float,
                  top_k: int | None, rank_by: str) -> dict:
    """The JSON form of the row tickets (target-tickets@PATTERN.json): counts, the tickets per module,
    then one entry per ticket row in rank order. `tickets.token_ids` index the stacked rows."""
    module, row = row_index(names, matrices)
    chosen_modules = module[tickets.token_ids]
    return {
        "target": pattern,
        "alpha": alpha,
        "top_k": top_k,
        "rank_by": rank_by,
        "matrices": len(names),
        "rows": int(len(module)),
        "n_moved": tickets.n_moved,
        "n_significant": tickets.n_significant,
        "n_tickets": int(len(tickets.token_ids)),
        "per_module": {names[i]: int((chosen_modules == i).sum()) for i in range(len(names))},
        "tickets": [
            {"module": names[m], "row": int(r), "D": float(d), "p": float(p)}
            for m, r, d, p in zip(chosen_modules, row[tickets.token_ids], tickets.statistic, tickets.pvalue)
        ],
    }


def read_target_tickets_file(path: str | Path,
                             fix: str = "rerun target-select (`dvc repro target-select`) to write it") -> dict:
    """A target-tickets record (what target-select wrote), refused in one line if it is not one: a
    JSON object whose "tickets" is a list of objects with a "module" name and an integer "row" >= 0."""
    record = read_json(path, fix)
    require(path, isinstance(record, dict) and isinstance(record.get("tickets"), list),
            'expected a JSON object with a "tickets" list (target-select\'s target tickets)', fix)
    for number, ticket in enumerate(record["tickets"]):
        ticket = ticket if isinstance(ticket, dict) else {}
        row, module = ticket.get("row"), ticket.get("module")
        require(path, isinstance(module, str) and module != "", f'tickets[{number}] has no "module" name', fix)
        require(path, isinstance(row, int) and not isinstance(row, bool) and row >= 0,
                f"tickets[{number}] has row {json.dumps(row)}, not a row index (an integer >= 0)", fix)
    return record


def ticket_rows_by_module(record: dict) -> dict[str, list[int]]:
    """A target-tickets record's rows, grouped by module and sorted."""
    rows: dict[str, list[int]] = {}
    for ticket in record["tickets"]:
        rows.setdefault(ticket["module"], []).append(int(ticket["row"]))
    return {name: sorted(found) for name, found in sorted(rows.items())}
