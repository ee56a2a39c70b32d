"""Corpus-level scores with sacrebleu: BLEU, chrF++ and, where its tokenizer model is already on
disk, spBLEU (sacrebleu's flores101 or flores200 SentencePiece tokenizer). Nothing is downloaded here.

A continuation is scored under two protocols (PROTOCOLS), from one decode:
* `first_line`: the continuation up to its first newline, stripped: what a translation prompt of
  one line asks for, and what a model that has not learnt to stop still gets credit for;
* `whole`: the whole continuation, newlines as spaces, as the evaluation code of the authors'
  earlier vocabulary-sharing repository scores it (docs/pipeline.md says where): a model that runs
  on past its translation pays for it.
Scores of `first_line` keep their plain names (`bleu`, `chrf++`, `spbleu`); those of another
protocol carry its name (`whole_bleu`, ...)."""

from __future__ import annotations

from pathlib import Path

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF


def spbleu_model_path(tokenizer: str = "flores101") -> Path | None:
    """sacrebleu's SentencePiece model `tokenizer` (flores101, flores200), if it is cached locally."""
    try:
        from sacrebleu.tokenizers.tokenizer_spm import SPM_MODELS
        from sacrebleu.utils import SACREBLEU_DIR
    except ImportError:
        return None
    path = Path(SACREBLEU_DIR) / "models" / Path(SPM_MODELS[tokenizer]["url"]).name
    return path if path.is_file() else None


def first_line(continuation: str) -> str:
    """The first line of a continuation, stripped."""
    return continuation.strip().split("\n", 1)[0].strip()


def whole(continuation: str) -> str:
    """The whole continuation, newlines as spaces, stripped."""
    return continuation.replace("\n", " ").strip()


PROTOCOLS = {"first_line": first_line, "whole": whole}
"""protocol name -> the text of a continuation that it scores."""
PROTOCOL_LABELS = {"first_line": "first line", "whole": "whole continuation"}
TRANSLATION_COLUMNS = {"first_line": "hypothesis", "whole": "continuation"}
"""protocol -> its column in the translations TSV that evaluate writes (evaluation.write_translations)."""


def score_key(protocol: str, score: str) -> str:
    """The name of a score under a protocol: `chrf++` (first line), `whole_chrf++`."""
    return score if protocol == "first_line" else f"{protocol}_{score}"


def score_protocols(continuations: list[str], references: list[str], spbleu_tokenizer: str = "flores101") -> dict:
    """`score` of each protocol's view of the continuations, in one flat record (see score_key)."""
    scores = {}
    for protocol, view in PROTOCOLS.items():
        scored = score([view(c) for c in continuations], references, spbleu_tokenizer)
        if protocol == "first_line":
            scores |= scored
        else:
            scores |= {score_key(protocol, k): scored[k] for k in ("bleu", "chrf++", "spbleu")}
    return scores


def score(hypotheses: list[str], references: list[str], spbleu_tokenizer: str = "flores101") -> dict:
    """{'bleu', 'chrf++', 'spbleu' (or None), 'n', 'sacrebleu', 'signatures'} for one test set; the
    signatures (sacrebleu's, e.g. nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0) say
    exactly how each score was computed, as sacrebleu asks papers to report."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu, chrf = BLEU(), CHRF(word_order=2)
    scores = {
        "bleu": round(bleu.corpus_score(hypotheses, [references]).score, 2),
        "chrf++": round(chrf.corpus_score(hypotheses, [references]).score, 2),
        "spbleu": None,
        "n": len(references),
        "sacrebleu": sacrebleu.__version__,
        "signatures": {"bleu": str(bleu.get_signature()), "chrf++": str(chrf.get_signature())},
    }
    if spbleu_model_path(spbleu_tokenizer) is not None:
        spbleu = BLEU(tokenize=spbleu_tokenizer)
        scores["spbleu"] = round(spbleu.corpus_score(hypotheses, [references]).score, 2)
        scores["signatures"]["spbleu"] = str(spbleu.get_signature())
    return scores
