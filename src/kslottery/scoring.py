"""Corpus-level scores with sacrebleu: BLEU, chrF++ and, where its tokenizer model is already on
disk, spBLEU (sacrebleu's flores101 or flores200 SentencePiece tokenizer). Nothing is downloaded here."""

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


def score(hypotheses: list[str], references: list[str], spbleu_tokenizer: str = "flores101") -> dict:
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
    if spbleu_model_path(spbleu_tokenizer) is not None:
        scores["spbleu"] = round(BLEU(tokenize=spbleu_tokenizer).corpus_score(hypotheses, [references]).score, 2)
    return scores
