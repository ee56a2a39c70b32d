"""Embedding-only tuning (step 1 of the paper): every row of the input embedding trains, every other
weight is frozen. Saved as the whole tuned (V, d) matrix, which ks-select tests row by row."""

from kslottery.config.registry import Method

METHOD = Method("embed", section="embed", surgery="prepare_embed", saved_as="embedding")
