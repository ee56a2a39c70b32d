"""Re-derive the roots of the committed results from the committed code, in a few minutes: the check
that a published number is what the code computes.

In a temporary clone of the repository's last commit (the work tree is never touched):

1. the params each stage of dvc.lock recorded equal params.yaml's, and the lock names no stage
   dvc.yaml no longer has;
2. prepare-model and prepare-data@PAIR rerun and write what dvc.lock records (its md5s);
3. evaluate-base@PAIR reruns and writes the committed metrics JSON and translations, byte for byte;
4. the first STEPS steps of seed 0's run of every trained method (the stage's own command, stopped
   with --stop-after on the full run's schedule) give the committed loss CSV's first STEPS losses,
   exactly.

Every failure names the stage and the rerun that mends it; exit status 1 if any. With portable
numerics (docs/numerics.md) this holds on any x86-64 machine with AVX2, so CI runs it on every landing.

    python tools/rederive.py                 # the first pair, 3 steps per method
    python tools/rederive.py --skip-training # 1-3 only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def sh(command: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, env=env)


def lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return KeyError
        tree = tree[part]
    return tree


def params_problems(clone: Path, lock: dict, stage_names: set[str]) -> list[str]:
    problems = []
    files: dict[str, dict] = {}
    for name, entry in lock.get("stages", {}).items():
        if name not in stage_names:
            problems.append(f"dvc.lock names {name}, which dvc.yaml no longer has: `dvc repro` (or `dvc commit`) "
                            "rewrites the lock")
            continue
        for file, values in (entry.get("params") or {}).items():
            current = files.setdefault(file, yaml.safe_load((clone / file).read_text()))
            for key, value in values.items():
                if lookup(current, key) != value:
                    problems.append(f"{name}: {key} is {lookup(current, key)!r} in {file} but {value!r} in dvc.lock: "
                                    f"`dvc repro {name}`")
    return problems


def training_stages(stages: dict, pair: str) -> dict[str, tuple[str, bool]]:
    """method -> (its seed-0 training stage in dvc.yaml, whether that stage reads tickets), for every
    method dvc.yaml trains on the embedding."""
    found = {}
    for name, stage in stages.items():
        command = stage.get("cmd", "")
        if "stages/finetune.py" not in command or "--target" in command:
            continue
        matrix = stage.get("matrix", {})
        for method in matrix.get("method") or [command.split("--method ", 1)[1].split()[0]]:
            found[method] = (f"{name}@{pair}-0" + (f"-{method}" if "method" in matrix else ""), "--tickets" in command)
    return found


def outs_md5(lock: dict, stage: str) -> dict[str, str]:
    return {out["path"]: out.get("md5") for out in lock["stages"].get(stage, {}).get("outs", [])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="The repository (its last commit is checked).")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--pair", help="Default: the first of params.yaml's pairs.")
    parser.add_argument("--skip-training", action="store_true", help="Checks 1-3 only.")
    args = parser.parse_args(argv)

    python = Path(sys.executable)
    env = {**os.environ, "TQDM_DISABLE": "1", "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}
    dvc = [python, "-m", "dvc"]
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ksl-rederive-") as tmp:
        clone = Path(tmp) / "clone"
        cloned = sh(["git", "clone", "-q", args.repo.resolve(), clone], Path(tmp))
        if cloned.returncode:
            print(f"cannot clone {args.repo}: {cloned.stderr.strip()}", file=sys.stderr)
            return 1
        lock = yaml.safe_load((clone / "dvc.lock").read_text()) if (clone / "dvc.lock").is_file() else {"stages": {}}
        params = yaml.safe_load((clone / "params.yaml").read_text())
        pair = args.pair or params["pairs"][0]
        listed = sh([*dvc, "stage", "list", "--name-only"], clone, env)
        problems += params_problems(clone, lock, set(listed.stdout.split()))
        report = lambda name, seconds, ok: print(f"{'ok  ' if ok else 'FAIL'} {name} ({seconds:.0f} s)", flush=True)  # noqa: E731

        for stage in ("prepare-model", f"prepare-data@{pair}", f"evaluate-base@{pair}"):
            start = time.perf_counter()
            ran = sh([*dvc, "repro", "-s", stage], clone, env)
            if ran.returncode:
                problems.append(f"{stage}: failed to rerun ({ran.stderr.strip().splitlines()[-1:]})")
                report(stage, time.perf_counter() - start, False)
                break
            new_lock = yaml.safe_load((clone / "dvc.lock").read_text())
            wrong = [path for path, md5 in outs_md5(lock, stage).items() if outs_md5(new_lock, stage).get(path) != md5]
            if stage.startswith("evaluate-base"):  # metrics are in git, not the cache: compare the bytes
                changed = sh(["git", "status", "--porcelain", "--", "metrics"], clone).stdout.split("\n")
                wrong += [line[3:] for line in changed if line.strip()]
            if not outs_md5(lock, stage):
                wrong.append("(dvc.lock records no outputs of it)")
            for path in wrong:
                problems.append(f"{stage}: {path} differs from what the committed dvc.lock records: rerun "
                                f"`dvc repro {stage}` and commit dvc.lock and its outputs")
            report(stage, time.perf_counter() - start, not wrong)

        if not args.skip_training and not problems:
            sys.path.insert(0, str(clone / "src"))
            from kslottery.config.registry import names, target_method, trained
            from kslottery.pipeline.launch import finetune_command

            stages = training_stages(yaml.safe_load((clone / "dvc.yaml").read_text())["stages"], pair)
            for method in names(lambda entry: trained(entry) and not target_method(entry)):
                committed = clone / "metrics" / "train" / pair / "s0" / f"{method}.loss.csv"
                stage, reads_tickets = stages[method]
                if not committed.is_file():
                    problems.append(f"{stage}: no committed {committed.relative_to(clone)}: `dvc repro {stage}`")
                    continue
                out = Path(tmp) / "runs" / method
                tickets = clone / "models" / pair / "s0" / "tickets.json"
                command = finetune_command(params["accelerate"], method=method, seed=0, pair=pair,
                                           base=clone / "models/base", data=clone / "data/prepared" / pair,
                                           out=out / "model", metrics=out / "metrics.json", loss_csv=out / "loss.csv",
                                           dev_csv=out / "dev.csv",
                                           tickets=tickets if reads_tickets else None)
                start = time.perf_counter()
                ran = sh([*command, "--stop-after", args.steps], clone, env)
                expected = committed.read_text().splitlines()[: args.steps + 1]
                got = (out / "loss.csv").read_text().splitlines() if (out / "loss.csv").is_file() else []
                ok = ran.returncode == 0 and got == expected
                if not ok:
                    why = ran.stderr.strip().splitlines()[-1:] if ran.returncode else f"{got[1:]} against {expected[1:]}"
                    problems.append(f"{stage}: its first {args.steps} losses differ from the committed "
                                    f"{committed.relative_to(clone)} ({why}): rerun `dvc repro {stage}` and commit")
                report(f"{stage}, first {args.steps} steps", time.perf_counter() - start, ok)
    for problem in problems:
        print(f"- {problem}", file=sys.stderr)
    print(f"{'re-derived: the committed roots are what the code computes' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
