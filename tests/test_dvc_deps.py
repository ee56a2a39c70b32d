"""dvc.yaml lists, for every stage, exactly the source files the stage's script runs.

A module missing from a stage's deps means that editing it leaves a stale result that `dvc repro`
calls up to date; one listed but never imported reruns the stage for nothing. This test follows
each script's kslottery imports to find both.
"""

import ast
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "kslottery"


def kslottery_imports(path: Path) -> set[str]:
    """Module files of kslottery that `path` imports, directly or through other kslottery modules."""
    found: set[str] = set()
    todo = [path]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kslottery":
                names = [node.module] if node.module != "kslottery" else [f"kslottery.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("kslottery.")]
            if names:  # importing any kslottery module runs the package's __init__.py first
                names.append("kslottery.__init__")
            for name in names:
                module = f"src/{name.replace('.', '/')}.py"
                if module not in found and (REPO / module).is_file():
                    found.add(module)
                    todo.append(REPO / module)
    return found


def test_every_stage_depends_on_the_modules_its_script_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        deps = set(body["deps"])
        scripts = [d for d in deps if d.startswith("stages/") and d.endswith(".py")]
        assert len(scripts) == 1 and scripts[0] in body["cmd"], f"{name}: its script must be its first-class dep"
        modules = {d for d in deps if d.startswith("src/kslottery/")}
        wanted = kslottery_imports(REPO / scripts[0])
        if modules != wanted:
            missing[name] = {"missing": sorted(wanted - modules), "not imported": sorted(modules - wanted)}
    assert not missing, (f"dvc.yaml deps differ from the modules the stage scripts import: {missing}; "
                         "`python tools/update_dvc_deps.py` rewrites them")
    assert kslottery_imports(REPO / "stages/ks_select.py") >= {"src/kslottery/ks.py", "src/kslottery/params.py"}
