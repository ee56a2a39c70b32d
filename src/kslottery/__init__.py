"""KS-Lottery: find the few token-embedding rows that carry a multilingual transfer.

The library behind the DVC pipeline: params -> corpus -> prompts -> models/methods -> train -> ks
-> translate -> scoring -> report. See README.md for the pipeline and its stages.
"""

__version__ = "0.1.0"


class KSLotteryError(Exception):
    """A problem the user can fix (bad params, data or model; a diverging run). Its message names
    the problem and the fix; stages print it as one line instead of a traceback."""
