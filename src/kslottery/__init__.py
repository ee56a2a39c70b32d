"""KS-Lottery: find the few token-embedding rows that carry a multilingual transfer.

The library behind the DVC pipeline, in folders by role (src/kslottery/README.md): config, methods,
data, model, training, lottery (the paper), evaluation, report, pipeline, studies, sharing.
Importing it pins the CPU kernels before torch loads (numerics.py), so that every stage and `ksl`
command computes the same bytes on any x86-64 machine with AVX2.
"""

from kslottery import numerics as _numerics

_numerics.pin()

__version__ = "0.1.0"


class KSLotteryError(Exception):
    """A problem the user can fix (bad params, data or model; a diverging run). Its message names
    the problem and the fix; stages print it as one line instead of a traceback."""
