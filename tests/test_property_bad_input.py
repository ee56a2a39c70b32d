"""Generated bad input: params files and corpus files mutated at random (a seeded generator, a few
hundred cases). Each is either accepted or refused with click's one-line `Error:`; never a
traceback, and nothing is written outside the case's temporary folder."""

import copy
import json
import random
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kslottery.cli import main as ksl

REPO = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((REPO / "params.yaml").read_text())
ODD_VALUES = [None, "", "x", -1, 0, 1, 2.5, 1e30, -0.0, True, [], [1, "a"], {}, {"a": 1}, "{source.upper}",
              "nan", float("inf"), "../../etc", "wheel:", "a" * 300, "\x00", "en-xx", ["en-ca", "en-ca"]]


def leaves(tree, path=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, (*path, key))
    yield path


def mutate_params(rng: random.Random) -> str:
    """The default params with one to three keys replaced, deleted or added, or its text damaged."""
    raw = copy.deepcopy(DEFAULT)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice([p for p in leaves(raw) if p])
        parent = raw
        for key in path[:-1]:
            parent = parent[key]
        action = rng.random()
        if action < 0.6:
            parent[path[-1]] = rng.choice(ODD_VALUES)
        elif action < 0.8:
            del parent[path[-1]]
        else:
            parent[f"{path[-1]}_typo"] = rng.choice(ODD_VALUES)
    text = yaml.safe_dump(raw, sort_keys=False)
    damage = rng.random()
    if damage < 0.1:
        text += f"alpha: {rng.random()}\n"  # a key written twice
    elif damage < 0.15:
        cut = rng.randrange(len(text))
        text = text[:cut]  # cut short
    elif damage < 0.2:
        text = text.replace(":", "", 1)
    return text


def mutate_corpus(rng: random.Random, good: list[str]) -> bytes:
    lines = list(good)
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(len(lines))
        lines[where] = rng.choice([
            lambda s: s.replace("\t", ""), lambda s: s + "\tthird", lambda s: "\t" + s.split("\t")[-1],
            lambda s: s.split("\t")[0] + "\t", lambda s: s.replace(" ", "\x00", 1), lambda s: "source\ttarget",
            lambda s: s.replace(" ", "\u2028", 1), lambda s: s.replace(" ", "\x0c", 1), lambda s: "",
            lambda s: json.dumps({"source": 5, "target": None}), lambda s: s + " " + "mot " * 300,
            lambda s: "\ufeff" + s,
        ])(lines[where])
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if rng.random() < 0.15:
        cut = rng.randrange(len(data))
        data = data[:cut] + b"\xff\xfe" + data[cut:]  # not UTF-8
    return data


def assert_accepted_or_refused(result, case):
    if result.exit_code == 0:
        return
    assert result.exit_code in (1, 2), (case, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), (case, repr(result.exception), result.output)
    assert result.output.startswith(("Error:", "Usage:")) and "Traceback" not in result.output, (case, result.output)


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")}


@pytest.fixture
def offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_generated_params_files_are_accepted_or_refused_in_one_line(tmp_path, monkeypatch, offline):
    rng, runner = random.Random(20261205), CliRunner()
    monkeypatch.chdir(REPO)  # validate reads the repository's corpora and accelerate configs
    before = files_under(REPO / "data") | files_under(REPO / "configs") | set(REPO.iterdir())
    refused = 0
    for case in range(300):
        path = tmp_path / f"params-{case}.yaml"
        path.write_text(mutate_params(rng), encoding="utf-8")
        result = runner.invoke(ksl, ["validate", str(path), "--base", str(tmp_path / "no-base")])
        assert_accepted_or_refused(result, path.read_text())
        refused += result.exit_code != 0
    assert refused > 250  # the generator makes bad files, mostly
    assert files_under(REPO / "data") | files_under(REPO / "configs") | set(REPO.iterdir()) == before


def test_generated_corpus_files_are_accepted_or_refused_in_one_line(tmp_path, monkeypatch):
    from conftest import tiny_pairs

    rng, runner = random.Random(5), CliRunner()
    good = [f"{source}\t{target}" for source, target in tiny_pairs(60)]
    raw = copy.deepcopy(DEFAULT)
    raw["data"].update(train_size=30, dev_size=5, test_size=10)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    outcomes = {"written": 0, "refused": 0}
    for case in range(200):
        corpus = work / f"corpus-{case}.{'jsonl' if rng.random() < 0.2 else 'tsv'}"
        corpus.write_bytes(mutate_corpus(rng, good))
        out = work / f"out-{case}"
        result = runner.invoke(ksl, ["prepare-data", "--params", str(params), "--pair", "en-ca",
                                     "--corpus", str(corpus), "--out", str(out)])
        assert_accepted_or_refused(result, corpus.read_bytes()[:300])
        assert out.is_dir() == (result.exit_code == 0)  # written whole, or not at all
        outcomes["written" if result.exit_code == 0 else "refused"] += 1
    assert outcomes["written"] > 10 and outcomes["refused"] > 100, outcomes
    assert {p.parent for p in files_under(tmp_path)} <= {tmp_path, work, *work.glob("out-*")}
