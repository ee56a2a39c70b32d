"""The base model, untrained: the table's zero-shot row. Nothing trains, nothing is saved."""

from kslottery.config.registry import Method

METHOD = Method("base")
