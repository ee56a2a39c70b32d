"""Full fine-tuning: every weight trains; the result is a whole model directory."""

from kslottery.config.registry import Method

METHOD = Method("full", section="full", surgery="prepare_full", saved_as="model")
