"""The library's folders are layers: a folder imports only from folders below it, never upward, and
nothing imports in a circle. The table is src/kslottery/README.md's; `farm-studio look` draws it."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "kslottery"
# bottom to top; the package root's shared modules (errors, atomic writes, progress bars) sit below all
LAYERS = ["", "config", "methods", "data", "model", "training", "lottery", "evaluation", "report", "pipeline", "studies",
          "sharing"]
ROOT_MODULES = {"__init__", "atomic", "numerics", "progress"}
NEVER = {  # beyond "never upward": what a layer must not import although it sits above it
    "lottery": {"model", "training"},  # the paper's math takes arrays and models handed in
    "evaluation": {"training", "lottery"},
    "report": {"training", "model", "pipeline"},
    "data": {"methods"},
    "methods": {"data"},  # a method file is facts and a row rule over what it is handed
}


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) == 1:
        return "cli" if relative.stem == "cli" else ""
    return relative.parts[0]


def imports(path: Path) -> set[str]:
    """The kslottery layers `path` imports (function-local imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kslottery":
            modules = [node.module] if node.module != "kslottery" else [f"kslottery.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names if a.name.startswith("kslottery.")]
        for module in modules:
            parts = module.split(".")
            found.add(parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "")
    return found


def test_no_folder_imports_upward_or_what_it_must_never_import():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = layer_of(path)
        if layer == "cli":
            continue  # wiring: may import anything
        for target in imports(path):
            assert target in LAYERS, f"{path}: imports kslottery.{target}, which is no layer of the table"
            if LAYERS.index(target) > LAYERS.index(layer) or target in NEVER.get(layer, ()):
                wrong.append(f"{path.relative_to(REPO)} ({layer or 'root'}) imports {target}")
    assert not wrong, wrong


def test_root_modules_and_stage_scripts_import_no_study():
    for path in [*PACKAGE.glob("*.py"), *(REPO / "stages").glob("*.py")]:
        if path.stem != "cli":
            assert not {"studies", "sharing"} & imports(path), path


def test_no_import_cycle_between_modules():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kslottery"):
                for alias in node.names:  # `from kslottery import numerics` imports the module kslottery.numerics
                    submodule = f"{node.module}.{alias.name}"
                    is_module = (PACKAGE.parent / submodule.replace(".", "/")).with_suffix(".py").is_file()
                    targets.add(submodule if is_module else node.module)
        graph[module] = targets
    state = {}

    def visit(module, trail):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join([*trail, module])}"
        state[module] = "open"
        for target in graph.get(module, ()):
            visit(target, [*trail, module])
        state[module] = "done"

    for module in graph:
        visit(module, [])
