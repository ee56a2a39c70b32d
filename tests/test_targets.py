"""KS beyond the embedding (ks.target): pattern matching, the row surgery's invariants, the row
tickets, and the three stages chained on a tiny model."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from kslottery.config.registry import MethodSettings, run_name, split_run
from kslottery.report.legend import label, order
from kslottery.model.loading import load_saved
from kslottery.config.params import TrainSettings
from kslottery.model.surgery import RowDelta, prepare_target
from kslottery.model.saved import load_trained, save_trained
from kslottery.lottery.targets import stacked_rows, target_record, ticket_rows_by_module
from kslottery.model.targets import matches, matching_linears, row_count, rows_to_train, target_problems
from kslottery.lottery.tickets import select_tickets
from kslottery.training.loop import train
from conftest import stage_project
from test_stage import stage_main
from test_surgery import base_dir, examples, snapshot

TRAIN = TrainSettings(lr=0.05, steps=4, batch_size=4, max_length=64)


def test_patterns_match_by_suffix_or_glob_and_never_by_a_partial_name():
    name = "model.layers.1.mlp.down_proj"
    assert matches(name, "mlp.down_proj") and matches(name, "down_proj") and matches(name, name)
    assert matches(name, "layers.1.mlp.down_proj") and not matches(name, "own_proj")
    assert not matches("model.layers.1.mlp.down_proj", "layers.1.mlp.up_proj")


def test_run_names_carry_the_pattern_and_sort_after_their_method():
    assert split_run(run_name("target-tuned", "mlp.down_proj")) == ("target-tuned", "mlp.down_proj")
    assert split_run("ticket") == ("ticket", None)
    assert label("target-ticket@mlp.down_proj") == "target KS rows (mlp.down_proj)"
    assert order(["target-ticket@b", "zeta", "target-tuned@b", "ticket", "target-tuned@a"]) == \
        ["ticket", "target-tuned@a", "target-tuned@b", "target-ticket@b", "zeta"]


@pytest.mark.parametrize("patterns", [["mlp.*"], ["a/b"], ["x@y"], [""], ["mlp.down_proj", "mlp.down_proj"]])
def test_ks_target_refuses_what_cannot_name_stage_outputs(tmp_path, patterns):
    import yaml

    from kslottery.config.params import ParamsError, load_params

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    raw["ks"]["target"] = patterns
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="ks.target: "):
        load_params(tmp_path / "params.yaml")


def test_a_pattern_that_matches_no_linear_module_is_named_with_the_kinds_there_are(tmp_path, tiny_model_dir):
    base = base_dir(tmp_path, tiny_model_dir)
    model, _ = load_saved(base)
    assert sorted(matching_linears(model, "mlp.down_proj")) == ["model.layers.0.mlp.down_proj",
                                                                "model.layers.1.mlp.down_proj"]
    with pytest.raises(ValueError, match=r"'mlp.dwn_proj' matches no linear module .* mlp.down_proj"):
        matching_linears(model, "mlp.dwn_proj")
    with pytest.raises(ValueError, match="matches no linear module"):
        matching_linears(model, "embed_tokens")  # the embedding is not a linear module: ks.target is beyond it
    # from the config alone, before any weight is read
    assert target_problems(["mlp.down_proj", "self_attn.o_proj"], base) == []
    problems = target_problems(["mlp.down_proj", "mlp.dwn_proj"], base)
    assert len(problems) == 1 and "'mlp.dwn_proj'" in problems[0]
    assert target_problems(["anything"], tmp_path / "not-prepared-yet") == []


def test_an_untrained_row_delta_is_the_identity(tmp_path, tiny_model_dir):
    model, _ = load_saved(base_dir(tmp_path, tiny_model_dir))
    ids = torch.tensor([[3, 10, 42, 7]])
    expected = model(ids).logits
    rows = {"model.layers.0.mlp.down_proj": [1, 5], "model.layers.1.self_attn.o_proj": [0]}
    prepare_target(model, rows=rows)
    assert isinstance(model.get_submodule("model.layers.0.mlp.down_proj"), RowDelta)
    assert torch.equal(model(ids).logits, expected)


def test_target_ticket_training_changes_only_its_rows_and_round_trips(tmp_path, tiny_model_dir):
    base = base_dir(tmp_path, tiny_model_dir)
    model, tokenizer = load_saved(base)
    original = snapshot(model)
    rows = {"model.layers.0.mlp.down_proj": [1, 5, 9], "model.layers.1.mlp.down_proj": [0]}
    prepare_target(model, MethodSettings(lr=0.05), rows)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"model.layers.0.mlp.down_proj.delta": 3 * 32, "model.layers.1.mlp.down_proj.delta": 32}
    result = train(model, examples(tokenizer), TRAIN, tokenizer.pad_token_id)
    assert result.trainable_params == 4 * 32
    for name, module in model.named_modules():  # the base weights under the splice are untouched
        if isinstance(module, RowDelta):
            assert torch.equal(module.base.weight, original[f"{name}.weight"])
    ids = torch.tensor([[3, 10, 42, 7]])
    spliced = model(ids).logits
    info = {"pair": "en-ca", "seed": 0, "trainable_params": 128, "modules": sorted(rows), "rows": 4}
    save_trained(model, "target-ticket@mlp.down_proj", tmp_path / "rows", info)

    loaded, _ = load_trained(base, tmp_path / "rows")
    state = snapshot(loaded)
    for key in original:
        name = key.removesuffix(".weight")
        if name in rows:
            changed = (original[key] != state[key]).any(dim=1).nonzero().flatten().tolist()
            assert changed == rows[name], key  # exactly its rows moved
        else:
            assert torch.equal(original[key], state[key]), key  # every other weight bit-identical
    assert torch.allclose(loaded(ids).logits, spliced, atol=1e-5)  # merged = spliced, up to rounding


def test_whole_target_matrices_train_and_round_trip(tmp_path, tiny_model_dir):
    base = base_dir(tmp_path, tiny_model_dir)
    model, tokenizer = load_saved(base)
    original = snapshot(model)
    rows = rows_to_train(model, "mlp.down_proj")
    assert rows == {"model.layers.0.mlp.down_proj": None, "model.layers.1.mlp.down_proj": None}
    assert row_count(model, rows) == 2 * 16
    prepare_target(model, MethodSettings(lr=0.05), rows)
    train(model, examples(tokenizer), TRAIN, tokenizer.pad_token_id)
    save_trained(model, "target-tuned@mlp.down_proj", tmp_path / "whole",
                 {"pair": "en-ca", "seed": 0, "trainable_params": 1024, "modules": sorted(rows), "rows": 32})
    state = snapshot(load_trained(base, tmp_path / "whole")[0])
    for key in original:
        assert torch.equal(state[key], snapshot(model)[key]), key
        assert torch.equal(original[key], state[key]) == (key.removesuffix(".weight") not in rows), key


def test_tickets_of_stacked_matrices_map_back_to_module_and_row():
    rng = np.random.default_rng(0)
    before = {"a.down_proj": rng.normal(size=(4, 64)), "b.down_proj": rng.normal(size=(3, 64))}
    after = {k: v.copy() for k, v in before.items()}
    after["a.down_proj"][2] += 3.0  # a shift the KS test cannot miss
    after["b.down_proj"][0] *= 4.0
    names, stacked_before = stacked_rows({k: torch.tensor(v) for k, v in before.items()})
    stacked_after = [after[name].astype(np.float32) for name in names]  # as stacked_rows gives them
    from kslottery.lottery.ks import ks_2samp_rows

    statistic, pvalue = ks_2samp_rows(np.concatenate(stacked_before), np.concatenate(stacked_after))
    record = target_record(select_tickets(statistic, pvalue, alpha=0.05), names, stacked_before, "down_proj",
                           0.05, None, "p")
    assert record["rows"] == 7 and record["n_moved"] == 2 and record["n_tickets"] == 2
    assert record["per_module"] == {"a.down_proj": 1, "b.down_proj": 1}
    assert ticket_rows_by_module(record) == {"a.down_proj": [2], "b.down_proj": [0]}


def test_the_target_stages_chain_on_a_tiny_model(tmp_path, tiny_model_dir):
    """target-finetune -> target-select -> target-ticket-finetune -> evaluate, as dvc.yaml runs them."""
    project = stage_project(tmp_path, tiny_model_dir, {"steps": 4, "batch_size": 4, "max_length": 64},
                            checkpoint_every=0)
    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ks"]["target"] = ["mlp.down_proj"]
    params["train"]["target_tuned"]["lr"] = params["train"]["target_ticket"]["lr"] = 0.05
    params["alpha"] = 0.9  # 4 steps of a tiny model: keep what moved
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def run(stage, *args):
        result = CliRunner().invoke(stage_main(stage), ["--params", str(project / "params.yaml"), "--pair", "en-ca",
                                                        *map(str, args)])
        assert result.exit_code == 0, result.output + repr(result.exception)

    common = ["--seed", 0, "--base", project / "base", "--data", project / "data"]
    run("finetune", "--method", "target-tuned", "--target", "mlp.down_proj", *common, "--out", project / "target",
        "--metrics", project / "target.json", "--loss-csv", project / "target.loss.csv")
    strict = dict(params, alpha=1e-12)  # nothing is significant: refused, nothing written
    (project / "strict.yaml").write_text(yaml.safe_dump(strict, sort_keys=False))
    refused = CliRunner().invoke(stage_main("target_select"), [str(a) for a in [
        "--params", project / "strict.yaml", "--pair", "en-ca", "--target", "mlp.down_proj", "--base", project / "base",
        "--tuned", project / "target", "--out", project / "tickets.json", "--metrics", project / "ks.json"]])
    assert refused.exit_code != 0 and "no row is significant at alpha=1e-12" in refused.output
    assert not (project / "tickets.json").exists()
    run("target_select", "--target", "mlp.down_proj", "--base", project / "base", "--tuned", project / "target",
        "--out", project / "tickets.json", "--metrics", project / "ks.json")
    record = json.loads((project / "tickets.json").read_text())
    assert record["rows"] == 32 and 0 < record["n_tickets"] <= record["n_moved"] <= 32
    run("finetune", "--method", "target-ticket", "--target", "mlp.down_proj", *common, "--tickets",
        project / "tickets.json", "--out", project / "rows", "--metrics", project / "rows.json",
        "--loss-csv", project / "rows.loss.csv")
    manifest = json.loads((project / "rows" / "method.json").read_text())
    assert manifest["method"] == "target-ticket@mlp.down_proj" and manifest["rows"] == record["n_tickets"]
    assert json.loads((project / "rows.json").read_text())["trainable_params"] == record["n_tickets"] * 32
    run("evaluate", "--method", "target-ticket@mlp.down_proj", "--base", project / "base", "--model",
        project / "rows", "--data", project / "data", "--out", project / "eval.json", "--translations",
        project / "eval.tsv")
    scores = json.loads((project / "eval.json").read_text())
    assert scores["method"] == "target-ticket@mlp.down_proj" and scores["rows"] == record["n_tickets"]


def test_a_target_pattern_that_matches_nothing_stops_before_training(tmp_path, tiny_model_dir):
    project = stage_project(tmp_path, tiny_model_dir, {"steps": 4, "batch_size": 4, "max_length": 64},
                            checkpoint_every=0)
    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ks"]["target"] = ["mlp.dwn_proj"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = CliRunner().invoke(stage_main("finetune"), [str(a) for a in [
        "--params", project / "params.yaml", "--pair", "en-ca", "--method", "target-tuned", "--target", "mlp.dwn_proj",
        "--seed", 0, "--base", project / "base", "--data", project / "data", "--out", project / "target",
        "--metrics", project / "m.json", "--loss-csv", project / "l.csv"]])
    assert result.exit_code != 0 and "'mlp.dwn_proj' matches no linear module" in result.output
    assert not (project / "target").exists() and not (project / "m.json").exists()
    (project / "target").mkdir()  # target-select refuses it too, from the config, before reading any weight
    result = CliRunner().invoke(stage_main("target_select"), [str(a) for a in [
        "--params", project / "params.yaml", "--pair", "en-ca", "--target", "mlp.dwn_proj", "--base", project / "base",
        "--tuned", project / "target", "--out", project / "t.json", "--metrics", project / "k.json"]])
    assert result.exit_code != 0 and "'mlp.dwn_proj' matches no linear module" in result.output
    assert not (project / "t.json").exists()
    from kslottery.cli import main as ksl

    result = CliRunner().invoke(ksl, ["validate", str(project / "params.yaml"), "--base", str(project / "base")])
    assert result.exit_code != 0 and "mlp.dwn_proj" in result.output


def test_calibrating_a_target_method_needs_its_pattern_and_tickets(tmp_path, tiny_model_dir):
    import yaml

    from conftest import trial_project
    from kslottery.studies.calibrate import CalibrationError, check_trial_inputs, lr_key
    from kslottery.config.params import load_params

    project = trial_project(tmp_path, tiny_model_dir)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["ks"]["target"] = ["mlp.down_proj"]
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(project / "params.yaml")
    base, data = project / "models" / "base", project / "data" / "prepared" / "en-ca"
    tickets = project / "models" / "en-ca" / "s0" / "target-tickets@mlp.down_proj.json"
    with pytest.raises(CalibrationError, match="--target None is not in ks.target \\['mlp.down_proj'\\]"):
        check_trial_inputs(params, "target-tuned", "en-ca", 0, base, data, tickets)
    check_trial_inputs(params, "target-tuned", "en-ca", 0, base, data, tickets, "mlp.down_proj")
    with pytest.raises(CalibrationError, match="target-select@en-ca-0-mlp.down_proj"):
        check_trial_inputs(params, "target-ticket", "en-ca", 0, base, data, tickets, "mlp.down_proj")
    with pytest.raises(CalibrationError, match="--target is for the target methods only, not embed"):
        check_trial_inputs(params, "embed", "en-ca", 0, base, data, tickets, "mlp.down_proj")
    assert lr_key("target-ticket@mlp.down_proj") == "train.target_ticket.lr"
