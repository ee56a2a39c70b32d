"""Every trained method's directory carries a model card whose three-line snippet really loads it."""

import re

import pytest
import torch

from kslottery.model.cards import model_card
from kslottery.model.surgery import prepare
from kslottery.model.saved import load_trained, save_trained
from kslottery.model.loading import load_saved, load_source_model, save_model
from kslottery.config.params import ModelParams
from conftest import small_section

TRAINING = {"steps": 3, "first_loss": 5.1, "final_loss": 4.2, "trainable_params": 32, "total_params": 14000}


@pytest.mark.parametrize("method", ["ticket", "lora", "full", "embed"])
def test_the_cards_snippet_loads_what_the_stage_saved(method, tmp_path, tiny_model_dir, monkeypatch):
    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    save_model(model, tokenizer, tmp_path / "base")
    model, tokenizer = load_saved(tmp_path / "base")
    rows = [3, 5] if method == "ticket" else None
    model = prepare(method, model, small_section(method), rows)
    with torch.no_grad():  # make the saved weights differ from the base, so loading is visible
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.5)
    info = {"pair": "en-ca", "seed": 0, "trainable_params": 32} | ({"token_ids": rows} if rows else {})
    save_trained(model, method, tmp_path / method, info)
    monkeypatch.chdir(tmp_path)  # the card's paths are relative, as dvc.yaml passes them
    card = model_card(method, info, {"lr": 0.01}, TRAINING, "wheel:x==1", "base", method)
    (tmp_path / method / "README.md").write_text(card)

    assert f"# ks-lottery: {method}, en-ca, seed 0" in card and "metrics/eval/en-ca/s0/" in card
    assert "dev split after training" not in card  # no dev scores were measured
    with_dev = model_card(method, info, {"lr": 0.01}, TRAINING | {"dev_chrf++": 31.5, "dev_bleu": 7.25}, "wheel:x==1",
                          "base", method)
    assert "- dev split after training: chrF++ 31.5, BLEU 7.25" in with_dev
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert len([line for line in snippet.splitlines() if not line.startswith("#")]) <= 4  # imports + three lines
    scope = {}
    exec(snippet, scope)
    expected, _ = load_trained("base", method)
    ids = torch.tensor([[1, 3, 5, 7]])
    with torch.no_grad():
        assert torch.allclose(scope["model"](ids).logits, expected(ids).logits, atol=1e-5)
        assert not torch.allclose(scope["model"](ids).logits, load_saved("base")[0](ids).logits, atol=1e-3)
