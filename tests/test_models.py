import pytest
import torch

from kslottery.models import ModelError, check_model, load_saved, load_source_model, save_model
from kslottery.params import ModelParams


def test_prepare_unties_and_round_trips(tiny_model_dir, tmp_path):
    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings().weight
    assert embedding.data_ptr() != output.data_ptr()  # own storage
    assert torch.equal(embedding, output)  # same values as the tied original
    save_model(model, tokenizer, tmp_path / "base")
    loaded, _ = load_saved(tmp_path / "base")
    with torch.no_grad():
        loaded.get_input_embeddings().weight[3] += 1.0  # tuning the input must not move the output
    assert not torch.equal(loaded.get_input_embeddings().weight, loaded.get_output_embeddings().weight)
    ids = torch.tensor([[5, 6, 7]])
    assert torch.equal(model(ids).logits, load_saved(tmp_path / "base")[0](ids).logits)


def test_vocabulary_mismatch_is_refused(tiny_model_dir):
    from conftest import build_tiny_model

    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    small = build_tiny_model(vocab_size=50, tie=False)
    with pytest.raises(ModelError, match="does not belong to this model"):
        check_model(small, tokenizer)


def test_bf16_on_cpu_is_refused(tiny_model_dir):
    with pytest.raises(ModelError, match="bf16 needs a GPU"):
        load_source_model(ModelParams(source=str(tiny_model_dir), dtype="bfloat16"), device=torch.device("cpu"))


def test_load_saved_names_the_missing_stage(tmp_path):
    with pytest.raises(ModelError, match="prepare-model"):
        load_saved(tmp_path)
