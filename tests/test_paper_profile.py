"""The paper profile's code paths on local fixtures: configs/paper.yaml validates, Flores dev/test
through `datasets` from a local directory laid out as a hub dataset (one config per language, a README
declaring them), prepare-data with data.flores, `ksl use`, beam search, the spBLEU tokenizer choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from kslottery.cli import main as ksl
from kslottery.data.corpus import CorpusError, SentencePair, flores_pairs, read_pairs, split_with_held_out
from kslottery.config.params import load_params

REPO = Path(__file__).resolve().parents[1]
ENGLISH = [f"The {w} opens the {v} dialog." for w, v in zip("menu file page style print view".split(),
                                                                  "options format table chart index help".split())]


def write_flores(root: Path, languages: dict[str, list[str]], splits=("dev", "devtest"), column="sentence") -> Path:
    """A Flores-101-format dataset directory: {config}/{split}.jsonl plus a README declaring the configs
    (the hub's layout for multi-config datasets); the fields of gsarti/flores_101's parquet export."""
    cards = []
    for config, sentences in languages.items():
        files = []
        for split in splits:
            path = root / config / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [{"id": i + 1, "URL": f"https://example.org/{i}", "domain": "wikinews", "topic": "t",
                     "has_image": 0, "has_hyperlink": 0, column: f"{s} [{split}]"} for i, s in enumerate(sentences)]
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            files.append({"split": split, "path": f"{config}/{split}.jsonl"})
        cards.append({"config_name": config, "data_files": files})
    (root / "README.md").write_text("---\n" + yaml.safe_dump({"configs": cards}) + "---\n# Flores fixture\n")
    return root


@pytest.fixture
def flores(tmp_path) -> Path:
    catalan = [s.replace("The", "El") + " (ca)" for s in ENGLISH]
    return write_flores(tmp_path / "flores", {"eng": ENGLISH, "cat": catalan, "ron": [s + " (ro)" for s in ENGLISH]})


def test_flores_pairs_align_sentence_i_of_both_languages(flores):
    dev = flores_pairs("en-ca", str(flores), "dev")
    test = flores_pairs("en-ca", str(flores), "devtest")
    assert len(dev) == len(test) == len(ENGLISH)
    assert dev[2] == SentencePair(f"{ENGLISH[2]} [dev]", f"{ENGLISH[2].replace('The', 'El')} (ca) [dev]")
    assert test[0].source.endswith("[devtest]")
    assert flores_pairs("en-ro", str(flores), "dev")[1].target == f"{ENGLISH[1]} (ro) [dev]"


@pytest.mark.parametrize("call, message", [
    (dict(pair="en-de", split="dev"), "config deu"),  # no German config in the fixture
    (dict(pair="en-ca", split="test"), "split test"),  # no such split
    (dict(pair="en-ca", split="dev", column="text"), "no column 'text' .*sentence"),
    (dict(pair="en-ca", split="dev", codes="flores200"), "config eng_Latn.*Available"),
])
def test_flores_problems_name_dataset_config_and_fix(flores, call, message):
    with pytest.raises(CorpusError, match=message):
        flores_pairs(dataset=str(flores), **call)


def test_flores_languages_that_do_not_align_are_refused(tmp_path):
    root = write_flores(tmp_path / "f", {"eng": ENGLISH, "cat": ENGLISH[:-1]})
    with pytest.raises(CorpusError, match="must align line by line"):
        flores_pairs("en-ca", str(root), "dev")


def test_train_never_holds_a_dev_or_test_sentence():
    corpus = [SentencePair(f"Sentence {i}.", f"Frase {i}.") for i in range(30)]
    test = [SentencePair("Sentence 3.", "x"), SentencePair("Other.", "y")]
    dev = [SentencePair("sentence 7.", "z")]  # case-insensitive
    splits, dropped = split_with_held_out(corpus, dev, test, train_size=20, seed=0)
    assert dropped == 2 and len(splits["train"]) == 20 and splits["test"] == test and splits["dev"] == dev
    assert not {"Sentence 3.", "Sentence 7."} & {p.source for p in splits["train"]}
    with pytest.raises(CorpusError, match="28 usable pairs .* train_size is 29"):
        split_with_held_out(corpus, dev, test, train_size=29, seed=0)


def paper_params(tmp_path, flores: Path, **data) -> Path:
    params = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    params["model"] = {"source": "org/some-model", "dtype": "float32"}
    params["pairs"] = ["en-ca"]
    params["data"].update({"train_size": 20, "dev_size": 4, "test_size": 5, **data})
    params["data"]["flores"].update(dataset=str(flores), revision=None)
    params["train"]["batch_size"] = 4
    params["accelerate"] = str(REPO / "configs" / "accelerate" / "single.yaml")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_stage(script: str, args: list[str]):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"stage_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return CliRunner().invoke(module.main, args)


def test_prepare_data_takes_dev_and_test_from_flores_and_train_from_the_corpus(tmp_path, flores):
    corpus = tmp_path / "en-ca.tsv"
    planted = f"{ENGLISH[0]} [devtest]"  # a Flores test sentence also in the corpus: must not train
    corpus.write_text("".join(f"Line {i} of help.\tLínia {i}.\n" for i in range(30)) + f"{planted}\tx\n")
    out = tmp_path / "prepared"
    result = run_stage("stages/prepare_data.py", ["--params", str(paper_params(tmp_path, flores)), "--pair", "en-ca",
                                                  "--corpus", str(corpus), "--out", str(out)])
    assert result.exit_code == 0, result.output
    dev, test, train = (read_pairs(out / f"{name}.tsv") for name in ("dev", "test", "train"))
    assert [p.source for p in test] == [f"{s} [devtest]" for s in ENGLISH[:5]]
    assert [p.source for p in dev] == [f"{s} [dev]" for s in ENGLISH[:4]]
    assert len(train) == 20 and planted not in {p.source for p in train}


def test_prepare_data_refuses_more_flores_sentences_than_there_are(tmp_path, flores):
    corpus = tmp_path / "en-ca.tsv"
    corpus.write_text("".join(f"Line {i}.\tLínia {i}.\n" for i in range(30)))
    params = paper_params(tmp_path, flores, test_size=50)
    result = run_stage("stages/prepare_data.py", ["--params", str(params), "--pair", "en-ca", "--corpus", str(corpus),
                                                  "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "split devtest has 6 sentences but data.test_size is 50" in result.output
    assert not (tmp_path / "out").exists()


def test_the_paper_profile_validates():
    params = load_params(REPO / "configs" / "paper.yaml")
    assert params.pairs == ("en-ca", "en-ro", "en-es", "en-de")
    assert params.model.dtype == "bfloat16" and params.evaluate.num_beams > 1
    assert params.data.flores.dataset == "gsarti/flores_101" and params.data.flores.test_split == "devtest"
    assert "### Instruction:" in params.prompt.template and params.evaluate.spbleu_tokenizer == "flores101"
    assert Path(REPO / params.accelerate).is_file()
    result = CliRunner().invoke(ksl, ["validate", "--no-model-check", str(REPO / "configs" / "paper.yaml")])
    assert result.exit_code == 0 and "valid (4 pair(s)" in result.output, result.output


def test_the_four_pairs_profile_is_the_default_on_every_corpus_pair():
    import yaml

    four = yaml.safe_load((REPO / "configs" / "four-pairs.yaml").read_text())
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    assert {key for key in four if four[key] != default.get(key)} == {"pairs", "seeds"}
    assert four["seeds"] == default["seeds"][:1]  # one seed: four pairs already take four times as long
    assert sorted(four["pairs"]) == sorted(p.stem for p in (REPO / "data" / "corpus").glob("*.tsv"))
    assert load_params(REPO / "configs" / "four-pairs.yaml").pairs == tuple(four["pairs"])


@pytest.mark.parametrize("config", sorted((REPO / "configs" / "accelerate").glob("*.yaml")), ids=lambda p: p.stem)
def test_accelerate_configs_are_ones_accelerate_reads(config):
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = load_config_from_file(str(config))
    assert loaded.num_processes >= 1 and loaded.distributed_type is not None


def test_ksl_use_validates_then_replaces_the_params_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("old: true\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("alpha: 2\n")
    refused = CliRunner().invoke(ksl, ["use", str(bad), "--params", str(params)])
    assert refused.exit_code != 0 and "alpha: 2.0 is outside (0, 1)" in refused.output
    assert params.read_text() == "old: true\n"
    result = CliRunner().invoke(ksl, ["use", str(REPO / "configs" / "paper.yaml"), "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert params.read_text() == (REPO / "configs" / "paper.yaml").read_text()
    assert "Next: `dvc repro`" in result.output


def test_the_spbleu_tokenizer_is_the_one_asked_for(monkeypatch, tmp_path):
    from kslottery.evaluation import scoring

    asked = []
    monkeypatch.setattr(scoring, "spbleu_model_path", lambda name="flores101": asked.append(name))
    sentence = "El menú Fitxer obre un diàleg on podeu triar les opcions de la pàgina."
    scores = scoring.score([sentence], [sentence], spbleu_tokenizer="flores200")
    assert asked == ["flores200"] and scores["spbleu"] is None and scores["bleu"] == 100.0


def test_beam_search_is_generate_with_beams(tiny_model_dir):
    """num_beams > 1 goes through transformers' beam search; with 1 beam it is our greedy loop."""
    from kslottery.model.loading import load_source_model
    from kslottery.config.params import ModelParams
    from kslottery.data.prompts import encode_prompt
    from kslottery.evaluation.translate import translate_tokens

    model, tokenizer = load_source_model(ModelParams(source=str(tiny_model_dir)))
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    prompts = ["Translate this from English to Catalan:\nEnglish: The file.\nCatalan:", "English: Print.\nCatalan:"]
    beams = translate_tokens(model, tokenizer, prompts, batch_size=2, max_new_tokens=8, num_beams=3)
    stops = {tokenizer.eos_token_id}
    expected = []
    for prompt in prompts:
        ids = torch.tensor([encode_prompt(tokenizer, prompt)])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=3,
                             max_new_tokens=8, eos_token_id=sorted(stops), pad_token_id=tokenizer.pad_token_id)
        tokens = out[0, ids.shape[1]:].tolist()
        cut = next((i + 1 for i, t in enumerate(tokens) if t in stops), len(tokens))
        expected.append(tokens[:cut])
    assert beams == expected


@pytest.mark.parametrize("profile, base, differs", [
    ("converge.yaml", "params.yaml", {"train.ticket"}),
    ("converge-k18.yaml", "params.yaml", {"train.ticket", "ks.top_k", "seeds"}),
    ("gemma3-270m-converge-k18.yaml", "configs/gemma3-270m.yaml", {"train.ticket", "ks.top_k"}),
])
def test_the_convergence_profiles_change_only_the_token_methods_budget(profile, base, differs):
    import yaml

    def flat(tree, prefix=""):  # sections flattened to dotted keys down to a method's section
        out = {}
        for key, value in tree.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and name not in {"train.ticket"}:
                out.update(flat(value, name + "."))
            else:
                out[name] = value
        return out

    mine, theirs = flat(yaml.safe_load((REPO / "configs" / profile).read_text())), flat(yaml.safe_load((REPO / base).read_text()))
    assert mine.keys() == theirs.keys()
    assert {key for key in mine if mine[key] != theirs[key]} == differs
    ticket = load_params(REPO / "configs" / profile).train_settings("ticket")
    assert (ticket.steps, ticket.patience, ticket.lr) == (625, 2, theirs["train.ticket"]["lr"])
    assert load_params(REPO / "configs" / profile).train_settings("embed") == load_params(REPO / base).train_settings("embed")


def test_the_sgd_source_profile_changes_only_how_the_ks_source_is_tuned():
    import yaml

    mine, default = (yaml.safe_load(path.read_text()) for path in (REPO / "configs/sgd-source.yaml", REPO / "params.yaml"))
    for tree in (mine, default):  # what may differ: the KS source's section and the seeds
        tree["train"].pop("embed")
        tree.pop("seeds")
    assert mine == default
    sgd, params = load_params(REPO / "configs/sgd-source.yaml"), load_params(REPO / "params.yaml")
    assert (sgd.train_settings("embed").optimizer, sgd.train_settings("embed").momentum) == ("sgd", 0.0)
    assert (params.train_settings("embed").optimizer, sgd.seeds) == ("adamw", (0,))
    for method in ("ticket", "full", "lora", "prefix"):  # whatever trains from the tickets trains as in the default
        assert sgd.train_settings(method) == params.train_settings(method)
