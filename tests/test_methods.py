"""The methods are their files under src/kslottery/methods/: dvc.yaml, params.yaml, the surgery and
the saved forms agree with them, and no other module spells out a method's name."""

import ast
import inspect
from pathlib import Path

import pytest
import yaml

from kslottery.config.params import load_params
from kslottery.config.registry import (KS_SOURCE, TARGET_SOURCE, TICKETS, method, methods, names, sections,
                                       target_method, token_method, trained)
from kslottery.data.training_tokens import TrainingTokens
from kslottery.model import surgery
from kslottery.model.saved import FORMS
from kslottery.report.legend import LEGEND, order

REPO = Path(__file__).resolve().parents[1]


def matrix_methods(stage: str) -> list[str]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["matrix"]["method"]


def test_dvc_yaml_trains_and_evaluates_exactly_the_registered_methods():
    token, target = names(token_method), names(target_method)
    plain = [m for m in names(trained) if m not in token + target]
    assert sorted(["embed", *matrix_methods("baseline")]) == sorted(plain), "embed-finetune and baseline: no tickets"
    assert sorted(matrix_methods("ticket-finetune")) == sorted(token), "ticket-finetune: the token methods"
    assert sorted(matrix_methods("evaluate")) == sorted(set(names(trained)) - set(target)), "evaluate: the others"
    plots = {next(iter(p)): next(iter(p.values())) for p in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
             if isinstance(p, dict)}
    assert sorted(plots["results/loss_curves.csv"]["y"]) == sorted(set(names(trained)) - set(target)), \
        "the loss comparison plot draws every method the table stage averages"
    assert sorted(matrix_methods("evaluate-target")) == sorted(target), "evaluate-target: target methods"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert f"--method {KS_SOURCE} " in stages["embed-finetune"]["cmd"].replace("\n", " ")
    for name in target:  # one training stage each, the tuning first: target-select reads its matrices
        stage = "target-finetune" if name == TARGET_SOURCE else f"{name}-finetune"
        assert f"--method {name} " in stages[stage]["cmd"].replace("\n", " "), (stage, name)


def test_every_trained_method_has_a_surgery_a_section_and_a_saved_form():
    tokens = TrainingTokens(inputs=[[1, 2, 3], [2, 3, 4]], prompts=[[1, 2], [2, 4]], stops=(4, 9))
    for entry in methods().values():
        if not entry.trains:
            assert entry.surgery is None and entry.saved_as is None and entry.rows is None, entry.name
            continue
        prepare = getattr(surgery, entry.surgery)
        assert list(inspect.signature(prepare).parameters) == ["model", "settings", "rows"], entry.surgery
        assert entry.section in sections() and entry.saved_as in FORMS, entry.name
        if entry.rows is not None:  # a rule that picks rows from what the stage hands it
            assert entry.rows([3, 4], 10, 0, tokens), entry.name
    assert method(KS_SOURCE).saved_as == "embedding" and method(TICKETS).rows([7, 5], 10, 0, tokens) == [7, 5]


def test_a_method_file_must_define_its_method(tmp_path, monkeypatch):
    from kslottery.config import registry

    (tmp_path / "mine.py").write_text("from kslottery.config.registry import Method\nMETHOD = Method('other')\n")
    monkeypatch.setattr(registry, "METHODS_DIR", tmp_path)
    registry.methods.cache_clear()
    try:
        with pytest.raises(ImportError, match="mine.py must define METHOD = Method"):
            registry.methods()
    finally:
        registry.methods.cache_clear()


def test_params_yaml_has_a_train_section_per_registered_section():
    for path in (REPO / "params.yaml", *sorted((REPO / "configs").glob("*.yaml"))):
        raw = yaml.safe_load(path.read_text())
        if "train" not in raw:
            continue  # an accelerate config
        assert sections().keys() <= raw["train"].keys(), path
        params = load_params(path)
        for name in names(trained):
            assert params.train_settings(name).lr == raw["train"][method(name).section]["lr"], (path, name)


def test_the_legend_orders_the_methods_with_strangers_last():
    assert set(LEGEND) == set(names()), "a label and colour for every method (a new one may go without)"
    assert order(["ticket", "zeta", "base", "alpha"]) == ["base", "ticket", "alpha", "zeta"]


def test_no_module_but_a_method_file_the_registry_and_the_legend_names_a_method():
    """A method's name as a string literal anywhere else in src/ or stages/ is a second list of
    methods in the making: read it from the registry (or the method's file) instead."""
    allowed = {REPO / "src/kslottery/config/registry.py", REPO / "src/kslottery/report/legend.py"}
    offenders = []
    for path in sorted([*(REPO / "src/kslottery").rglob("*.py"), *(REPO / "stages").glob("*.py")]):
        if path in allowed or path.parent.name == "methods":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names():
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not offenders, offenders
