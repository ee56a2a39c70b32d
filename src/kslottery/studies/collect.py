"""`ksl collect`: a side profile's runs beside the default's, as one results folder.

A side profile (configs/converge.yaml, configs/sgd-source.yaml, ...) runs in a second checkout that
shares the default's DVC cache, so only the stages it changes train there. Its table compares those
runs with the default's others: the base model and every method the profile did not rerun. This
gathers both into `OUT/{eval,train,ks}/PAIR/...`, the layout `ksl table` reads:

* from the side checkout: each named method's evaluation and training records of each seed, and the
  seed's ks-select metrics where the profile ran its own; a named method the side checkout has not
  rerun (a fresh checkout holds git's copy of the default's records) is kept as OUT holds it, from
  the session that ran it, and refused if OUT has no run of it either. A rerun shows in its
  evaluation or its training record: a converged run that keeps its first epoch evaluates to the
  default's bytes, yet records the epochs it ran;
* from the default checkout: the base model's evaluation, every other method of the same seeds (but
  those `excluded`: e.g. a row control whose count differs from the profile's), and the ks-select
  metrics where neither the side checkout nor OUT holds the profile's own. For a side profile of
  another model, "the default" is a results folder of that model's runs in this layout (e.g.
  results/gemma3-270m/k18); every run taken from the side checkout must be of the model the
  default's base is (their evaluation records' `total_params`).

Every file is checked to exist before any is written, and each is written whole (atomically): a
folder that already holds other seeds keeps them, so seeds run in separate sessions add up.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from kslottery import KSLotteryError
from kslottery.atomic import atomic_file, read_json
from kslottery.config.params import pair_problems
from kslottery.config.registry import BASE

EVAL_SUFFIXES = (".json", ".translations.tsv")
TRAIN_SUFFIXES = (".json", ".loss.csv", ".dev.csv")  # .dev.csv only where a run evaluated dev per epoch


class CollectError(KSLotteryError, ValueError):
    """A run the collection needs is not on disk; the message names the stage to run."""


@dataclass(frozen=True)
class Copy:
    source: Path
    target: Path


def _run_files(metrics: Path, pair: str, seed: int, method: str, into: Path, checkout: Path) -> list[Copy]:
    """A trained method's evaluation (required) and training records (those present) of one seed."""
    evaluated = metrics / "eval" / pair / f"s{seed}" / f"{method}.json"
    if not evaluated.is_file():
        raise CollectError(f"{evaluated} is missing: run `dvc repro evaluate@{pair}-{seed}-{method}` in {checkout} "
                           "first, or leave the method or seed out")
    names = [Path(kind) / pair / f"s{seed}" / f"{method}{suffix}"
             for kind, suffixes in (("eval", EVAL_SUFFIXES), ("train", TRAIN_SUFFIXES)) for suffix in suffixes]
    return [Copy(metrics / name, into / name) for name in names if (metrics / name).is_file()]


def _not_default(path: Path, default_copy: Path) -> bool:
    """Whether PATH is a record of its own: a file, other than the default's (a fresh side checkout holds
    git's copy of the default's records)."""
    return path.is_file() and not (default_copy.is_file() and path.read_bytes() == default_copy.read_bytes())


def _model(checkout: Path) -> str | None:
    """The `model.source` a checkout's params.yaml names (None without one)."""
    params = checkout / "params.yaml"
    return (yaml.safe_load(params.read_text()) or {}).get("model", {}).get("source") if params.is_file() else None


def _records(root: Path) -> Path:
    """Where ROOT's records lie: a checkout's metrics/, or ROOT itself (a results folder in this layout)."""
    return root / "metrics" if (root / "metrics").is_dir() else root


def _total_params(record: Path) -> int | None:
    """The model size an evaluation record names (None in a record written before it did)."""
    return read_json(record, "rerun its `dvc repro evaluate@...` stage").get("total_params")


def _own_run(records: Path, default: Path, pair: str, seed: int, method: str) -> bool:
    """Whether RECORDS (a metrics folder) holds a run of its own: its evaluation, and an evaluation or
    training record other than the default's (DEFAULT: the default's records)."""
    evaluated, trained = (Path(kind) / pair / f"s{seed}" / f"{method}.json" for kind in ("eval", "train"))
    return (records / evaluated).is_file() and any(_not_default(records / r, default / r)
                                                   for r in (evaluated, trained))


def _side_run(out: Path, side: Path, default: Path, records: Path, pair: str, seed: int,
              method: str) -> list[Copy]:
    """A side method's files from the side checkout where it reran there (a run of the model of the base
    in RECORDS, DEFAULT's records); none where OUT already holds an earlier collection of it (a run of
    another session); else CollectError."""
    if _own_run(side / "metrics", records, pair, seed, method):
        evaluated = side / "metrics" / "eval" / pair / f"s{seed}" / f"{method}.json"
        ours, theirs = _total_params(evaluated), _total_params(records / "eval" / pair / f"{BASE}.json")
        if None not in (ours, theirs) and ours != theirs:
            raise CollectError(f"{evaluated} is a model of {ours:,} parameters, the base in {default} one of "
                               f"{theirs:,}: give --default the results of the side model's own runs (e.g. "
                               "results/gemma3-270m/k18)")
        return _run_files(side / "metrics", pair, seed, method, out, side)
    if _own_run(out, records, pair, seed, method):
        return []
    raise CollectError(f"{method} seed {seed} ({pair}) has not run in {side} (its record is missing or git's copy "
                       f"of the default's) and {out} holds no earlier run of it: run "
                       f"`dvc repro evaluate@{pair}-{seed}-{method}` in {side} first")


def plan(out: str | Path, side: str | Path, methods: list[str], pairs: list[str], seeds: list[int],
         default: str | Path = ".", excluded: list[str] = ()) -> list[Copy]:
    """The files to copy, sources checked; raises CollectError naming the first one missing."""
    out, side, default = Path(out), Path(side), Path(default)
    if both := sorted(set(methods) & set(excluded)):
        raise CollectError(f"{both[0]} is both collected (-m) and excluded (-x): give it once")
    if side.resolve() == default.resolve():
        raise CollectError(f"--from {side} is the default checkout itself; give the side profile's checkout")
    if out.resolve() == default.resolve():
        raise CollectError(f"OUT {out} is the --default folder itself; collect into a folder of its own")
    models = {checkout: _model(checkout) for checkout in (side, default)}
    if None not in models.values() and models[side] != models[default]:
        raise CollectError(f"the side checkout {side} runs model {models[side]}, the default checkout {default} "
                           f"{models[default]}: give --default the results of {models[side]}'s own runs (e.g. "
                           "results/gemma3-270m/k18)")
    if problems := [problem for pair in pairs for problem in pair_problems(pair)]:
        raise CollectError(f"--pair: {problems[0]}")
    records, copies = _records(default), []
    for pair in pairs:
        base = records / "eval" / pair / f"{BASE}.json"
        if not base.is_file():
            raise CollectError(f"{base} is missing: run `dvc repro evaluate-base@{pair}` in {default} first")
        copies += [Copy(records / "eval" / pair / f"{BASE}{s}", out / "eval" / pair / f"{BASE}{s}")
                   for s in EVAL_SUFFIXES]
        for seed in seeds:
            for method in methods:
                copies += _side_run(out, side, default, records, pair, seed, method)
            evaluated = records / "eval" / pair / f"s{seed}"
            others = sorted(p.name.removesuffix(".json") for p in evaluated.glob("*.json")
                            if p.name.removesuffix(".json") not in (*methods, *excluded))
            copies += [c for m in others for c in _run_files(records, pair, seed, m, out, default)]
            ks = Path("ks") / pair / f"s{seed}.json"
            if _not_default(side / "metrics" / ks, records / ks):
                copies.append(Copy(side / "metrics" / ks, out / ks))  # the profile's own selection
            elif not (out / ks).is_file():  # else OUT keeps what an earlier collection took
                copies.append(Copy(records / ks, out / ks))
    return [c for c in copies if c.source.is_file()]


def collect(copies: list[Copy]) -> None:
    """Copy each planned file, each written whole."""
    for copy in copies:
        with atomic_file(copy.target) as tmp:
            shutil.copyfile(copy.source, tmp)


def keep_header(table_md: Path, default: str) -> str:
    """The hand-written text above a results table (everything before its first `| ` row), else `default`."""
    if not table_md.is_file():
        return default
    lines = table_md.read_text().splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.startswith("| ")), len(lines))
    return "".join(lines[:first]) or default
