"""Shared fixtures: a tiny causal LM and tokenizer built in code (no download, a second to make)."""

from __future__ import annotations

import random
from pathlib import Path

import kslottery  # noqa: F401 (first of all: it pins portable CPU kernels before torch loads)
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS_EN = "the file menu opens a dialog where you can choose options for page style and print".split()
WORDS_CA = "el menú fitxer obre un diàleg on podeu triar opcions per a estil de pàgina i imprimir".split()


def tiny_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n distinct pseudo-parallel sentence pairs (word-by-word 'translations')."""
    rng = random.Random(seed)
    pairs, seen = [], set()
    while len(pairs) < n:
        idx = [rng.randrange(len(WORDS_EN)) for _ in range(rng.randint(4, 9))]
        source = " ".join(WORDS_EN[i] for i in idx)
        if source in seen:
            continue
        seen.add(source)
        pairs.append((source.capitalize() + ".", " ".join(WORDS_CA[i] for i in idx).capitalize() + "."))
    return pairs


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    texts = [s for pair in tiny_pairs(200) for s in pair] + ["Translate this from English to Catalan:\nEnglish: x\nCatalan:"]
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   unk_token="<|endoftext|>")


def build_tiny_model(vocab_size: int, tie: bool = True, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         tie_word_embeddings=tie, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A saved tiny model with *tied* embeddings, as a hub model would come (prepare-model unties it)."""
    out = tmp_path_factory.mktemp("tiny-model")
    model = build_tiny_model(len(tiny_tokenizer), tie=True)
    model.save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    return out


def stage_project(root: Path, tiny_model_dir: Path, train: dict, **top_level) -> Path:
    """What the first stages leave for a training stage: a prepared base model (root/base), splits
    (root/data) and a params.yaml (the committed one, shrunk; `train` keys on top of its shared
    train settings, except `lr`, which is the embedding's; `top_level` keys on top). Returns root."""
    import yaml

    from kslottery.model.loading import load_source_model, save_model
    from kslottery.config.params import ModelParams

    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    save_model(model, tokenizer, root / "base")
    data = root / "data"
    data.mkdir()
    pairs = tiny_pairs(40)
    for name, rows in (("train", pairs[:24]), ("dev", pairs[24:28]), ("test", pairs[28:36])):
        (data / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params.update(alpha=0.5, **top_level)
    params["model"] = {"source": str(root / "base"), "dtype": "float32"}
    params["data"].update(train_size=24, dev_size=4, test_size=8)
    shared = dict(train)
    if "lr" in shared:
        params["train"]["embed"]["lr"] = shared.pop("lr")
    params["train"].update(shared)
    params["evaluate"].update(batch_size=4, max_new_tokens=6)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def small_section(name: str, lr: float = 1e-3):
    """A small train.<section> for method `name`, as params.yaml would give it (LoRA rank 2, two
    prefix tokens)."""
    from kslottery.config.registry import method, sections

    section = method(name).section
    small = {"lora": {"r": 2}, "prefix": {"tokens": 2}}.get(section, {})
    return sections()[section](lr=lr, **small)


def trial_project(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """The layout `dvc repro` leaves for `ksl calibrate` and `ksl regime` (models/base,
    data/prepared/en-ca, params.yaml with 3 training steps), in tmp_path/project."""
    import yaml

    made = stage_project(tmp_path / "made", tiny_model_dir, {"steps": 3, "batch_size": 4, "max_length": 64},
                         checkpoint_every=0)
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (made / "base").rename(project / "models" / "base")
    (project / "data" / "prepared").mkdir(parents=True)
    (made / "data").rename(project / "data" / "prepared" / "en-ca")
    params = yaml.safe_load((made / "params.yaml").read_text())
    params["model"]["source"] = str(project / "models" / "base")
    params["accelerate"] = str(Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "single.yaml")
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project
