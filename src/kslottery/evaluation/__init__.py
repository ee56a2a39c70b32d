"""Layer 6, evaluation: batched decoding, scoring (both protocols), decode-and-score. Never trains."""
