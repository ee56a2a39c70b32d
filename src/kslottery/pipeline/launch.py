"""How training runs are launched: `accelerate launch` with the config that params `accelerate` names.

dvc.yaml writes the same command for its training stages; `ksl calibrate` builds it here. Whether
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
