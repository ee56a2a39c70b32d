"""Surgery invariants: what trains, what stays bit-identical, and that adapters round-trip."""

import pytest
import torch
from peft import PeftModel

from kslottery.config.registry import LoraSettings, MethodSettings, PrefixSettings
from kslottery.model.loading import load_saved, load_source_model, save_model
from kslottery.config.params import ModelParams, TrainSettings
from kslottery.model.surgery import prepare, prepare_embed, prepare_tokens
from kslottery.model.saved import load_trained, save_trained
from kslottery.data.prompts import encode_pairs
from kslottery.training.loop import train
from conftest import tiny_pairs

TEMPLATE = "Translate this from {src} to {tgt}:\n{src}: {source}\n{tgt}:"
TRAIN = TrainSettings(lr=0.05, steps=4, batch_size=4, max_length=64)
SECTIONS = {"full": MethodSettings(lr=0.01), "lora": LoraSettings(lr=0.01, r=2), "prefix": PrefixSettings(lr=0.01, tokens=3)}


def base_dir(tmp_path, tiny_model_dir):
    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    save_model(model, tokenizer, tmp_path / "base")
    return tmp_path / "base"


def examples(tokenizer):
    from kslottery.data.corpus import SentencePair

    pairs = [SentencePair(s, t) for s, t in tiny_pairs(16)]
    return encode_pairs(tokenizer, pairs, "en-ca", TEMPLATE, 64)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_embed_trains_only_the_input_embedding(tmp_path, tiny_model_dir):
    model, tokenizer = load_saved(base_dir(tmp_path, tiny_model_dir))
    before = snapshot(model)
    model = prepare_embed(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["model.embed_tokens.weight"]
    result = train(model, examples(tokenizer), TRAIN, tokenizer.pad_token_id)
    assert result.trainable_params == model.get_input_embeddings().weight.numel()
    after = snapshot(model)
    for key in before:
        if key == "model.embed_tokens.weight":
            assert not torch.equal(before[key], after[key])
        else:
            assert torch.equal(before[key], after[key]), key


def test_untrained_ticket_adapter_is_the_identity(tmp_path, tiny_model_dir):
    model, tokenizer = load_saved(base_dir(tmp_path, tiny_model_dir))
    ids = torch.tensor([[3, 10, 42, 7]])
    expected = model(ids).logits
    wrapped = prepare_tokens(model, rows=[10, 42])
    assert torch.equal(wrapped(ids).logits, expected)


def test_ticket_training_changes_only_ticket_rows(tmp_path, tiny_model_dir):
    base = base_dir(tmp_path, tiny_model_dir)
    model, tokenizer = load_saved(base)
    data = examples(tokenizer)
    used = sorted({t for e in data for t in e.input_ids})
    ticket = used[:5]
    original = snapshot(model)
    wrapped = prepare_tokens(model, rows=ticket)
    trainable = [p for p in wrapped.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == len(ticket) * model.config.hidden_size  # only k rows
    train(wrapped, data, TRAIN, tokenizer.pad_token_id)
    save_trained(wrapped, "ticket", tmp_path / "ticket", {"trainable_params": 5 * 16})

    loaded, _ = load_trained(base, tmp_path / "ticket")
    assert isinstance(loaded, PeftModel)
    merged = loaded.merge_and_unload()
    state = snapshot(merged)
    embedding_before = original["model.embed_tokens.weight"]
    embedding_after = state["model.embed_tokens.weight"]
    changed = (embedding_before != embedding_after).any(dim=1).nonzero().flatten().tolist()
    assert changed and set(changed) <= set(ticket)
    for key in original:
        if key != "model.embed_tokens.weight":
            assert torch.equal(original[key], state[key]), key  # every other weight bit-identical


def test_embed_save_and_load_round_trip(tmp_path, tiny_model_dir):
    base = base_dir(tmp_path, tiny_model_dir)
    model, tokenizer = load_saved(base)
    model = prepare_embed(model)
    train(model, examples(tokenizer), TRAIN, tokenizer.pad_token_id)
    save_trained(model, "embed", tmp_path / "embed", {"trainable_params": 1})
    loaded, _ = load_trained(base, tmp_path / "embed")
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_full_trains_everything_and_round_trips(tmp_path, tiny_model_dir):
    base = base_dir(tmp_path, tiny_model_dir)
    model, tokenizer = load_saved(base)
    before = snapshot(model)
    model = prepare("full", model, SECTIONS["full"])
    result = train(model, examples(tokenizer), TRAIN, tokenizer.pad_token_id)
    assert result.trainable_params == result.total_params
    after = snapshot(model)
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"])
    save_trained(model, "full", tmp_path / "full", {"trainable_params": result.trainable_params})
    loaded, _ = load_trained(base, tmp_path / "full")
    ids = torch.tensor([[3, 10, 42]])
    assert torch.equal(loaded(ids).logits, model(ids).logits)


@pytest.mark.parametrize("method", ["lora", "prefix"])
def test_adapters_train_only_their_own_weights(tmp_path, tiny_model_dir, method):
    base = base_dir(tmp_path, tiny_model_dir)
    model, tokenizer = load_saved(base)
    before = snapshot(model)
    wrapped = prepare(method, model, SECTIONS[method])
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    marker = "lora_" if method == "lora" else "prompt_encoder"
    assert trainable and all(marker in n for n in trainable), trainable
    result = train(wrapped, examples(tokenizer), TRAIN, tokenizer.pad_token_id)
    if method == "lora":
        config = model.config
        kv = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
        expected = 2 * SECTIONS["lora"].r * ((16 + 16) + (16 + kv))  # per layer: q (16->16) and v (16->kv)
    else:
        expected = SECTIONS["prefix"].tokens * 2 * model.config.num_hidden_layers * (
            model.config.num_key_value_heads * (model.config.hidden_size // model.config.num_attention_heads))
    assert result.trainable_params == expected
    for key, value in snapshot(wrapped.get_base_model()).items():
        original = key.replace(".base_layer", "")
        if original in before:
            assert torch.equal(before[original], value), key  # the base stays bit-identical
    save_trained(wrapped, method, tmp_path / method, {"trainable_params": result.trainable_params})
    loaded, _ = load_trained(base, tmp_path / method, merge=True)
    assert isinstance(loaded, PeftModel) == (method == "prefix")  # LoRA merges, prefix cannot


def test_certify_keeping_every_moved_row_agrees_fully(tmp_path, tiny_model_dir):
    from kslottery.lottery.certify import accuracy, agreement, greedy_next_tokens, keep_rows

    base = base_dir(tmp_path, tiny_model_dir)
    model, tokenizer = load_saved(base)
    data = examples(tokenizer)
    original = model.get_input_embeddings().weight.detach().clone()
    train(prepare_embed(model), data, TRAIN, tokenizer.pad_token_id)
    tuned = model.get_input_embeddings().weight.detach().clone()
    moved = (tuned != original).any(dim=1).nonzero().flatten().tolist()
    tuned_predictions = greedy_next_tokens(model, data, tokenizer.pad_token_id, 4, "tuned")

    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(keep_rows(original, tuned, moved))  # revert nothing that moved
    assert agreement(tuned_predictions, greedy_next_tokens(model, data, tokenizer.pad_token_id, 4, "all")) == 1.0

    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(keep_rows(original, tuned, []))  # revert everything: the base
    base_predictions = greedy_next_tokens(model, data, tokenizer.pad_token_id, 4, "none")
    assert agreement(tuned_predictions, base_predictions) < 1.0
    assert accuracy(tuned_predictions, data) > accuracy(base_predictions, data)  # tuning learned something


def test_lora_initialisation_is_seeded_by_the_stage_seed(tmp_path, tiny_model_dir):
    base = base_dir(tmp_path, tiny_model_dir)
    weights = []
    for _ in range(2):
        model, _ = load_saved(base)
        torch.rand(7)  # whatever ran before must not matter once the stage seeds
        torch.manual_seed(0)
        wrapped = prepare("lora", model, SECTIONS["lora"])
        weights.append({k: v.clone() for k, v in wrapped.named_parameters() if "lora_A" in k})
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
