"""The default pipeline's first steps in a few minutes, on whatever device this machine has: a check
for a CUDA machine (and, with a tiny model, a test on a CPU).

Runs the stage scripts as dvc.yaml runs them, in a temporary directory, on the params file given
(params.yaml) shrunk to a few steps: prepare-model, prepare-data, a few steps of embed-finetune,
ks-select (alpha raised if need be, so that a few steps still give tickets), a few steps of
ticket-finetune, and evaluate-base on a few test sentences. Prints, per stage, the device and dtype,
the seconds per step and the peak memory (CUDA's peak allocation on a GPU, the process's peak RSS on
a CPU), from the cost files the stages write, and each stage's wall time.

    python tools/gpu_check.py                                  # the default model (the wheel), en-ca
    python tools/gpu_check.py --source /path/to/model --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from kslottery.pipeline.launch import finetune_command, stages_dir

REPO = Path(__file__).resolve().parents[1]


def shrunk_params(params_path: Path, source: str | None, steps: int, sentences: int) -> dict:
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["pairs"], params["seeds"] = params["pairs"][:1], [0]
    if source:
        params["model"] = {**params["model"], "source": source, "gguf_file": None, "gguf_parts": [],
                           "gguf_sha256": None}
    params["train"]["steps"] = steps
    for settings in (params["train"], *(v for v in params["train"].values() if isinstance(v, dict))):
        settings.pop("patience", None)  # no dev scores here, so no early stopping (shared or a section's)
    params["alpha"] = max(params["alpha"], 0.5)  # a few steps move few rows far: keep some tickets
    params["checkpoint_every"] = 0
    params["evaluate"].update(dev_limit=0, limit=sentences)
    return params


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--source", help="model.source instead of the params' (a local model directory, a hub id)")
    parser.add_argument("--corpus", type=Path, help="The pair's corpus (default: data/corpus/PAIR.tsv of the repo).")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="Keep the work directory here instead of a temporary one.")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="ksl-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    params = shrunk_params(args.params, args.source, args.steps, args.sentences)
    pair = params["pairs"][0]
    corpus = args.corpus or REPO / "data" / "corpus" / f"{pair}.tsv"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    p, base, data, run = str(work / "params.yaml"), str(work / "base"), str(work / "data"), work / "run"
    stages = REPO / "stages"

    def training(method: str, tickets: Path | None = None) -> list:
        """The training stage's command as dvc.yaml runs it (pipeline.launch.finetune_command), minus
        `accelerate launch`: one process, on whatever device there is."""
        command = finetune_command(params["accelerate"], method=method, seed=0, pair=pair, base=Path(base),
                                   data=Path(data), out=run / method, metrics=run / f"{method}.json",
                                   loss_csv=run / f"{method}.loss.csv", dev_csv=run / f"{method}.dev.csv",
                                   cost=run / f"{method}.cost.json", tickets=tickets, params=Path(p))
        return command[command.index(str(stages_dir() / "finetune.py")):]

    steps = [
        ("prepare-model", [stages / "prepare_model.py", "--params", p, "--out", base]),
        ("prepare-data", [stages / "prepare_data.py", "--params", p, "--pair", pair, "--corpus", corpus, "--out", data]),
        ("embed-finetune", training("embed")),
        ("ks-select", [stages / "ks_select.py", "--params", p, "--pair", pair, "--base", base, "--embed", run / "embed",
                       "--data", data, "--out", run / "tickets.json", "--metrics", run / "ks.json",
                       "--histogram", run / "ks.hist.csv", "--cost", run / "ks.cost.json"]),
        ("ticket-finetune", training("ticket", tickets=run / "tickets.json")),
        ("evaluate-base", [stages / "evaluate.py", "--params", p, "--pair", pair, "--method", "base", "--base", base,
                           "--data", data, "--out", run / "base.json", "--translations", run / "base.translations.tsv"]),
    ]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    print(f"work directory: {work}", flush=True)
    for name, command in steps:
        start = time.perf_counter()
        finished = subprocess.run([sys.executable, *map(str, command)], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if finished.returncode != 0:
            print(f"{name}: failed after {seconds:.0f} s\n{finished.stderr[-3000:]}", file=sys.stderr)
            return 1
        line = f"{name:16s} {seconds:7.1f} s"
        cost = {"embed-finetune": run / "embed.cost.json", "ks-select": run / "ks.cost.json",
                "ticket-finetune": run / "ticket.cost.json"}.get(name)
        if cost is not None and cost.is_file():
            record = json.loads(cost.read_text())
            if "seconds_per_step" in record:
                line += f"  {record['seconds_per_step']:.3f} s/step"
            line += (f"  peak memory {record['peak_memory_bytes'] / 2**30:.2f} GiB ({record['memory_kind']})"
                     f"  {record.get('machine', '')}  numerics {record.get('numerics')} "
                     f"({record.get('cpu_capability')}, MKL_CBWR {record.get('mkl_cbwr')})")
        if name == "embed-finetune":
            device = [ln for ln in finished.stderr.splitlines() if "device" in ln and "steps, batch" in ln]
            line += f"\n{'':16s} {device[-1].split(': ', 1)[-1] if device else ''}"
        if name == "evaluate-base":
            scores = json.loads((run / "base.json").read_text())
            line += f"  chrF++ {scores['chrf++']} on {scores['n']} sentences"
        print(line, flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
