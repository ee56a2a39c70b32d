"""Atomic writes: an output is replaced whole or not at all.

Every writer writes into a temporary sibling of its output and renames it into place at the end,
so a kill at any point leaves the previous output or none, never a half-written one. The stage
outputs, checkpoints, `ksl use` and the calibration tables all write through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


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
