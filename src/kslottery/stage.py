"""What every pipeline stage shares: logging, validated params, and atomic outputs.

A stage writes into a temporary sibling of each output and renames it into place at the end, so a
kill at any point leaves the previous output or none, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from kslottery import KSLotteryError
from kslottery.params import Params, ParamsError, load_params

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


def start(params_path: str | Path, stage: str, pair: str | None = None, seed: int | None = None) -> Params:
    """Log the stage, load and validate params (exit with every problem listed if any), and check
    that the stage's pair and seed are among the params' `pairs` and `seeds`."""
    setup_logging()
    try:
        params = load_params(params_path)
    except ParamsError as err:
        raise click.ClickException(str(err)) from None
    if pair is not None and pair not in params.pairs:
        raise click.ClickException(f"pair {pair!r} is not in pairs {list(params.pairs)} of {params_path}; "
                                   "add it there (dvc.yaml runs one stage per pair)")
    if seed is not None and seed not in params.seeds:
        raise click.ClickException(f"--seed {seed} is not in seeds {list(params.seeds)} of {params_path}; "
                                   "add it there (dvc.yaml runs one stage per seed)")
    log.info("stage %s%s", stage, f" [{pair}]" if pair else "")
    return params


def remove_stale_temporaries(path: Path) -> None:
    """Delete what a killed earlier write of `path` left (`.{name}.<random>.tmp` beside it): SIGKILL
    allows no cleanup, so the next writer of the same output does it (DVC runs one stage at a time)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a fresh temporary directory that replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; an output is as readable as any new directory
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    os.rename(tmp, path)


@contextlib.contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path in the same directory that replaces `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; an output is as readable as any new file
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_translations(path: str | Path, pairs, hypotheses: list[str]) -> None:
    """TSV of source, reference, hypothesis (tabs and newlines inside a field become spaces)."""
    def clean(text: str) -> str:
        return " ".join(text.replace("\t", " ").splitlines())

    rows = "".join(f"{clean(p.source)}\t{clean(p.target)}\t{clean(h)}\n" for p, h in zip(pairs, hypotheses))
    write_text(path, "source\treference\thypothesis\n" + rows)
