"""What every pipeline stage shares: logging, validated params, one-line errors, atomic outputs.

Every output is written through atomic.py (re-exported here for the stage scripts): a kill at any
point leaves the previous output or none, never a half-written one.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from kslottery import KSLotteryError, numerics
from kslottery.atomic import (atomic_dir, atomic_file, check_output_dir, read_json, write_json,  # noqa: F401 (for the stages)
                              write_text)
from kslottery.config.params import Params, ParamsError, load_params

log = logging.getLogger("kslottery")


def run(command) -> None:
    """Run a stage's click command; a KSLotteryError (bad params, data or model, a diverging run)
    ends it with its one-line message and exit status 1, not a traceback."""
    try:
        command()
    except KSLotteryError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    for noisy in ("httpx", "urllib3", "accelerate", "transformers.modeling_utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not sys.stderr.isatty() and "TQDM_DISABLE" not in os.environ:
        # transformers' own bars (GGUF conversion, "Loading weights") follow our rule too: none in a log
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def experiment_note() -> str:
    """Under `dvc exp run` (DVC sets DVC_EXP_NAME for its stages): how params.yaml was left, and how
    to get it back. `-S KEY=VALUE` rewrites params.yaml before any stage runs and leaves it so when a
    stage refuses the value (flow lists as block lists, every null blanked); empty otherwise."""
    if not os.environ.get("DVC_EXP_NAME"):
        return ""
    return ("\n(`dvc exp run -S` wrote these values into params.yaml and leaves the file so: "
            "`git diff params.yaml` shows what it changed, `git checkout params.yaml` restores the committed one)")


def start(params_path: str | Path, stage: str, pair: str | None = None, seed: int | None = None) -> Params:
    """Log the stage, load and validate params (exit with every problem listed if any), and check
    that the stage's pair and seed are among the params' `pairs` and `seeds`."""
    setup_logging()
    if "torch" in sys.modules:  # a stage that computes: on CUDA, deterministic algorithms (numerics.py)
        numerics.deterministic_cuda()
    try:
        params = load_params(params_path)
    except ParamsError as err:
        raise click.ClickException(str(err) + experiment_note()) from None
    if pair is not None and pair not in params.pairs:
        raise click.ClickException(f"pair {pair!r} is not in pairs {list(params.pairs)} of {params_path}; "
                                   "add it there (dvc.yaml runs one stage per pair)")
    if seed is not None and seed not in params.seeds:
        raise click.ClickException(f"--seed {seed} is not in seeds {list(params.seeds)} of {params_path}; "
                                   "add it there (dvc.yaml runs one stage per seed)")
    log.info("stage %s%s", stage, f" [{pair}]" if pair else "")
    return params
