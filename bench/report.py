"""results/bench.md holds one section per benchmark; each bench script replaces only its own.

A section is the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`. A script that has
no section yet appends one, so the benchmarks can run in any order (or at the same time: the
read-modify-write holds an exclusive lock on the results directory, and the file is replaced in one
rename, so a reader never sees half a file).
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import tempfile
from pathlib import Path

import torch


def machine() -> str:
    """One line naming the machine and what it could use: CPU, cores, memory, GPU (or its absence)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = (f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available()
           else "no GPU (torch.cuda.is_available() is False, so there are no GPU rows)")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {memory:.0f} GiB, "
            f"{platform.system()} {platform.release()}; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads); {gpu}; load average {os.getloadavg()[0]:.1f}")


def write_section(path: str | Path, name: str, text: str) -> None:
    """Put `text` between the markers of section `name` in `path`, leaving every other section as it is."""
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"section name {name!r}: use letters, digits, '_', '.' or '-'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = f"{begin}\n{text.strip()}\n{end}\n"
    lock = os.open(path.parent, os.O_RDONLY)  # a directory can be flocked: no lock file is left behind
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        if old.count(begin) > 1 or old.count(begin) != old.count(end):
            raise ValueError(f"{path}: the markers of section {name!r} are broken ({old.count(begin)} x {begin}, "
                             f"{old.count(end)} x {end}); fix or delete the file and rerun")
        if begin in old:
            head, rest = old.split(begin, 1)
            tail = rest.split(end, 1)[1].lstrip("\n")
            new = head + section + ("\n" + tail if tail else "")
        else:
            new = old.rstrip("\n") + ("\n\n" if old.strip() else "") + section
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         delete=False) as tmp:
            tmp.write(new)
        os.chmod(tmp.name, path.stat().st_mode & 0o777 if path.is_file() else 0o644)
        os.replace(tmp.name, path)
    finally:
        os.close(lock)  # releases the lock
