"""Atomic writes: an output is replaced whole or not at all; and the one reader of the JSON files
the stages write, which refuses a missing, empty, binary or truncated file in one line.

Every writer writes into a temporary sibling of its output and renames it into place at the end,
so a kill at any point leaves the previous output or none, never a half-written one. The stage
outputs, checkpoints, `ksl use` and the calibration tables all write through here.

An output folder is replaced only when this project wrote it: it holds the marker file MARKER (every
folder atomic_dir writes does), or it is empty. It is never replaced when it holds the working
directory, a stage input or a repository: a mistyped `--out data/corpus` or `--out .` is refused
before any work, and nothing is deleted. The swap moves the old folder aside, the new one in, and
only then deletes the old, so a kill at any moment leaves one of the two in place (or aside, where
the next write of that output puts it back).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from kslottery import KSLotteryError

MARKER = ".ksl-output"
"""The file in every output folder atomic_dir writes: this project made it and may replace it."""
MARKER_TEXT = "An output of ks-lottery: the stage that wrote this folder replaces it whole when it runs again.\n"
REPOSITORY_FILES = (".git", ".dvc", "dvc.yaml")


class OutputError(KSLotteryError, ValueError):
    """An output path that must not be replaced; the message names it and the fix."""


class FileContentError(KSLotteryError, ValueError):
    """A project file (tickets, manifest, metrics) that is missing or holds the wrong content; the
    message names the file, the line or key, and the fix."""


def remove_stale_temporaries(path: Path) -> None:
    """Tidy what a killed earlier write of `path` left beside it: SIGKILL allows no cleanup, so the
    next writer of the same output does it (DVC runs one stage at a time). A temporary being filled
    (`.{name}.<random>.tmp`) is deleted; an old output moved aside for a swap (`.{name}.<random>.old`)
    goes back into place if the kill came before the new one moved in, else is deleted."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    for aside in path.parent.glob(f".{path.name}.*.old"):
        if not path.exists():
            os.rename(aside, path)
        else:
            shutil.rmtree(aside, ignore_errors=True)


def replace_problem(path: Path, inputs=()) -> str | None:
    """Why the folder `path` must not be replaced by a stage's output, or None if it may: it does not
    exist, is empty, or holds MARKER, and holds neither the working directory, nor an input, nor a
    repository."""
    resolved = path.resolve()
    fix = "pass an --out of its own (e.g. under models/ or data/prepared/)"
    if Path.cwd().resolve().is_relative_to(resolved):
        return f"--out {path} holds the working directory; {fix}"
    for given in inputs:
        if given is not None and Path(given).resolve().is_relative_to(resolved):
            return f"--out {path} holds this stage's input {given}; {fix}"
    if not path.exists():
        return None
    if not path.is_dir():
        return f"--out {path} is a file, and the output is a folder; {fix}, or move the file away"
    if any((path / name).exists() for name in REPOSITORY_FILES):
        return f"--out {path} holds a repository; {fix}"
    if (path / MARKER).is_file() or not any(path.iterdir()):
        return None
    return (f"--out {path} is a folder this project did not write (no {MARKER} in it): writing there would "
            f"delete what it holds; {fix}, or move the folder away")


def check_output_dir(path: str | Path, inputs=()) -> None:
    """Refuse, before any work, an output folder that must not be replaced (replace_problem)."""
    if problem := replace_problem(Path(path), inputs):
        raise OutputError(problem)


@contextlib.contextmanager
def atomic_dir(path: str | Path, inputs=()):
    """Yield a fresh temporary directory that replaces `path` only if the block succeeds. `path` is
    checked first (check_output_dir, with the stage's `inputs`); the new folder gets MARKER."""
    path = Path(path)
    check_output_dir(path, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        (tmp / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        check_output_dir(path, inputs)  # the block may have run for minutes: is the folder still ours?
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; an output is as readable as any new directory
    if path.exists():
        aside = tmp.with_suffix(".old")  # .{name}.<random>.old
        os.rename(path, aside)  # a kill from here to the next rename leaves the old one aside: put back next time
        os.rename(tmp, path)
        shutil.rmtree(aside)
    else:
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


def read_json(path: str | Path, fix: str):
    """The JSON value in `path`; a missing, empty, non-UTF-8 or invalid file is refused with its name
    (and line) and `fix` (e.g. "rerun `dvc repro ks-select@en-ca-0`")."""
    path = Path(path)
    if not path.is_file():
        raise FileContentError(f"{path}: no such file; {fix}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileContentError(f"{path}: not UTF-8 text (a binary file?); {fix}") from None
    if not text.strip():
        raise FileContentError(f"{path}: empty; {fix}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise FileContentError(f"{path}:{err.lineno}: not valid JSON ({err.msg}; cut short?); {fix}") from None


def require(path: str | Path, condition: bool, problem: str, fix: str) -> None:
    """Refuse the content of `path` unless `condition`: "{path}: {problem}; {fix}"."""
    if not condition:
        raise FileContentError(f"{path}: {problem}; {fix}")
