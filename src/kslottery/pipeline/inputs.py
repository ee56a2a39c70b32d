"""What a training stage reads besides the base model and the data, checked before any model loads:
the tickets of a token method, the target tickets and pattern of a target method."""

from __future__ import annotations

import click

from kslottery.config.params import Params
from kslottery.config.registry import Method
from kslottery.lottery.targets import read_target_tickets_file, ticket_rows_by_module
from kslottery.lottery.tickets import read_tickets_file, ticket_rows
from kslottery.model.loading import saved_vocab_size
from kslottery.model.targets import target_problems


def check_target(entry: Method, params: Params, target: str | None, base: str) -> None:
    """A target method needs a --target pattern of ks.target that matches linear modules of the base
    (checked from its config alone); every other method refuses one."""
    if entry.target and target is None:
        raise click.UsageError(f"{entry.name} trains the matrices of a ks.target pattern: pass --target PATTERN")
    if target is not None and not entry.target:
        raise click.UsageError(f"--target is for the target methods only, not {entry.name}")
    if entry.target and (problem := params.target_problem(target)):
        raise click.ClickException(problem)
    if entry.target and (problems := target_problems([target], base)):
        raise click.ClickException(problems[0])


def read_tickets(path: str | None, method: str, base: str, alpha: float) -> list[int]:
    """The ticket rows a token method reads (its rows, or its k), checked against the base's vocabulary."""
    if path is None:
        raise click.UsageError(f"--tickets is required for {method}")
    rows = ticket_rows(read_tickets_file(path))
    if not rows:
        raise click.ClickException(f"{path} holds no tickets: no row is significant at alpha={alpha}; "
                                   "raise alpha or train the embedding harder (train.embed)")
    vocab_size = saved_vocab_size(base)
    if vocab_size is not None and (len(rows) > vocab_size or max(rows) >= vocab_size):
        raise click.ClickException(f"{path}: {len(rows)} tickets up to row {max(rows)} do not fit "
                                   f"the {vocab_size}-row vocabulary of {base}; rerun ks-select on this model")
    return rows


def read_target_tickets(path: str | None) -> dict[str, list[int]]:
    """The target ticket rows by module (target-select's JSON)."""
    if path is None:
        raise click.UsageError("--tickets (target-select's JSON) is required for target-ticket")
    rows = ticket_rows_by_module(read_target_tickets_file(path))
    if not rows:
        raise click.ClickException(f"{path} holds no target tickets: no row is significant; raise alpha or tune "
                                   "the target harder (train.target_tuned)")
    return rows

