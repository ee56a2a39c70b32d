"""dvc.yaml's code deps are what each stage imports (tools/stage_deps.py), plus the method's own file.

A module missing from a stage's deps leaves a stale result that `dvc repro` calls up to date; one
listed but never imported reruns the stage for nothing. This follows each script's imports to find
both, and checks that a stage of one method depends on that method's file and on no list of all.
"""

import importlib.util
import re
from pathlib import Path

import yaml

from kslottery.config.registry import METHODS_DIR, names

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("stage_deps", REPO / "tools" / "stage_deps.py")
stage_deps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stage_deps)


def stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_stage_depends_on_the_code_its_script_imports():
    wrong = {}
    for name, stage in stages().items():
        body = stage.get("do", stage)
        scripts = [d for d in body["deps"] if d.startswith("stages/") and d.endswith(".py")]
        assert len(scripts) == 1 and scripts[0] in body["cmd"], f"{name}: its script must be a dep"
        listed = [d for d in body["deps"] if d.startswith("src/") and not stage_deps.METHOD_FILE.match(d)]
        wanted = stage_deps.code_deps(REPO / scripts[0])
        if listed != wanted:
            wrong[name] = {"missing": sorted(set(wanted) - set(listed)), "not imported": sorted(set(listed) - set(wanted))}
    assert not wrong, f"dvc.yaml's code deps differ from the imports: {wrong}; `python tools/stage_deps.py` rewrites them"


def test_a_method_stage_depends_on_its_method_file_and_no_other():
    for name, stage in stages().items():
        method_deps = [d for d in stage.get("do", stage)["deps"] if stage_deps.METHOD_FILE.match(d)]
        cmd = stage.get("do", stage)["cmd"]
        method = re.search(r"--method (\S+?)(?:@|\s|$)", cmd)
        if method is None:  # ks-select, certify, target-select, table: no method of their own
            assert not method_deps, name
            continue
        assert method_deps == [f"src/kslottery/methods/{method.group(1)}.py"], (name, method_deps)
    assert sorted(p.stem for p in METHODS_DIR.glob("*.py") if p.stem != "__init__") == sorted(names())


def test_the_folders_stand_for_every_module_in_them():
    deps = stage_deps.code_deps(REPO / "stages/finetune.py")
    assert "src/kslottery/training" in deps and "src/kslottery/model" in deps  # every module of both
    assert "src/kslottery/report" not in deps and not any(d.startswith("src/kslottery/studies") for d in deps)
    assert not any(d.startswith("src/kslottery/methods") for d in deps)  # loaded by path, listed by hand
    assert "src/kslottery/report" in stage_deps.code_deps(REPO / "stages/table.py")


def test_calibrate_runs_the_training_command_dvc_yaml_runs():
    """`ksl calibrate` and `ksl regime` train with pipeline.launch.finetune_command; every training
    stage of dvc.yaml, rendered for one item, runs the same flags in the same order, with its outputs
    where the run layout (models/PAIR/sSEED/RUN, metrics/train/..., metrics/cost/...) puts them."""
    from kslottery.config.registry import method as registry_entry, run_name
    from kslottery.pipeline.launch import finetune_command

    pair, seed, target = "en-ca", 0, "mlp.down_proj"
    checked = []
    for name, stage in stages().items():
        matrix, cmd = stage.get("matrix", {}), stage.get("do", stage)["cmd"]
        if "stages/finetune.py" not in cmd:
            continue
        method = re.search(r"--method (\S+)", cmd).group(1)
        method = matrix["method"][0] if method == "${item.method}" else method
        item = {"pair": pair, "seed": seed, "method": method, "target": target}
        rendered = re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), cmd)
        rendered = rendered.replace("${accelerate}", "configs/accelerate/cpu.yaml").split()
        entry = registry_entry(method)
        run = run_name(method, target if entry.target else None)
        where, metrics = f"models/{pair}/s{seed}", f"metrics/train/{pair}/s{seed}/{run}"
        tickets = (f"{where}/tickets.json" if entry.needs_tickets else
                   f"{where}/target-tickets@{target}.json" if entry.needs_target_tickets else None)
        built = finetune_command("configs/accelerate/cpu.yaml", method=method, seed=seed, pair=pair,
                                 base=Path("models/base"), data=Path(f"data/prepared/{pair}"), out=Path(f"{where}/{run}"),
                                 metrics=Path(f"{metrics}.json"), loss_csv=Path(f"{metrics}.loss.csv"),
                                 dev_csv=Path(f"{metrics}.dev.csv"), cost=Path(f"metrics/cost/{pair}/s{seed}/{run}.json"),
                                 tickets=tickets and Path(tickets), target=target if entry.target else None)
        script = rendered.index("stages/finetune.py")
        assert rendered[script + 1:] == built[built.index(str(REPO / "stages" / "finetune.py")) + 1:], name
        checked.append(name)
    assert {"embed-finetune", "baseline", "ticket-finetune", "target-finetune", "target-ticket-finetune"} <= set(checked)
