"""`ksl export`: a trained ticket adapter and an embedding-only model leave the pipeline as folders
that load from anywhere with transformers and peft alone and translate exactly as the method did; the
card is a huggingface_hub model card with the run's scores and their signatures. Nothing is pushed."""

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import stage_project
from kslottery.cli import main as ksl

PROMPTS = ["Translate this from English to Catalan:\nEnglish: The file is open.\nCatalan:",
           "Translate this from English to Catalan:\nEnglish: Click the button.\nCatalan:"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model_dir):
    """The first stages' outputs on the tiny model: tickets, a trained ticket adapter and embedding,
    and the ticket's test scores, laid out as the pipeline lays them out."""
    root = stage_project(tmp_path_factory.mktemp("export"), tiny_model_dir, dict(steps=4, batch_size=4, lr=0.05),
                         checkpoint_every=0)
    run = root / "models" / "en-ca" / "s0"
    run.mkdir(parents=True)
    (run / "tickets.json").write_text(json.dumps({"alpha": 0.5, "tickets": [
        {"token_id": i, "token": f"tok{i}", "D": 0.5, "p": 0.01} for i in range(10, 22)]}))
    runner = CliRunner()
    for method in ("ticket", "embed"):
        args = ["finetune", "--params", root / "params.yaml", "--pair", "en-ca", "--method", method, "--seed", "0",
                "--base", root / "base", "--data", root / "data", "--out", run / method,
                "--metrics", root / f"{method}.json", "--loss-csv", root / f"{method}.loss.csv"]
        if method == "ticket":
            args += ["--tickets", run / "tickets.json"]
        result = runner.invoke(ksl, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    result = runner.invoke(ksl, [str(a) for a in [
        "evaluate", "--params", root / "params.yaml", "--pair", "en-ca", "--method", "ticket", "--base", root / "base",
        "--model", run / "ticket", "--data", root / "data", "--out", root / "metrics/eval/en-ca/s0/ticket.json",
        "--translations", root / "metrics/eval/en-ca/s0/ticket.translations.tsv"]])
    assert result.exit_code == 0, result.output
    return root


def export(root: Path, method: str, out: Path, *extra) -> Path:
    result = CliRunner().invoke(ksl, [str(a) for a in [
        "export", "en-ca", "0", method, out, "--params", root / "params.yaml", "--base", root / "base",
        "--models", root / "models", "--metrics", root / "metrics/eval", "--base-model-id", "org/tiny-base", *extra]])
    assert result.exit_code == 0, result.output
    return out


def tokens(model, tokenizer):
    from kslottery.evaluation.translate import translate_tokens

    return translate_tokens(model.eval(), tokenizer, PROMPTS, batch_size=2, max_new_tokens=8)


def test_an_exported_ticket_adapter_and_its_merged_model_translate_as_the_method_did(pipeline, tmp_path, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kslottery.model.saved import load_trained

    trained = tokens(*load_trained(pipeline / "base", pipeline / "models/en-ca/s0/ticket"))
    adapter = export(pipeline, "ticket", tmp_path / "ticket")
    merged = export(pipeline, "ticket", tmp_path / "ticket-merged", "--merged")
    shutil.copytree(pipeline / "base", tmp_path / "upstream")  # what the hub id would give
    monkeypatch.chdir(tmp_path)  # nothing of the project is needed from here on
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "org/tiny-base" and not (adapter / "embedding.safetensors").exists()
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "upstream")
    assert tokens(PeftModel.from_pretrained(base, adapter), AutoTokenizer.from_pretrained(adapter)) == trained
    assert tokens(AutoModelForCausalLM.from_pretrained(merged), AutoTokenizer.from_pretrained(merged)) == trained
    # and the export holds the training: ticket rows moved in the merged embedding (those the training
    # inputs hold: a row no input holds gets no gradient), no other row did
    moved = (AutoModelForCausalLM.from_pretrained(merged).get_input_embeddings().weight
             != AutoModelForCausalLM.from_pretrained(tmp_path / "upstream").get_input_embeddings().weight)
    moved = moved.any(dim=1).nonzero().flatten().tolist()
    assert moved and set(moved) <= set(range(10, 22)), moved


def test_an_exported_embedding_is_a_whole_model_that_translates_as_the_method_did(pipeline, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kslottery.model.saved import load_trained

    trained = tokens(*load_trained(pipeline / "base", pipeline / "models/en-ca/s0/embed"))
    out = export(pipeline, "embed", tmp_path / "embed")
    monkeypatch.chdir(tmp_path)
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    assert tokens(AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)) == trained
    import torch
    from safetensors.torch import load_file

    exported = AutoModelForCausalLM.from_pretrained(out).get_input_embeddings().weight
    assert torch.equal(exported, load_file(pipeline / "models/en-ca/s0/embed/embedding.safetensors")["weight"])


def test_the_card_is_a_hub_model_card_with_scores_signatures_and_tickets(pipeline, tmp_path):
    from huggingface_hub import ModelCard

    out = export(pipeline, "ticket", tmp_path / "ticket")
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.base_model == "org/tiny-base" and data.library_name == "peft" and data.language == ["en", "ca"]
    assert data.pipeline_tag == "text-generation" and "ks-lottery" in data.tags
    scores = json.loads((pipeline / "metrics/eval/en-ca/s0/ticket.json").read_text())
    chrf = next(r for r in data.eval_results if r.metric_name == "chrF++ (first line)")
    assert chrf.metric_value == scores["chrf++"] and chrf.metric_config == scores["signatures"]["chrf++"]
    assert "The 12 rows it trains" in card.text and "`tok10`" in card.text


def test_export_refuses_what_it_cannot_do_in_one_line(pipeline, tmp_path):
    runner = CliRunner()
    common = ["--params", pipeline / "params.yaml", "--base", pipeline / "base", "--models", pipeline / "models"]
    missing = runner.invoke(ksl, [str(a) for a in ["export", "en-ca", "0", "lora", tmp_path / "x", *common]])
    assert missing.exit_code == 1 and "does not exist; train it first" in missing.output
    unknown = runner.invoke(ksl, [str(a) for a in ["export", "en-ca", "0", "ticket", tmp_path / "y", *common]])
    assert unknown.exit_code == 1 and "pass --base-model-id" in unknown.output  # a local model.source
    assert not (tmp_path / "y").exists()
