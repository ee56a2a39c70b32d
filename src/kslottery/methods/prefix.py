"""Prefix-tuning (peft), train.prefix.tokens virtual tokens: a baseline of the table (a
parameter-efficient method of another kind)."""

from kslottery.config.registry import Method, PrefixSettings

METHOD = Method("prefix", section="prefix", settings=PrefixSettings, surgery="prepare_prefix", saved_as="adapter")
