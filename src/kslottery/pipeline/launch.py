"""How training runs are launched: `accelerate launch` with the config that params `accelerate` names.

dvc.yaml writes the training stages' command; `finetune_command` builds the same one for `ksl calibrate`
and `ksl regime` (tests/test_stage_deps.py checks that the two agree, flag for flag). Whether
the config exists is checked where it is used (here, and by `ksl validate` / `ksl use`), not by the
params loader, which reads only the params file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def stages_dir() -> Path:
    """Where the stage scripts are: the repository's stages/, installed as the package kslottery.stages
    (pyproject.toml), so that it is found from a checkout and from a regular install alike."""
    return Path(importlib.util.find_spec("kslottery.stages").submodule_search_locations[0])


def config_problems(config: str) -> list[str]:
    """Is the accelerate config there? (paths are relative to the repository root, where dvc runs)"""
    if Path(config).is_file():
        return []
    return [f"accelerate: {config!r} does not exist; use one of configs/accelerate/*.yaml "
            "(paths are relative to the repository root) or write one with `accelerate config --config_file PATH`"]


def accelerate_command(config: str, script: str | Path, *args: str) -> list[str]:
    """The command line that runs a stage script under `accelerate launch` with `config`."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", config, str(script), *args]


def finetune_command(config: str, *, method: str, seed: int, pair: str, base: Path, data: Path, out: Path,
                     metrics: Path, loss_csv: Path, dev_csv: Path, cost: Path | None = None,
                     tickets: Path | None = None, target: str | None = None, params: Path | None = None) -> list[str]:
    """The training stage's command line, as dvc.yaml writes it for `method` (its flags in dvc.yaml's
    order), run under `accelerate launch` with `config`; `params` when not the default params.yaml."""
    args = ["--method", method, *(["--target", target] if target is not None else []), "--seed", str(seed),
            "--pair", pair, "--base", str(base), "--data", str(data),
            *(["--tickets", str(tickets)] if tickets is not None else []), "--out", str(out),
            "--metrics", str(metrics), "--loss-csv", str(loss_csv), "--dev-csv", str(dev_csv),
            *(["--cost", str(cost)] if cost is not None else []),
            *(["--params", str(params)] if params is not None else [])]
    return accelerate_command(config, stages_dir() / "finetune.py", *args)
