"""Corpus-level scores with sacrebleu: BLEU, chrF++ and, where its tokenizer model is already on
disk, spBLEU (sacrebleu's flores101 SentencePiece tokenizer). Nothing is downloaded here."""

from __future__ import annotations

from pathlib import Path

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF


def spbleu_model_path() -> Path | None:
    """The flores101 SentencePiece model, if sacrebleu has it cached locally."""
    try:
        from sacrebleu.tokenizers.tokenizer_spm import SPM_MODELS
        from sacrebleu.utils import SACREBLEU_DIR
    except ImportError:
        return None
    path = Path(SACREBLEU_DIR) / "models" / Path(SPM_MODELS["flores101"]["url"]).name
    return path if path.is_file() else None


def score(hypotheses: list[str], references: list[str]) -> dict:
    """{'bleu', 'chrf++', 'spbleu' (or None), 'n'} for one test set."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    scores = {
        "bleu": round(BLEU().corpus_score(hypotheses, [references]).score, 2),
        "chrf++": round(CHRF(word_order=2).corpus_score(hypotheses, [references]).score, 2),
        "spbleu": None,
        "n": len(references),
        "sacrebleu": sacrebleu.__version__,
    }
    if spbleu_model_path() is not None:
        scores["spbleu"] = round(BLEU(tokenize="flores101").corpus_score(hypotheses, [references]).score, 2)
    return scores
