"""The method registry is the one place per method: dvc.yaml, params.yaml and the surgery agree
with it, and no other module spells out a method's name."""

import ast
import inspect
from pathlib import Path

import yaml

from kslottery import surgery
from kslottery.methods import (KS_SOURCE, METHODS, NAMES, SECTIONS, TARGET_METHODS, TARGET_SOURCE, TICKETS,
                               TOKEN_METHODS, TRAINED, method, order)
from kslottery.params import load_params
from kslottery.tickets import TrainingTokens, control_rows

REPO = Path(__file__).resolve().parents[1]


def matrix_methods(stage: str) -> list[str]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["matrix"]["method"]


def test_dvc_yaml_trains_and_evaluates_exactly_the_registered_methods():
    plain = [m for m in TRAINED if m not in TOKEN_METHODS + TARGET_METHODS]
    assert sorted(matrix_methods("finetune")) == sorted(plain), "finetune: the trained methods that need no tickets"
    assert sorted(matrix_methods("ticket-finetune")) == sorted(TOKEN_METHODS), "ticket-finetune: the token methods"
    assert sorted(matrix_methods("evaluate")) == sorted(set(TRAINED) - set(TARGET_METHODS)), "evaluate: the others"
    assert sorted(matrix_methods("evaluate-target")) == sorted(TARGET_METHODS), "evaluate-target: target methods"
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in TARGET_METHODS:  # one training stage each, the tuning first: target-select reads its matrices
        stage = "target-finetune" if name == TARGET_SOURCE else f"{name}-finetune"
        assert f"--method {name} " in stages[stage]["cmd"].replace("\n", " "), (stage, name)


def test_every_trained_method_has_a_surgery_a_section_and_a_way_to_be_saved():
    for entry in METHODS:
        if not entry.trains:
            assert entry.surgery is None and entry.saved_as is None and entry.rows is None, entry.name
            continue
        prepare = getattr(surgery, entry.surgery)
        assert list(inspect.signature(prepare).parameters) == ["model", "settings", "rows"], entry.surgery
        assert entry.section in SECTIONS and entry.saved_as in ("embedding", "adapter", "model", "weights", "rows"), \
            entry.name
        if entry.rows is not None:  # a rule control_rows knows
            tokens = TrainingTokens(inputs=[[1, 2, 3], [2, 3, 4]], prompts=[[1, 2], [2, 4]])
            assert control_rows(entry.rows, [3, 4], vocab_size=10, seed=0, tokens=tokens), entry.name
    assert method(KS_SOURCE).saved_as == "embedding" and method(TICKETS).rows == "tickets"
    assert len({m.colour for m in METHODS}) == len(METHODS) and len({m.label for m in METHODS}) == len(METHODS)


def test_params_yaml_has_a_train_section_per_registered_section():
    for path in (REPO / "params.yaml", *sorted((REPO / "configs").glob("*.yaml"))):
        raw = yaml.safe_load(path.read_text())
        if "train" not in raw:
            continue  # an accelerate config
        assert SECTIONS.keys() <= raw["train"].keys(), path
        params = load_params(path)
        for name in TRAINED:
            assert params.train_settings(name).lr == raw["train"][method(name).section]["lr"], (path, name)


def test_order_is_the_registry_order_with_strangers_last():
    assert order(["ticket", "zeta", "base", "alpha"]) == ["base", "ticket", "alpha", "zeta"]


def test_no_module_but_the_registry_names_a_method():
    """A method's name as a string literal anywhere in src/ or stages/ is a second list of methods
    in the making: read it from kslottery.methods instead."""
    offenders = []
    for path in sorted([*(REPO / "src/kslottery").glob("*.py"), *(REPO / "stages").glob("*.py")]):
        if path.name == "methods.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in NAMES:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not offenders, offenders
