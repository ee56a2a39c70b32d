"""What every stage shares: atomic outputs, and refusals that come before any model is loaded.

The refusal tests hand the stages a 'model directory' holding only a config.json: a stage that
tried to load the model would fail on the missing weights instead of giving the expected message.
"""

import importlib.util
import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kslottery import KSLotteryError
from kslottery.pipeline import stage
from kslottery.cli import main as ksl

REPO = Path(__file__).resolve().parents[1]


def stage_main(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_atomic_dir_keeps_the_old_output_when_the_block_fails(tmp_path):
    out = tmp_path / "model"
    with stage.atomic_dir(out) as tmp:
        (tmp / "weights").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with stage.atomic_dir(out) as tmp:
            (tmp / "weights").write_text("half")
            raise KeyboardInterrupt  # a Ctrl-C in the middle of writing
    assert (out / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary left behind
    with stage.atomic_dir(out) as tmp:
        (tmp / "weights").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [".ksl-output", "weights"] and (out / "weights").read_text() == "new"


def test_atomic_file_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "metrics.json"
    stage.write_json(path, {"bleu": 1.0})
    with pytest.raises(RuntimeError):
        with stage.atomic_file(path) as tmp:
            tmp.write_text("{")
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"bleu": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.fixture
def fake_project(tmp_path):
    """params.yaml and a base 'model' that is only a config.json (vocabulary of 100 rows)."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"vocab_size": 100}))
    data = tmp_path / "data"
    data.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"] = {"source": str(base), "dtype": "float32"}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path


def write_params(project: Path, **changes) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__") if "__" in dotted else (None, dotted)
        (params[section] if section else params)[key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def invoke(command, args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code != 0, result.output
    return result.output


def finetune_args(project: Path, method: str, seed: int, tickets: Path | None = None) -> list:
    args = ["--params", project / "params.yaml", "--pair", "en-ca", "--method", method, "--seed", seed,
            "--base", project / "base", "--data", project / "data", "--out", project / "out",
            "--metrics", project / "m.json", "--loss-csv", project / "loss.csv"]
    return args + (["--tickets", tickets] if tickets else [])


def test_a_seed_not_in_seeds_is_refused(fake_project):
    output = invoke(stage_main("finetune"), finetune_args(fake_project, "embed", 7))
    assert "--seed 7 is not in seeds [" in output and "add it there" in output


def test_a_pair_not_in_pairs_is_refused(fake_project):
    args = finetune_args(fake_project, "embed", 0)
    args[args.index("en-ca")] = "en-de"
    assert "pair 'en-de' is not in pairs ['en-ca']" in invoke(stage_main("finetune"), args)


def test_tickets_outside_the_vocabulary_are_refused(fake_project):
    tickets = fake_project / "tickets.json"
    tickets.write_text(json.dumps({"tickets": [{"token_id": 5}, {"token_id": 250}]}))
    output = invoke(stage_main("finetune"), finetune_args(fake_project, "random-k", 0, tickets))
    assert "do not fit the 100-row vocabulary" in output and "rerun ks-select" in output


BAD_TICKETS = {
    "truncated": (b'{"tickets": [{"token_id": 5}, {"tok', "not valid JSON"),
    "empty": (b"", "empty"),
    "binary": (bytes(range(256)), "not UTF-8 text"),
    "key-less": (b'{"winners": [5]}', 'a "tickets" list'),
    "a list": (b"[5, 6]", 'a "tickets" list'),
    "a string id": (b'{"tickets": [{"token_id": "5"}]}', 'tickets[0] has token_id "5"'),
    "a negative id": (b'{"tickets": [{"token_id": 3}, {"token_id": -1}]}', "tickets[1] has token_id -1"),
}


@pytest.mark.parametrize("case", BAD_TICKETS)
def test_a_bad_tickets_file_is_refused_in_one_line_by_every_reader(fake_project, case):
    content, message = BAD_TICKETS[case]
    models = fake_project / "models"
    tickets = models / "en-ca" / "s0" / "tickets.json"
    tickets.parent.mkdir(parents=True)
    tickets.write_bytes(content)
    for args in (["finetune", *finetune_args(fake_project, "ticket", 0, tickets)], ["tickets", "en-ca", "--models", models]):
        output = invoke(ksl, args)
        assert message in output and str(tickets) in output and "rerun" in output, (case, output)
        assert "Traceback" not in output and output.strip().count("\n") == 0, output
    assert not (fake_project / "out").exists()


def test_an_adapter_folder_without_its_manifest_is_refused_in_one_line(fake_project):
    adapter = fake_project / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    output = invoke(ksl, ["translate", "--adapter", adapter, "--base", fake_project / "base",
                          "--params", fake_project / "params.yaml", "Hello."])
    assert "method.json is missing" in output and "training stage" in output and "Traceback" not in output
    (adapter / "method.json").write_text('{"method": "sparkle"}')
    output = invoke(ksl, ["translate", "--adapter", adapter, "--base", fake_project / "base",
                          "--params", fake_project / "params.yaml", "Hello."])
    assert "names method 'sparkle', which this version does not know" in output


def test_top_k_larger_than_the_vocabulary_is_refused(fake_project):
    write_params(fake_project, ks__top_k=500)
    embed = fake_project / "embed"
    embed.mkdir()
    output = invoke(stage_main("ks_select"), ["--params", fake_project / "params.yaml", "--pair", "en-ca",
                                              "--base", fake_project / "base", "--embed", embed,
                                              "--data", fake_project / "data", "--out", fake_project / "t.json", "--metrics", fake_project / "k.json",
                                              "--histogram", fake_project / "h.csv"])
    assert "ks.top_k: 500 is larger than the vocabulary (100 rows" in output
    output = invoke(ksl, ["validate", fake_project / "params.yaml", "--base", fake_project / "base"])
    assert "ks.top_k: 500 is larger than the vocabulary" in output
    assert not (fake_project / "t.json").exists()


def test_a_negative_checkpoint_interval_is_refused(fake_project):
    write_params(fake_project, checkpoint_every=-5)
    output = invoke(ksl, ["validate", fake_project / "params.yaml"])
    assert "checkpoint_every: -5 must be >= 0" in output


def test_prepare_data_names_the_corpus_file(fake_project):
    corpus = fake_project / "en-ca.tsv"
    corpus.write_text("One.\tU.\nTwo.\tDos.\n", encoding="utf-8")
    args = ["--params", fake_project / "params.yaml", "--pair", "en-ca", "--corpus", corpus,
            "--out", fake_project / "prepared"]
    output = invoke(stage_main("prepare_data"), args)
    assert f"{corpus}: corpus has 2 usable pairs but the splits need 1150" in output
    corpus.write_bytes(b"One.\tU.\nTwo.\tDos\xff.\n")
    assert f"{corpus}:2: not valid UTF-8" in invoke(stage_main("prepare_data"), args)
    assert not (fake_project / "prepared").exists()


def test_stage_errors_end_in_one_line_not_a_traceback(capsys, monkeypatch):
    import click

    from kslottery.data.corpus import CorpusError

    @click.command()
    def failing():
        raise CorpusError("data/corpus/en-ca.tsv:3: empty target side; remove the line or fill it in")

    monkeypatch.setattr("sys.argv", ["stage.py"])
    with pytest.raises(SystemExit) as exit_info:
        stage.run(failing)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "Error: data/corpus/en-ca.tsv:3: empty target side; remove the line or fill it in\n"


def test_atomic_outputs_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        stage.write_text(tmp_path / "table.md", "x")
        with stage.atomic_dir(tmp_path / "model") as tmp:
            (tmp / "weights").write_text("w")
    finally:
        os.umask(old)
    assert (tmp_path / "table.md").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0o600
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755


def test_progress_bars_show_on_a_terminal_only(monkeypatch):
    """Off when stderr is a pipe (logs, CI) or TQDM_DISABLE=1; on when stderr is a terminal."""
    import subprocess
    import sys

    code = "from kslottery.progress import progress; print(progress(range(3)).disable)"

    def disabled(on_terminal: bool, **env) -> bool:
        environment = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"} | env
        leader, follower = os.openpty()
        try:
            stderr = follower if on_terminal else subprocess.PIPE
            result = subprocess.run([sys.executable, "-c", code], env=environment, stdout=subprocess.PIPE,
                                    stderr=stderr, text=True, timeout=60)
        finally:
            os.close(leader)
            os.close(follower)
        return result.stdout.strip() == "True"

    assert disabled(on_terminal=False)
    assert not disabled(on_terminal=True)
    assert disabled(on_terminal=True, TQDM_DISABLE="1")


def test_the_next_write_removes_what_a_killed_write_left(tmp_path):
    """SIGKILL leaves a temporary beside the output; the next write of that output removes it,
    and nothing else."""
    (tmp_path / ".model.abc123.tmp").mkdir()  # a directory a killed atomic_dir was filling
    (tmp_path / ".model.abc123.tmp" / "part").write_text("half")
    (tmp_path / ".scores.json.xyz.tmp").write_text("{")  # a file a killed atomic_file was writing
    (tmp_path / ".other.json.xyz.tmp").write_text("{")  # another output's: not ours to touch
    with stage.atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("w")
    with stage.atomic_file(tmp_path / "scores.json") as tmp:
        tmp.write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.xyz.tmp", "model", "scores.json"]


@pytest.mark.parametrize("content, message", [
    (b'{"tickets": [{"module": "model.layers.0.mlp.down_proj", "row": 3}, {"module": "m", "ro', "not valid JSON"),
    (b'{"tickets": [{"row": 3}]}', 'tickets[0] has no "module" name'),
    (b'{"tickets": [{"module": "m", "row": -2}]}', "tickets[0] has row -2"),
    (b'{"tickets": {}}', 'a "tickets" list'),
])
def test_bad_target_tickets_are_refused_in_one_line(tmp_path, content, message):
    from kslottery.pipeline.inputs import read_target_tickets

    path = tmp_path / "target-tickets@mlp.down_proj.json"
    path.write_bytes(content)
    with pytest.raises(Exception) as caught:
        read_target_tickets(str(path))
    assert isinstance(caught.value, KSLotteryError) and message in str(caught.value) and str(path) in str(caught.value)


def test_a_value_refused_under_dvc_exp_run_says_how_params_yaml_was_left(fake_project, monkeypatch):
    write_params(fake_project, alpha=2)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    plain = invoke(ksl, ["finetune", *finetune_args(fake_project, "embed", 0)])
    assert "alpha: 2" in plain and "dvc exp run" not in plain
    monkeypatch.setenv("DVC_EXP_NAME", "canny-rims")  # what DVC sets for the stages of an experiment
    output = invoke(ksl, ["finetune", *finetune_args(fake_project, "embed", 0)])
    assert "alpha: 2" in output and "`git checkout params.yaml` restores the committed one" in output
