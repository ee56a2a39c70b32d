"""The whole pipeline, `dvc repro` in a temporary copy of the repo, on a tiny model and tiny data.

Slow-ish (a minute: every stage is a fresh Python process), but it is the one test that proves the
stages, dvc.yaml and params.yaml fit together, and that a change of alpha reruns only ks-select on.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kslottery.config.registry import names, target_method, token_method, trained
from conftest import tiny_pairs

pytestmark = pytest.mark.slow  # end to end: subprocesses, dvc, minutes

REPO = Path(__file__).resolve().parents[1]


ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "TQDM_DISABLE": "1", "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"}
SEEDS = [0, 1]
TRAINED, TOKEN_METHODS, TARGET_METHODS = names(trained), names(token_method), names(target_method)
EMBEDDING_METHODS = [m for m in TRAINED if m not in TARGET_METHODS]  # ks.target is empty in the first run


def run(command, cwd):
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def dvc(args, cwd):
    return run([sys.executable, "-m", "dvc", *args], cwd)


RARE_K = '''"""A token method of a test: the k least frequent tokens of the training inputs."""

from kslottery.config.registry import Method


def rare_rows(ticket_rows, vocab_size, seed, tokens):
    return sorted(tokens.most_frequent(len(tokens.seen()))[-len(ticket_rows):].tolist())


METHOD = Method("rare-k", section="rare_k", surgery="prepare_tokens", saved_as="adapter", rows=rare_rows)
'''


def stale_stages(project) -> set[str]:
    """The stages `dvc status` calls changed (or never run)."""
    return set(json.loads(dvc(["status", "--json"], project)))


def make_project(tmp_path, tiny_model_dir) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "stages", "src", "configs"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, project / name)
    corpus = project / "data" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "en-ca.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in tiny_pairs(60)), encoding="utf-8")

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["alpha"] = 0.5
    params["seeds"] = SEEDS
    params["model"] = {"source": str(tiny_model_dir), "dtype": "float32"}
    params["data"].update(train_size=24, dev_size=4, test_size=8)
    params["train"].update(steps=3, batch_size=4, max_length=64)
    for section in ("embed", "ticket", "target_tuned", "target_ticket"):
        params["train"][section]["lr"] = 0.5
    params["train"]["prefix"]["tokens"] = 2
    params["train"]["lora"]["r"] = 2
    params["evaluate"].update(batch_size=4, max_new_tokens=6)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / ".gitignore").write_text("__pycache__/\n")
    run(["git", "init", "-q", "-b", "main"], project)
    dvc(["init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "tiny project"], project)
    return project


def test_dvc_repro_end_to_end(tmp_path, tiny_model_dir):
    project = make_project(tmp_path, tiny_model_dir)
    dvc(["repro"], project)

    assert (project / "models/base/model.safetensors").is_file()
    for split_name, size in (("train", 24), ("dev", 4), ("test", 8)):
        lines = (project / f"data/prepared/en-ca/{split_name}.tsv").read_text().splitlines()
        assert len(lines) == size
    for seed in SEEDS:
        run_dir = project / f"models/en-ca/s{seed}"
        assert (run_dir / "embed/embedding.safetensors").is_file()
        tickets = json.loads((run_dir / "tickets.json").read_text())
        assert tickets["n_tickets"] > 0 and tickets["alpha"] == 0.5
        assert all(t["p"] < 0.5 for t in tickets["tickets"])
        assert [t["p"] for t in tickets["tickets"]] == sorted(t["p"] for t in tickets["tickets"])
        assert (run_dir / "ticket/adapter_config.json").is_file()

        for method in EMBEDDING_METHODS:
            record = json.loads((project / f"metrics/eval/en-ca/s{seed}/{method}.json").read_text())
            assert record["method"] == method and record["n"] == 8 and record["seed"] == seed
            assert 0 <= record["chrf++"] <= 100 and 0 <= record["whole_chrf++"] <= 100  # both protocols
            translations = (project / f"metrics/eval/en-ca/s{seed}/{method}.translations.tsv").read_text().splitlines()
            assert translations[0] == "source\treference\thypothesis\tcontinuation" and len(translations) == 9
        for method in ("ticket", "random-k"):  # k rows of d = 16, the same k for both
            record = json.loads((project / f"metrics/eval/en-ca/s{seed}/{method}.json").read_text())
            assert record["trainable_params"] == tickets["n_tickets"] * 16, method
        # frequent-k and random-seen-k: k input tokens, or all of them where the inputs hold fewer;
        # template-tokens: however many tokens every prompt shares; stop-tokens: end of text and newline
        for method in ("frequent-k", "random-seen-k", "template-tokens", "stop-tokens"):
            record = json.loads((project / f"metrics/eval/en-ca/s{seed}/{method}.json").read_text())
            assert record["trainable_params"] == record["rows"] * 16 and record["rows"] > 0, method
            assert method in ("template-tokens", "stop-tokens") or record["rows"] <= tickets["n_tickets"], method
        assert json.loads((project / f"metrics/eval/en-ca/s{seed}/stop-tokens.json").read_text())["rows"] == 2
        full = json.loads((project / f"metrics/eval/en-ca/s{seed}/full.json").read_text())
        assert full["trainable_params"] == full["total_params"]

        for method in EMBEDDING_METHODS:  # dev after the epoch
            trained = json.loads((project / f"metrics/train/en-ca/s{seed}/{method}.json").read_text())
            dev = (project / f"metrics/train/en-ca/s{seed}/{method}.dev.csv").read_text().splitlines()
            assert dev[0] == "epoch,step,chrf++,bleu" and len(dev) == 2, method  # 3 steps < an epoch of 6
            assert dev[1] == f"0.5,3,{trained['dev_chrf++']},{trained['dev_bleu']}", method
            cost = json.loads((project / f"metrics/cost/en-ca/s{seed}/{method}.json").read_text())
            assert cost["steps_timed"] == trained["steps"] and cost["trainable_params"] == trained["trainable_params"]
            for field in ("seconds_per_step", "peak_memory_bytes", "gradient_bytes", "saved_bytes"):
                assert cost[field] > 0, (method, field)
            assert cost["optimizer_state_bytes"] >= 2 * cost["gradient_bytes"], method  # AdamW: two moments
            assert "; torch " in cost["machine"], method  # what it ran on, for comparing runs across machines
        selection = json.loads((project / f"metrics/cost/en-ca/s{seed}/ks-select.json").read_text())
        assert 0 < selection["ks_test_seconds"] < selection["stage_seconds"]

        certified = json.loads((project / f"metrics/certify/en-ca/s{seed}.json").read_text())
        assert certified["n_tickets"] == tickets["n_tickets"]
        assert 0.0 <= certified["next_token_agreement"] <= 1.0
    base = json.loads((project / "metrics/eval/en-ca/base.json").read_text())
    assert base["method"] == "base" and base["seed"] is None

    table = (project / "results/table.md").read_text()
    for label in ("base (zero-shot)", "full fine-tuning", "embedding only", "LoRA", "prefix-tuning",
                  "random k rows", "random k seen rows", "most frequent k rows", "template tokens", "KS tickets",
                  "en-ca chrF++", "en-ca chrF++ (whole)", "% of full", "What the token methods train",
                  "next-token agreement", "Ticket stability across seeds", " ± ", "seed 0, whole continuation",
                  "% of embedding only's gain (whole continuation)"):
        assert label in table, label
    assert (project / "results/scores.png").stat().st_size > 1000 and (project / "results/cost.png").stat().st_size > 1000
    costs = (project / "results/cost.md").read_text()
    assert "s / step" in costs and "ks-select: the KS test of" in costs and "s / step" not in table
    summary = {path.stem: json.loads(path.read_text()) for path in (project / "metrics/summary/en-ca").glob("*.json")}
    assert summary["ticket"]["seeds"] == len(SEEDS) and "chrf++_std" in summary["ticket"]
    assert set(summary) >= {"base", *EMBEDDING_METHODS, "ks-select", "certify"}
    assert "whole_chrf++" in summary["ticket"] and summary["ks-select"]["n_tickets"] > 0
    # `dvc metrics show --md`: one row per method (a file each), a handful of columns
    shown = dvc(["metrics", "show", "--md"], project).strip().splitlines()
    header, rows = shown[0].strip("|").split("|"), shown[2:]
    assert len(header) <= 12 and len(rows) == len(summary), shown
    assert any(row.startswith("| metrics/summary/en-ca/ticket.json ") for row in rows), shown
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "results"], project)
    assert stale_stages(project) == set()

    # The committed results re-derive from the committed code, as CI checks the real default's:
    # params, prepare-model, prepare-data, evaluate-base byte for byte, every method's first steps.
    rederive = [sys.executable, str(REPO / "tools/rederive.py"), "--repo", str(project), "--steps", "2"]
    unrecorded = subprocess.run(rederive, cwd=project, env=ENV, capture_output=True, text=True)
    assert unrecorded.returncode == 1 and "no md5 of its first 2 steps is recorded" in unrecorded.stderr
    assert "wrote" in run([*rederive, "--record"], project)
    record_file = project / "metrics/rederive/en-ca.json"
    record = json.loads(record_file.read_text())
    assert record["steps"] == 2 and len(record["runs"]) == len(EMBEDDING_METHODS)
    assert record["runs"]["baseline@en-ca-0-full"]["weights_md5"] != record["runs"]["embed-finetune@en-ca-0"]["weights_md5"]
    run(["git", "add", str(record_file)], project)
    run(["git", "commit", "-q", "-m", "the first steps' md5s"], project)
    assert "re-derived" in run(rederive, project)
    ticket_stage = "ticket-finetune@en-ca-0-ticket"
    record["runs"][ticket_stage]["weights_md5"] = "0" * 32  # other bytes than the code writes
    record_file.write_text(json.dumps(record))
    run(["git", "commit", "-q", "-am", "a tampered record"], project)
    tampered = subprocess.run(rederive, cwd=project, env=ENV, capture_output=True, text=True)
    assert tampered.returncode == 1 and f"{ticket_stage}: its first 2 steps write other bytes" in tampered.stderr
    run(["git", "revert", "--no-edit", "HEAD"], project)
    base_scores = project / "metrics/eval/en-ca/base.json"
    honest = base_scores.read_text()
    base_scores.write_text(honest.replace('"chrf++": ', '"chrf++": 1'))  # a published number the code did not make
    run(["git", "commit", "-q", "-am", "a tampered score"], project)
    tampered = subprocess.run([*rederive, "--skip-training"], cwd=project, env=ENV, capture_output=True, text=True)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "evaluate-base@en-ca: metrics/eval/en-ca/base.json differs" in tampered.stderr
    assert "`dvc repro evaluate-base@en-ca`" in tampered.stderr
    base_scores.write_text(honest)
    run(["git", "commit", "-q", "-am", "the score the code made"], project)
    figures = project / "src/kslottery/report/figures.py"
    figures.write_text(figures.read_text() + "\n# a change to code the table stage imports\n")
    run(["git", "commit", "-q", "-am", "a change without its rerun"], project)
    stale = subprocess.run([*rederive, "--skip-training"], cwd=project, env=ENV, capture_output=True, text=True)
    assert stale.returncode == 1 and "dvc.lock is stale for 1 stage(s) (table)" in stale.stderr, stale.stderr
    run(["git", "revert", "--no-edit", "HEAD"], project)

    # The price of a change: a label or a colour reruns the table alone; a new token method (its own
    # file, params section and row rule) adds its own stages and reruns no existing one.
    legend = project / "src/kslottery/report/legend.py"
    legend.write_text(legend.read_text().replace('"KS tickets"', '"KS-Lottery tickets"').replace("#dd8452", "#dd8453"))
    assert stale_stages(project) == {"table"}
    run(["git", "checkout", "--", "src"], project)
    (project / "src/kslottery/methods/rare-k.py").write_text(RARE_K)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["rare_k"] = {"lr": 0.5}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    pipeline = yaml.safe_load((project / "dvc.yaml").read_text())
    for stage in ("ticket-finetune", "evaluate"):
        pipeline["stages"][stage]["matrix"]["method"].append("rare-k")
    (project / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    stale = stale_stages(project)
    assert stale == {f"{stage}@en-ca-{seed}-rare-k" for stage in ("ticket-finetune", "evaluate") for seed in SEEDS}, stale
    run(["git", "checkout", "--", "."], project)
    (project / "src/kslottery/methods/rare-k.py").unlink()
    assert stale_stages(project) == set()

    # A remote for teams (here a local directory; S3, GCS or SSH the same way): the run pushes what
    # it made, a fresh clone pulls it and is up to date, and the experiment below runs in the clone.
    dvc(["remote", "add", "-d", "shared", str(tmp_path / "remote")], project)
    run(["git", "commit", "-q", "-am", "a DVC remote"], project)
    dvc(["push"], project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    dvc(["pull"], clone)
    assert (clone / "models/en-ca/s0/embed/embedding.safetensors").is_file()
    assert stale_stages(clone) == set()
    project = clone

    # A change of alpha reruns ks-select and what follows it, never the embedding fine-tune; a
    # ks.target pattern adds its own stages (KS beyond the embedding) and leaves the embedding's be.
    # One seed, to keep the test short: the other seed's stages leave the DAG.
    log = dvc(["exp", "run", "-S", "alpha=0.4", "-S", "ks.target=[mlp.down_proj]", "-S", "seeds=[0]"], project)
    # (the evaluations downstream rerun only if the retrained adapter differs; here the same rows win)
    for rerun in ("ks-select@en-ca-0", *(f"ticket-finetune@en-ca-0-{m}" for m in TOKEN_METHODS), "certify@en-ca-0",
                  "table", *(f"{stage}@en-ca-0-mlp.down_proj" for stage in
                             ("target-finetune", "target-select", "target-ticket-finetune")),
                  *(f"evaluate-target@en-ca-0-mlp.down_proj-{m}" for m in TARGET_METHODS)):
        assert f"Running stage '{rerun}'" in log, rerun
    for untouched in ("prepare-model", "prepare-data@en-ca", "evaluate-base@en-ca",
                      "embed-finetune@en-ca-0", *(f"baseline@en-ca-0-{method}" for method in ("full", "lora", "prefix")),
                      *(f"evaluate@en-ca-0-{method}" for method in ("embed", "full", "lora", "prefix"))):
        assert f"Running stage '{untouched}'" not in log, untouched
    target_tickets = json.loads((project / "models/en-ca/s0/target-tickets@mlp.down_proj.json").read_text())
    assert target_tickets["rows"] == 2 * 16 and target_tickets["alpha"] == 0.4 and target_tickets["n_tickets"] > 0
    for method in TARGET_METHODS:
        run_id = f"{method}@mlp.down_proj"
        record = json.loads((project / f"metrics/eval/en-ca/s0/{run_id}.json").read_text())
        assert record["method"] == run_id and 0 <= record["chrf++"] <= 100
        cost = json.loads((project / f"metrics/cost/en-ca/s0/{run_id}.json").read_text())
        assert all(cost[field] > 0 for field in ("seconds_per_step", "peak_memory_bytes", "gradient_bytes")), run_id
    ticket_rows = json.loads((project / "metrics/eval/en-ca/s0/target-ticket@mlp.down_proj.json").read_text())
    assert ticket_rows["rows"] == target_tickets["n_tickets"]
    assert ticket_rows["trainable_params"] == target_tickets["n_tickets"] * 32  # d_in of down_proj: 32
    table = (project / "results/table.md").read_text()
    assert "target matrices only (mlp.down_proj)" in table and "target KS rows (mlp.down_proj)" in table
    assert json.loads((project / "models/en-ca/s0/tickets.json").read_text())["alpha"] == 0.4
    diff = dvc(["metrics", "diff", "--md"], project)  # the experiment against its baseline: by file and metric
    assert "metrics/summary/en-ca/ticket.json" in diff and "chrf++" in diff

    # The experiments side by side: alpha is the swept column, one row per experiment.
    run([sys.executable, "-m", "kslottery.cli", "experiments", "--repo", str(project), "--out", str(project / "results")],
        project)
    experiments = (project / "results/experiments.md").read_text()
    header = experiments.splitlines()[0]
    assert "alpha" in header and "en-ca tickets" in header and "en-ca ticket chrF++" in header
    assert "0.4" in experiments and "0.5" in experiments
    assert (project / "results/alpha_sweep.png").read_bytes()[:4] == b"\x89PNG"
