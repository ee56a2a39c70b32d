"""Rewrite the src/kslottery deps of every stage in dvc.yaml to exactly the modules its script imports.

tests/test_dvc_deps.py fails when they differ; this fixes it (run from the repository root):

    python tools/update_dvc_deps.py
"""

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_dvc_deps import kslottery_imports  # noqa: E402  (the one definition of "what a script imports")


def main() -> None:
    lines = []
    for line in (REPO / "dvc.yaml").read_text().split("\n"):
        if re.match(r"^\s+- src/kslottery/\w+\.py$", line):
            continue  # dropped here, written again after the stage's script
        lines.append(line)
        script = re.match(r"^(\s+)- (stages/\w+\.py)$", line)
        if script:
            indent, path = script.groups()
            lines += [f"{indent}- {module}" for module in sorted(kslottery_imports(REPO / path))]
    (REPO / "dvc.yaml").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
