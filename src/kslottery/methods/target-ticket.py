"""KS beyond the embedding, step 3: only the rows (output units) of a ks.target pattern's matrices whose
KS shift was significant train, from the base; saved as the rows and their change."""

from kslottery.config.registry import Method

METHOD = Method("target-ticket", section="target_ticket", surgery="prepare_target", saved_as="rows", target=True)
