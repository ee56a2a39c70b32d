"""KS-Lottery: find the few token-embedding rows that carry a multilingual transfer.

The library behind the DVC pipeline. Data flows one way: params -> corpus -> prompts -> models and
surgery (which method trains what: methods.py, the registry) -> train -> ks -> tickets -> certify ->
evaluation (translate, scoring) -> report. README.md maps each step of the paper to its function.
"""

__version__ = "0.1.0"


class KSLotteryError(Exception):
    """A problem the user can fix (bad params, data or model; a diverging run). Its message names
    the problem and the fix; stages print it as one line instead of a traceback."""
