"""Layer 2, data: parallel text (TSV, JSONL, Flores via datasets), splits, prompts and tokenization
with the loss on target tokens. Knows no methods."""
