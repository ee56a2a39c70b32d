"""The pull-request workflow for forks is a valid GitHub Actions workflow (checked offline against
the workflow schema that check-jsonschema vendors) and does what the README says: the test
command, then the metrics and params diffs against the base branch, posted where the token allows."""

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True)


def test_every_workflow_fits_the_github_workflow_schema(tmp_path):
    assert WORKFLOWS, "no workflow under .github/workflows"
    for path in WORKFLOWS:
        result = lint(path)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"  # the linter does reject a bad workflow
    broken.write_text("on: pull_request\njobs:\n  test:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    assert lint(broken).returncode != 0


def test_the_pull_request_workflow_tests_then_posts_what_moved():
    workflow = yaml.safe_load((REPO / ".github/workflows/pull-request.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    scripts = [step.get("run", "") for step in steps]
    assert any(script.strip() == "make test" for script in scripts)
    assert any("dvc metrics diff --md" in s and "dvc params diff --md" in s for s in scripts)
    assert any("gh pr comment" in s for s in scripts)
    assert "${{" not in "".join(scripts), "expressions go through env:, never into a shell script"
    assert (REPO / "Makefile").read_text().count("\ntest:") == 1
