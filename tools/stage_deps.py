"""The code deps of every stage in dvc.yaml: what its script imports, by folder where it imports all of one.

A stage's script imports modules of src/kslottery, and those import others; the closure of those
imports (read from the source, not run) is the code the stage's result depends on. Where the closure
holds every module of a folder (src/kslottery/model: loading, surgery, saved, targets, cards) the
folder stands for them, so dvc.yaml shows the layers a stage uses. A method's own file
(src/kslottery/methods/METHOD.py), which the registry loads by path, is written by hand in dvc.yaml
beside these; tests/test_stage_deps.py checks both.

    python tools/stage_deps.py          # rewrite the src/kslottery deps of every stage in dvc.yaml
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "kslottery"
METHOD_FILE = re.compile(r"^src/kslottery/methods/(?!__init__\.py$)[^/]+\.py$")


def _module_files(dotted: str) -> list[Path]:
    """The file of module `dotted` (kslottery.a.b) and the __init__.py of each package above it."""
    parts = dotted.split(".")
    files = [REPO / "src" / Path(*parts[:i]) / "__init__.py" for i in range(1, len(parts) + 1)]
    module = REPO / "src" / Path(*parts).with_suffix(".py")
    return [f for f in (*files, module) if f.is_file()]


def imported_files(script: Path) -> set[Path]:
    """Every file of src/kslottery that `script` imports, directly or through other modules of it."""
    found: set[Path] = set()
    todo = [script]
    while todo:
        for node in ast.walk(ast.parse(todo.pop().read_text(encoding="utf-8"))):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kslottery":
                modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names if alias.name.split(".")[0] == "kslottery"]
            for module in modules:
                for path in _module_files(module):
                    if path not in found:
                        found.add(path)
                        todo.append(path)
    return found


def code_deps(script: Path) -> list[str]:
    """The src/kslottery deps of a stage running `script`: files, or a folder where every module of it
    is imported."""
    files = imported_files(script)
    deps = set()
    for path in files:
        folder = path.parent
        if folder != PACKAGE and set(folder.glob("*.py")) <= files:
            deps.add(folder)
        else:
            deps.add(path)
    return sorted(str(p.relative_to(REPO)) for p in deps)


def main() -> None:
    lines = []
    for line in (REPO / "dvc.yaml").read_text(encoding="utf-8").split("\n"):
        dep = re.match(r"^\s+- (src/kslottery/\S*)", line)
        if dep and not METHOD_FILE.match(dep.group(1)):
            continue  # dropped here, written again after the stage's script
        lines.append(line)
        script = re.match(r"^(\s+)- (stages/\w+\.py)$", line)
        if script:
            indent, path = script.groups()
            lines += [f"{indent}- {dep}" for dep in code_deps(REPO / path)]
    (REPO / "dvc.yaml").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
