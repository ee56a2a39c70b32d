"""KS beyond the embedding (`ks.target`): which matrices a module pattern names, and their row tickets.

The embedding's three steps, on other matrices: tune every row of the matrices a pattern matches
(method `target-tuned`), KS-test each row before vs after (a row is one output unit: its d_in weights are
the two samples, as an embedding row's d values are), and train only the significant rows from the
base (method `target-ticket`). The test and the selection are ks.py and tickets.select_tickets,
run on the rows of all the matched matrices at once; this module maps them to (module, row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kslottery.tickets import Tickets


def matches(name: str, pattern: str) -> bool:
    """Does module `name` (model.layers.3.mlp.down_proj) fit `pattern`: equal to it, or ending with
    `.pattern` (mlp.down_proj, layers.3.mlp.down_proj; never a partial name such as own_proj)?"""
    return name == pattern or name.endswith("." + pattern)


def linear_modules(model) -> dict[str, torch.nn.Linear]:
    """Every nn.Linear of `model`, by module name, in model order (the input embedding is not one)."""
    return {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}


def matching_linears(model, pattern: str) -> dict[str, torch.nn.Linear]:
    """The linear modules `pattern` names; a clear error if none, listing the kinds there are."""
    linears = linear_modules(model)
    found = {name: module for name, module in linears.items() if matches(name, pattern)}
    if not found:
        kinds = sorted({".".join(name.split(".")[-2:]) for name in linears})
        raise ValueError(f"ks.target: {pattern!r} matches no linear module of the model; its linear modules end "
                         f"with {', '.join(kinds[:12])}{' ...' if len(kinds) > 12 else ''}")
    return found


def target_problems(patterns, base_dir: str | Path) -> list[str]:
    """Patterns of ks.target that match no linear module of the prepared base model, found from its
    config alone (the model is built on the meta device: no weights are read). Nothing to check
    before prepare-model has run."""
    config_path = Path(base_dir) / "config.json"
    if not patterns or not config_path.is_file():
        return []
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir))
    problems = []
    for pattern in patterns:
        try:
            matching_linears(model, pattern)
        except ValueError as err:
            problems.append(str(err))
    return problems


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


def ticket_rows_by_module(record: dict) -> dict[str, list[int]]:
    """A target-tickets record's rows, grouped by module and sorted."""
    rows: dict[str, list[int]] = {}
    for ticket in record["tickets"]:
        rows.setdefault(ticket["module"], []).append(int(ticket["row"]))
    return {name: sorted(found) for name, found in sorted(rows.items())}


def rows_to_train(model, pattern: str, tickets: dict[str, list[int]] | None = None) -> dict[str, list[int] | None]:
    """What a target method trains, by module: every row of the matrices `pattern` matches (None per
    module, method `target-tuned`), or the ticket rows of target-select (`target-ticket`), checked to lie in
    those matrices."""
    linears = matching_linears(model, pattern)
    if tickets is None:
        return dict.fromkeys(linears)
    if unknown := sorted(set(tickets) - set(linears)):
        raise ValueError(f"the target tickets name modules {unknown[:3]} that {pattern!r} does not match in this "
                         "model; rerun target-select")
    return tickets


def row_count(model, rows: dict[str, list[int] | None]) -> int:
    """Rows (output units) a target method trains."""
    return sum(model.get_submodule(name).out_features if chosen is None else len(chosen) for name, chosen in rows.items())
