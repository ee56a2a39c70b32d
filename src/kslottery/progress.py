"""Progress bars that show where someone watches and stay out of logs.

tqdm writes its bar to stderr whether or not it is a terminal, so a `dvc repro > log` or a CI log
fills with redrawn bars. `progress` turns the bar off when stderr is not a terminal (tqdm's
`disable=None`), unless TQDM_DISABLE is set, which then decides (TQDM_DISABLE=1: no bar anywhere).
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress(iterable, **kwargs):
    """tqdm(iterable, **kwargs), quiet on a non-terminal unless TQDM_DISABLE says otherwise."""
    if "TQDM_DISABLE" not in os.environ:
        kwargs.setdefault("disable", None)  # None: off when the output is not a TTY
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
