"""LoRA (peft) on train.lora.targets: a baseline of the table (a parameter-efficient method of another kind)."""

from kslottery.config.registry import LoraSettings, Method

METHOD = Method("lora", section="lora", settings=LoraSettings, surgery="prepare_lora", saved_as="adapter")
