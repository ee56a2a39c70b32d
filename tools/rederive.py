"""Re-derive the roots of the committed results from the committed code, in a few minutes: the check
that a published number is what the code computes.

In a temporary clone of the repository's last commit (the work tree is never touched):

1. dvc.lock matches the code: `dvc status` finds no stage whose code, deps, params or committed
   outputs changed (absent models, as in any fresh clone, are fine),
   the params each stage recorded equal params.yaml's, and the lock names no stage dvc.yaml no
   longer has;
2. prepare-model and prepare-data@PAIR rerun and write what dvc.lock records (its md5s);
3. evaluate-base@PAIR reruns and writes the committed metrics JSON and translations, byte for byte;
4. the first STEPS steps of seed 0's run of every trained method (the stage's own command, stopped
   with --stop-after on the full run's schedule) give the committed loss CSV's first STEPS losses,
   exactly, and weights whose md5 is the one metrics/rederive/PAIR.json records for that lock entry:
   the losses tie the check to the published run, the md5 to its bytes (a loss CSV has 5 decimals,
   which machines that write other bytes still agree on).

`--record` writes metrics/rederive/PAIR.json (into the repository, once every other check passes):
run it on the machine that ran the pipeline, then commit it with dvc.lock. A record made for another
lock entry of a stage (its command, deps or params) counts as missing.

Every failure names the stage and the rerun that mends it; exit status 1 if any. With portable
numerics (docs/numerics.md) this holds on any x86-64 machine with AVX2, so CI runs it on every landing.

    python tools/rederive.py                 # the first pair, 3 steps per method
    python tools/rederive.py --skip-training # 1-3 only
    python tools/rederive.py --record        # after a rerun: write the weights' md5s to commit
"""

from __future__ import annotations

import argparse
import hashlib
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


def stale_stages(status: dict) -> list[str]:
    """The stages of `dvc status --json` whose code, deps, params or committed outputs changed since
    the run dvc.lock records. Outputs that are merely absent (`deleted`, `not in cache`), as in any
    fresh clone, do not count; a changed command does."""
    def states(group):
        for state in group.values():
            yield from states(state) if isinstance(state, dict) else [state]

    return [stage for stage, entries in status.items()
            if any(isinstance(entry, str) or any(state not in ("deleted", "not in cache")
                                                 for group in entry.values() for state in states(group))
                   for entry in entries)]


def stale_problems(clone: Path, dvc: list, env: dict) -> list[str]:
    status = sh([*dvc, "status", "--json"], clone, env)
    if status.returncode:
        return [f"`dvc status` failed: {status.stderr.strip().splitlines()[-1:]}"]
    stale = stale_stages(json.loads(status.stdout or "{}"))
    if not stale:
        return []
    shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
    return [f"dvc.lock is stale for {len(stale)} stage(s) ({shown}): their code, deps, params or committed "
            "outputs changed since the locked run; `dvc repro` them and commit dvc.lock and their outputs"]


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


def weights_md5(folder: Path) -> str:
    """md5 of a saved run's weights alone (its *.safetensors in path order): the card beside them
    records the machine's numerics mode, which is no part of the bytes under test."""
    digest = hashlib.md5()
    for path in sorted(folder.rglob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def entry_digest(entry: dict) -> str:
    """Which lock entry a record belongs to: its command, deps and params."""
    return hashlib.md5(json.dumps({key: entry.get(key) for key in ("cmd", "deps", "params")},
                                  sort_keys=True).encode()).hexdigest()


def record_path(repo: Path, pair: str) -> Path:
    return repo / "metrics" / "rederive" / f"{pair}.json"


def record_problem(stage: str, recorded: dict, run: dict, steps: int, mend: str) -> str | None:
    """Why `run` (this machine's first steps of `stage`) does not match the committed record, if it does not."""
    known = recorded.get("runs", {}).get(stage) if recorded.get("steps") == steps else None
    if known is None or known["lock_entry"] != run["lock_entry"]:
        return f"{stage}: no md5 of its first {steps} steps is recorded for its locked run: {mend}"
    if known["weights_md5"] != run["weights_md5"]:
        return (f"{stage}: its first {steps} steps write other bytes ({run['weights_md5']}) than recorded "
                f"({known['weights_md5']}): the code or this machine's numerics differ from the locked run's "
                f"(docs/numerics.md); rerun `dvc repro {stage}` and {mend}")
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="The repository (its last commit is checked).")
    parser.add_argument("--steps", type=int, default=3, help="Training steps re-derived per method (at least 1).")
    parser.add_argument("--pair", help="Default: the first of params.yaml's pairs.")
    parser.add_argument("--skip-training", action="store_true", help="Checks 1-3 only.")
    parser.add_argument("--record", action="store_true",
                        help="Write metrics/rederive/PAIR.json (the first steps' weight md5s) once the other checks pass.")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: give at least 1 (the record holds the md5 after that many steps)")

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
        if pair not in params["pairs"]:
            print(f"--pair {pair}: params.yaml's pairs are {', '.join(params['pairs'])}; give one of them",
                  file=sys.stderr)
            return 1
        listed = sh([*dvc, "stage", "list", "--name-only"], clone, env)
        problems += params_problems(clone, lock, set(listed.stdout.split()))
        problems += stale_problems(clone, dvc, env)
        report = lambda name, seconds, ok: print(f"{'ok  ' if ok else 'FAIL'} {name} ({seconds:.0f} s)", flush=True)  # noqa: E731

        for stage in ("prepare-model", f"prepare-data@{pair}", f"evaluate-base@{pair}"):
            start = time.perf_counter()
            ran = sh([*dvc, "repro", "--force", "-s", stage], clone, env)  # its outputs are committed: force
            if ran.returncode:
                problems.append(f"{stage}: failed to rerun ({ran.stderr.strip().splitlines()[-1:]})")
                report(stage, time.perf_counter() - start, False)
                break
            if "didn't change, skipping" in ran.stdout:  # a check that reran nothing proves nothing
                problems.append(f"{stage}: dvc skipped it instead of rerunning it")
                report(stage, time.perf_counter() - start, False)
                continue
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
            from kslottery.atomic import write_json
            from kslottery.config.registry import names, target_method, trained
            from kslottery.pipeline.launch import finetune_command

            stages = training_stages(yaml.safe_load((clone / "dvc.yaml").read_text())["stages"], pair)
            recorded_file = record_path(clone, pair)
            recorded = json.loads(recorded_file.read_text()) if recorded_file.is_file() else {}
            record = {"steps": args.steps, "runs": {}}
            mend = f"`python tools/rederive.py --record` and commit {recorded_file.relative_to(clone)}"
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
                else:
                    run = {"lock_entry": entry_digest(lock["stages"].get(stage, {})), "weights_md5": weights_md5(out / "model")}
                    record["runs"][stage] = run
                    problem = None if args.record else record_problem(stage, recorded, run, args.steps, mend)
                    ok = problem is None
                    problems += [problem] if problem else []
                report(f"{stage}, first {args.steps} steps", time.perf_counter() - start, ok)
            if args.record and not problems:
                target = record_path(args.repo.resolve(), pair)
                write_json(target, record)
                print(f"wrote {target}")
    for problem in problems:
        print(f"- {problem}", file=sys.stderr)
    print(f"{'re-derived: the committed roots are what the code computes' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
