"""KS beyond the embedding, step 1: every row of a ks.target pattern's linear matrices trains, every
other weight is frozen; saved as the tuned matrices, which target-select tests row by row."""

from kslottery.config.registry import Method

METHOD = Method("target-tuned", section="target_tuned", surgery="prepare_target", saved_as="weights", target=True)
