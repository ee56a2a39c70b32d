"""LoRA (peft) on train.lora.targets: a baseline of the paper's table."""

from kslottery.config.registry import LoraSettings, Method

METHOD = Method("lora", section="lora", settings=LoraSettings, surgery="prepare_lora", saved_as="adapter")
