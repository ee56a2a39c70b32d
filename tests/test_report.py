import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kslottery.report.tables import (build_table, certification_markdown, cost_markdown, cost_table, gain_shares_markdown,
                               overlap_markdown, params_note, read_records, report_markdown, summary,
                               summary_files,
                               to_markdown)
from kslottery.report.figures import plot_cost, plot_scores
from kslottery.studies.sweep import alpha_sweep, experiment_table, plot_alpha_sweep

REPO = Path(__file__).resolve().parents[1]


def record(pair, method, bleu, chrf, trainable, total=1000, seed=0):
    return {"pair": pair, "method": method, "seed": seed, "bleu": bleu, "chrf++": chrf, "trainable_params": trainable,
            "total_params": total}


def test_table_has_the_papers_shape(tmp_path):
    records = [
        record("en-ca", "ticket", 5.0, 25.0, 10), record("en-ca", "base", 0.5, 8.0, 0),
        record("en-ca", "full", 9.0, 33.0, 1000), record("en-ro", "ticket", 3.0, 21.0, 12),
        record("en-ro", "base", 0.1, 6.0, 0), record("en-ro", "full", 7.0, 29.0, 1000),
    ]
    table = build_table(records)
    assert list(table.index) == ["base (zero-shot)", "full fine-tuning", "KS tickets"]  # the paper's row order
    assert list(table.columns) == ["trainable params", "% of full", "en-ca BLEU", "en-ca chrF++", "en-ro BLEU",
                                   "en-ro chrF++", "avg BLEU", "avg chrF++"]
    assert table.loc["KS tickets", "avg chrF++"] == 23.0
    assert table.loc["KS tickets", "trainable params"] == 12  # the largest ticket over pairs
    assert table.loc["full fine-tuning", "% of full"] == 100.0
    markdown = to_markdown(table)
    assert "| KS tickets" in markdown and "1,000" in markdown
    plot_scores(table, tmp_path / "scores.png")
    assert (tmp_path / "scores.png").read_bytes()[:4] == b"\x89PNG"


def test_gain_shares_are_taken_over_the_base_per_protocol():
    records = [{**record("en-ca", "base", 0.5, 10.0, 0), "whole_chrf++": 5.0},
               {**record("en-ca", "embed", 5.0, 30.0, 100), "whole_chrf++": 25.0},
               {**record("en-ca", "full", 9.0, 50.0, 1000), "whole_chrf++": 45.0},
               {**record("en-ca", "ticket", 5.0, 20.0, 10), "whole_chrf++": 25.0},
               {**record("en-ca", "random-seen-k", 0.5, 9.95, 10), "whole_chrf++": 4.95}]
    text = gain_shares_markdown(build_table(records))
    header, _, *rows = text.strip().splitlines()[2:]
    assert "embedding only's gain (first line)" in header and "full fine-tuning's gain (whole continuation)" in header
    cells = {row.split("|")[1].strip(): [c.strip() for c in row.strip("|").split("|")[1:]] for row in rows}
    assert "base (zero-shot)" not in cells
    assert cells["KS tickets"] == ["50", "25", "100", "50"]  # 10/20, 10/40 first line; 20/20, 20/40 whole
    assert cells["embedding only"][0] == "100" and cells["full fine-tuning"][1] == "100"
    assert cells["random k seen rows"] == ["0", "0", "0", "0"]  # a small loss (-0.25%): 0, not -0
    assert gain_shares_markdown(build_table(records[1:])) == ""  # no base: no gain to share
    flat = [{**r, "chrf++": 10.0} if r["method"] == "embed" else r for r in records]
    cells = {row.split("|")[1].strip(): row for row in gain_shares_markdown(build_table(flat)).splitlines()
             if row.startswith("|")}
    assert cells["KS tickets"].split("|")[2].strip() == "nan"  # embedding-only gained nothing: no share


def test_the_whole_continuation_gain_splits_into_translation_and_stopping():
    from kslottery.report.tables import stopping_markdown

    records = [{**record("en-ca", "base", 0.5, 20.0, 0), "whole_chrf++": 13.0},  # runs on: whole loses 7
               {**record("en-ca", "embed", 5.0, 50.0, 100), "whole_chrf++": 50.0},  # stops: whole = first line
               {**record("en-ca", "ticket", 5.0, 28.0, 10), "whole_chrf++": 27.0},
               {**record("en-ca", "random-seen-k", 0.5, 20.0, 10), "whole_chrf++": 13.2}]
    rows = {row.split("|")[1].strip(): [float(c) for c in row.strip("|").split("|")[1:]]
            for row in stopping_markdown(build_table(records)).splitlines()[4:] if row.startswith("|")}
    assert rows["embedding only"] == [37.0, 30.0, 7.0, 18.92]  # whole gain = translation + stopping
    assert rows["KS tickets"] == [14.0, 8.0, 6.0, 42.86]
    assert rows["random k seen rows"][:3] == [0.2, 0.0, 0.2] and math.isnan(rows["random k seen rows"][3])
    assert "base (zero-shot)" not in rows
    first_line_only = [{k: v for k, v in r.items() if k != "whole_chrf++"} for r in records]
    assert stopping_markdown(build_table(first_line_only)) == ""  # one protocol: nothing to split


def test_gain_shares_average_over_pairs_only_where_a_method_ran_on_every_pair():
    records = [record(pair, method, 0.0, score, 1) for pair, base, embed, full in
               (("en-ca", 10.0, 30.0, 50.0), ("en-ro", 20.0, 40.0, 60.0))
               for method, score in (("base", base), ("embed", embed), ("full", full))]
    records.append(record("en-ca", "ticket", 0.0, 20.0, 1))  # no en-ro run
    text = gain_shares_markdown(build_table(records))
    cells = {row.split("|")[1].strip(): [c.strip() for c in row.strip("|").split("|")[1:]]
             for row in text.strip().splitlines()[4:]}
    assert cells["embedding only"][:2] == ["100", "50"] and cells["KS tickets"][:2] == ["nan", "nan"]
def cost(method, seconds, seed=0, memory=2**30, gradient=2**20, optimizer=2**21, saved=2**20):
    return {"pair": "en-ca", "seed": seed, "method": method, "seconds_per_step": seconds, "steps_timed": 3,
            "peak_memory_bytes": memory, "memory_kind": "rss", "gradient_bytes": gradient,
            "optimizer_state_bytes": optimizer, "trainable_params": 10, "saved_bytes": saved}


def test_cost_table_takes_medians_per_method_in_registry_order(tmp_path):
    records = [cost("ticket", 1.0), cost("ticket", 3.0, seed=1), cost("ticket", 2.0, seed=2), cost("full", 4.0),
               {"pair": "en-ca", "seed": 0, "method": "ks-select", "rows": 50, "d": 16, "ks_test_seconds": 0.25,
                "stage_seconds": 2.5, "peak_memory_bytes": 1, "memory_kind": "rss"}]
    table = cost_table(records)
    assert list(table.index) == ["full fine-tuning", "KS tickets"]  # ks-select is no method row
    assert table.loc["KS tickets", "s / step"] == 2.0
    assert table.loc["full fine-tuning", "gradients + optimizer state (MiB)"] == 3.0
    assert table.loc["full fine-tuning", "peak memory (GiB)"] == 1.0 and table.loc["KS tickets", "saved (MiB)"] == 1.0
    text = cost_markdown(records)
    assert "peak resident set" in text and "KS test of 50 rows of 16 values took 0.25 s" in text
    assert cost_markdown([]) == "" and cost_table([]).empty
    assert "Ran on" not in text  # no record names its machine (cost files from before it was recorded)
    records[0]["machine"] = records[1]["machine"] = "CPU A; torch 2"
    records[2]["machine"] = "CPU B; torch 2"
    assert "Ran on: CPU A; torch 2 (2 runs); CPU B; torch 2 (1 run); not recorded (2 runs)." in cost_markdown(records)

    scores = build_table([record("en-ca", "base", 0.5, 8.0, 0), record("en-ca", "ticket", 5.0, 25.0, 10),
                          record("en-ca", "full", 9.0, 33.0, 1000)])
    assert not plot_cost(scores, cost_table([]), tmp_path / "none.png")  # no costs: nothing drawn
    assert plot_cost(scores, table, tmp_path / "cost.png")
    assert (tmp_path / "cost.png").read_bytes()[:4] == b"\x89PNG"


def test_certification_rows_per_pair():
    text = certification_markdown([{"pair": "en-ca", "n_tickets": 18, "next_token_agreement": 0.9,
                                     "next_token_accuracy_embed": 0.5, "next_token_accuracy_tickets_only": 0.45,
                                     "chrf++_embed": 30.0, "chrf++_tickets_only": 27.0}])
    header, _, row = text.splitlines()[:3]
    assert "next-token agreement" in header and "chrF++ (tickets only)" in header
    assert [cell.strip() for cell in row.strip("|").split("|")] == ["en-ca", "18", "0.9", "0.5", "0.45", "30", "27"]


def test_several_seeds_give_mean_and_sample_std(tmp_path):
    records = [record("en-ca", "base", 0.5, 8.0, 0, seed=None),
               record("en-ca", "ticket", 5.0, 24.0, 10, seed=0), record("en-ca", "ticket", 7.0, 28.0, 12, seed=1),
               record("en-ca", "full", 9.0, 33.0, 1000, seed=0), record("en-ca", "full", 9.0, 35.0, 1000, seed=1)]
    table = build_table(records)
    assert table.loc["KS tickets", "en-ca chrF++"] == 26.0
    assert abs(table.loc["KS tickets", "en-ca chrF++ std"] - 2.8284271) < 1e-6  # sample std of 24, 28
    assert table.loc["KS tickets", "seeds"] == "2" and table.loc["base (zero-shot)", "seeds"] == "1"
    assert pd.isna(table.loc["base (zero-shot)", "en-ca chrF++ std"])
    markdown = to_markdown(table)
    assert "26.00 ± 2.83" in markdown and "34.00 ± 1.41" in markdown and " 8.00 |" in markdown
    assert "chrF++ std" not in markdown  # folded into the mean column
    plot_scores(table, tmp_path / "scores.png")  # with error bars
    assert (tmp_path / "scores.png").read_bytes()[:4] == b"\x89PNG"


def write_json(path: Path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_records_take_pair_seed_and_method_from_their_paths(tmp_path):
    write_json(tmp_path / "en-ca/s3/ticket.json", {"final_loss": 2.0})
    write_json(tmp_path / "en-ca/s4.json", {"n_tickets": 5})
    write_json(tmp_path / "en-ca/base.json", {"pair": "en-ca", "method": "base", "seed": None})
    by_file = {json.dumps(r, sort_keys=True) for r in read_records(tmp_path)}
    assert by_file == {json.dumps(r, sort_keys=True) for r in [
        {"final_loss": 2.0, "seed": 3, "pair": "en-ca", "method": "ticket"},
        {"n_tickets": 5, "seed": 4, "pair": "en-ca"},
        {"pair": "en-ca", "method": "base", "seed": None}]}


def test_overlap_across_pairs_and_seeds():
    def ks(pair, seed, tokens):
        return {"pair": pair, "seed": seed, "token_ids": [ord(t) for t in tokens], "tokens": tokens}  # one id per letter

    records = [ks("en-ca", 0, ["a", "b", "c", "d"]), ks("en-de", 0, ["b", "c", "x"]),
               ks("en-ca", 1, ["a", "b", "z"]), ks("en-de", 1, ["b", "x"])]
    text = overlap_markdown(records)
    assert "2 tokens are tickets of all 2 pairs: `b` `c`" in text
    pairs_row = next(line for line in text.splitlines() if line.startswith("| en-ca ") and "en-de" in line)
    assert [c.strip() for c in pairs_row.strip("|").split("|")] == ["en-ca", "en-de", "4", "3", "2", "0.400"]
    stability = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
                 for line in text.split("Ticket stability across seeds")[1].splitlines() if line.startswith("| en")}
    assert stability["en-ca"][3:] == ["2", "0.400"]  # {a,b} of {a,b,c,d,z}
    assert stability["en-de"][3:] == ["2", "0.667"]
    assert overlap_markdown([ks("en-ca", 0, ["a"])]) == ""  # one pair, one seed: nothing to compare
    # uneven runs: en-de has seed 1 only, en-ca seeds 0 and 1 -> pairs compared on seed 1; en-de has no stability row
    uneven = overlap_markdown([ks("en-ca", 0, ["a", "b"]), ks("en-ca", 1, ["b", "c"]), ks("en-de", 1, ["c", "x"])])
    assert "across pairs (seed 1)" in uneven and "1 token is a ticket of all 2 pairs: `c`" in uneven
    assert "| en-de " not in uneven.split("Ticket stability across seeds")[1]
    assert "across pairs" not in overlap_markdown([ks("en-ca", 0, ["a"]), ks("en-de", 1, ["a"])])  # no shared seed
    three = overlap_markdown([ks("en-ca", 0, ["a", "b", "c"]), ks("en-de", 0, ["a", "b"]), ks("en-ro", 0, ["a", "x"])])
    assert "Tokens by how many pairs select them: 1 in 3 pairs, 1 in 2 pairs, 2 in 1 pair (4 distinct)" in three
    assert "how many pairs" not in text  # two pairs: the shared count says it all


def test_removed_pairs_and_seeds_are_left_out_and_partial_averages_are_not_made(tmp_path):
    write_json(tmp_path / "en-ca/s0/ticket.json", record("en-ca", "ticket", 5.0, 24.0, 10, seed=0))
    write_json(tmp_path / "en-ca/s1/ticket.json", record("en-ca", "ticket", 7.0, 99.0, 10, seed=1))  # seed removed
    write_json(tmp_path / "en-de/s0/ticket.json", record("en-de", "ticket", 3.0, 20.0, 10, seed=0))
    write_json(tmp_path / "en-de/s0/lora.json", record("en-de", "lora", 3.0, 30.0, 10, seed=0))
    write_json(tmp_path / "en-ro/s0/ticket.json", record("en-ro", "ticket", 1.0, 1.0, 10, seed=0))  # pair removed
    table = build_table(read_records(tmp_path, pairs={"en-ca", "en-de"}, seeds={0}))
    assert list(table.columns).count("en-ro chrF++") == 0
    assert table.loc["KS tickets", "avg chrF++"] == 22.0  # (24 + 20) / 2: seed 1's 99 left out
    assert pd.isna(table.loc["LoRA", "avg chrF++"])  # LoRA ran on en-de only: no average over one of two pairs
    _, markdown = report_markdown(tmp_path, pairs=["en-ca", "en-de"], seeds=[0])
    assert "the largest over the runs" not in markdown  # every run of a method trained as many parameters
    write_json(tmp_path / "en-de/s0/ticket.json", record("en-de", "ticket", 3.0, 20.0, 12, seed=0))
    table, markdown = report_markdown(tmp_path, pairs=["en-ca", "en-de"], seeds=[0])
    assert "the largest over the runs" in markdown and table.loc["KS tickets", "trainable params"] == 12
    assert "a token method trains as many rows as its run's tickets" in markdown


def test_params_note_says_why_for_the_kinds_of_method_whose_runs_differ():
    runs = [record("en-ca", "target-ticket@mlp.down_proj", 1.0, 9.0, 1536, seed=0),
            record("en-ca", "target-ticket@mlp.down_proj", 1.0, 9.0, 2304, seed=1),
            record("en-ca", "ticket", 1.0, 9.0, 10, seed=0), record("en-ca", "ticket", 1.0, 9.0, 10, seed=1)]
    note = params_note(runs)
    assert "target KS rows train as many rows as their run's target tickets" in note
    assert "token method" not in note  # the tickets' runs agree: no mean count below to point at
    assert params_note(runs[2:]) == ""


def test_summary_is_nested_pair_method_score(tmp_path):
    write_json(tmp_path / "eval/en-ca/base.json", record("en-ca", "base", 0.5, 8.0, 0, seed=None))
    for seed, chrf in ((0, 24.0), (1, 28.0)):
        write_json(tmp_path / f"eval/en-ca/s{seed}/ticket.json", record("en-ca", "ticket", 5.0, chrf, 10, seed=seed))
        write_json(tmp_path / f"train/en-ca/s{seed}/ticket.json", {"final_loss": 3.0 + seed})
        write_json(tmp_path / f"ks/en-ca/s{seed}.json", {"n_tickets": 10, "n_significant": 10, "n_moved": 30 + seed})
    result = summary(tmp_path / "eval", ks_dir=tmp_path / "ks", train_dir=tmp_path / "train")
    assert result == {"en-ca": {
        "base": {"bleu": 0.5, "chrf++": 8.0, "trainable_params": 0},
        "ticket": {"bleu": 5.0, "chrf++": 26.0, "bleu_std": 0.0, "chrf++_std": 2.8284, "seeds": 2,
                   "trainable_params": 10, "final_loss": 3.5},
        "tickets": {"n_tickets": 10, "n_significant": 10, "n_moved": 30.5}}}
    assert summary_files(result) == {  # the metrics files: one small flat record per method
        "en-ca/base.json": {"chrf++": 8.0, "bleu": 0.5, "trainable_params": 0},
        "en-ca/ticket.json": {"chrf++": 26.0, "chrf++_std": 2.8284, "bleu": 5.0, "bleu_std": 0.0, "seeds": 2,
                              "trainable_params": 10},
        "en-ca/ks-select.json": {"n_tickets": 10, "n_moved": 30.5}}


def exp_show_entry(name, alpha, chrf, tickets, rank_by="p", top_k=None):
    """One revision as `dvc exp show --json` writes it (the fields the sweep reads)."""
    return {"rev": name * 5, "name": name, "data": {
        "params": {"params.yaml": {"data": {"alpha": alpha, "pairs": ["en-ca"],
                                            "ks": {"rank_by": rank_by, "top_k": top_k},
                                            "train": {"embed": {"lr": 0.01}}}}},
        "metrics": {"metrics/summary/en-ca/ticket.json": {"data": {"chrf++": chrf, "bleu": 1.0}},
                    "metrics/summary/en-ca/embed.json": {"data": {"chrf++": 30.0, "bleu": 2.0}},
                    "metrics/summary/en-ca/ks-select.json": {"data": {"n_tickets": tickets}}}}}


def test_experiment_table_shows_what_was_swept(tmp_path):
    workspace = exp_show_entry("workspace", 0.05, 24.0, 2478)
    commit = {**exp_show_entry("main", 0.05, 24.0, 2478), "experiments": [
        {"revs": [exp_show_entry("exp-a", 0.01, 23.0, 1653)]},
        {"revs": [exp_show_entry("exp-b", 0.1, 22.0, 3000)]},
        {"revs": [{"rev": "broken", "name": "exp-failed", "data": {"params": {}, "metrics": {}}}]}]}
    table = experiment_table([workspace, commit])
    assert list(table.index) == ["exp-a", "workspace", "exp-b"]  # by alpha; the commit equals the workspace
    assert list(table.columns[:1]) == ["alpha"]  # swept; lr, pairs and rank_by did not change
    assert table.loc["exp-a", "en-ca tickets"] == 1653 and table.loc["exp-b", "en-ca ticket chrF++"] == 22.0
    plot_alpha_sweep(table, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    ranked = experiment_table([workspace, exp_show_entry("exp-l2", 0.05, 20.0, 2478, rank_by="l2")])
    assert list(ranked.columns[:1]) == ["ks.rank_by"]
    # a cap set in one experiment and null elsewhere is swept too, and its row stays off the alpha line
    capped = experiment_table([workspace, commit["experiments"][0]["revs"][0],
                               exp_show_entry("exp-top", 0.05, 8.0, 100, top_k=100)])
    assert list(capped.columns[:2]) == ["alpha", "ks.top_k"]
    assert list(alpha_sweep(capped).index) == ["exp-a", "workspace"]


def test_committed_table_is_regenerated_from_committed_metrics(tmp_path):
    """The paper table and the summary metrics must be exactly what the committed metrics give."""
    result = subprocess.run([sys.executable, str(REPO / "stages/table.py"), "--params", str(REPO / "params.yaml"),
                             "--eval-dir", str(REPO / "metrics/eval"),
                             "--certify-dir", str(REPO / "metrics/certify"), "--ks-dir", str(REPO / "metrics/ks"),
                             "--train-dir", str(REPO / "metrics/train"), "--out", str(tmp_path),
                             "--summary", str(tmp_path / "summary")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "table.md").read_text() == (REPO / "results/table.md").read_text()
    assert (tmp_path / "table.csv").read_text() == (REPO / "results/table.csv").read_text()
    committed = REPO / "metrics/summary"
    made = {p.relative_to(tmp_path / "summary"): p.read_text() for p in (tmp_path / "summary").rglob("*.json")}
    assert made == {p.relative_to(committed): p.read_text() for p in committed.rglob("*.json")}


def _translations(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("source\treference\thypothesis\n" + "".join(f"s{i}\t{r}\t{h}\n" for i, (r, h) in enumerate(rows)))


def test_significance_tells_a_real_difference_from_resampling_noise(tmp_path):
    from kslottery.report.tables import significance, uncertainty_markdown

    references = [f"el menú fitxer número {i} obre un diàleg on podeu triar opcions" for i in range(40)]
    good = references[:30] + ["res"] * 10  # 30 of 40 exact
    worse = ["el menú"] * 40
    eval_dir = tmp_path / "eval"
    _translations(eval_dir / "en-ca" / "base.translations.tsv", list(zip(references, worse)))
    _translations(eval_dir / "en-ca" / "s0" / "ticket.translations.tsv", list(zip(references, good)))
    close = good[:29] + ["res"] * 11  # one sentence fewer right
    _translations(eval_dir / "en-ca" / "s0" / "embed.translations.tsv", list(zip(references, close)))
    frame = significance(eval_dir, "en-ca", 0).set_index("method")
    assert list(frame.index) == ["ticket", "base", "embed"]
    assert frame.loc["embed", "chrF++ p"] > 0.05 and frame.loc["embed", "chrF++"] < frame.loc["ticket", "chrF++"]
    assert frame.loc["base", "chrF++ p"] < 0.01 and frame.loc["base", "BLEU p"] < 0.01
    assert 0 < frame.loc["ticket", "chrF++ ci"] < frame.loc["ticket", "chrF++"]
    assert "Uncertainty, en-ca seed 0" in uncertainty_markdown(eval_dir, {"en-ca"}, {0})
    _translations(eval_dir / "en-ca" / "s0" / "lora.translations.tsv", list(zip(references[::-1], good)))
    with pytest.raises(ValueError, match="references differ"):
        significance(eval_dir, "en-ca", 0)


def test_ksl_stopping_writes_one_section_per_profile_and_refuses_a_missing_directory(tmp_path):
    from click.testing import CliRunner

    from kslottery.cli import main

    for profile, base_whole in (("a", 13.0), ("b", 25.0)):
        for name, first, whole in (("base", 20.0, base_whole), ("embed", 50.0, 50.0)):
            path = tmp_path / profile / "en-ca" / (f"{name}.json" if name == "base" else f"s0/{name}.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**record("en-ca", name, 1.0, first, 10), "whole_chrf++": whole}))
    out = tmp_path / "stopping.md"
    result = CliRunner().invoke(main, ["stopping", f"a={tmp_path / 'a'}", f"b={tmp_path / 'b'}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.index("## a") < text.index("## b")
    rows = [line for line in text.splitlines() if line.startswith("| embedding only")]
    assert [float(r.split("|")[4]) for r in rows] == [7.0, -5.0]  # stopping: 37 - 30; 25 - 30
    missing = CliRunner().invoke(main, ["stopping", f"a={tmp_path / 'nowhere'}"])
    assert missing.exit_code != 0 and "give NAME=DIR" in missing.output


def test_the_epochs_of_early_stopped_runs_are_listed_per_method():
    from kslottery.report.tables import epochs_markdown

    runs = [{"pair": "en-ca", "seed": seed, "method": method, "epochs": epochs, "kept_epoch": kept, "dev_chrf++": dev}
            for seed, method, epochs, kept, dev in ((1, "ticket", 5.0, 5.0, 20.5), (0, "ticket", 4.0, 2.0, 19.25),
                                                    (0, "frequent-k", 3.0, 1.0, 22.0))]
    text = epochs_markdown(runs + [{"pair": "en-ca", "seed": 0, "method": "embed", "steps": 125}])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
            for line in text.splitlines() if line.startswith("| ") and "method" not in line}
    assert rows["KS tickets"] == ["2", "2, 5", "4, 5", "3.50", "19.25, 20.50"]  # seed 0 first
    assert rows["most frequent k rows"][:3] == ["1", "1", "3"] and "embedding only" not in rows
    assert epochs_markdown([{"pair": "en-ca", "seed": 0, "method": "embed", "steps": 125}]) == ""


def test_ksl_table_lists_the_epochs_of_the_tabled_runs_only(tmp_path):
    from click.testing import CliRunner

    from kslottery.cli import main

    for name in ("base", "ticket"):
        path = tmp_path / "eval" / "en-ca" / (f"{name}.json" if name == "base" else f"s0/{name}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record("en-ca", name, 1.0, 20.0 if name == "base" else 30.0, 10)))
    for seed, kept in ((0, 2.0), (1, 4.0)):  # seed 1 was trained but is not in the table's eval dir
        path = tmp_path / "train" / "en-ca" / f"s{seed}" / "ticket.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"method": "ticket", "epochs": kept + 2, "kept_epoch": kept, "dev_chrf++": 20.0}))
    result = CliRunner().invoke(main, ["table", "--eval-dir", str(tmp_path / "eval"), "--certify-dir", "none",
                                       "--ks-dir", "none", "--train-dir", str(tmp_path / "train")])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("| KS tickets") and "epoch" not in line
               and line.count("|") == 7)
    assert [c.strip() for c in row.strip("|").split("|")][1:3] == ["1", "2"]  # one run, kept epoch 2 (not 2, 4)


def test_ksl_table_draws_the_dev_curves_of_multi_epoch_runs(tmp_path):
    from click.testing import CliRunner

    from kslottery.cli import main

    for name in ("base", "ticket", "embed"):
        path = tmp_path / "eval" / "en-ca" / (f"{name}.json" if name == "base" else f"s0/{name}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record("en-ca", name, 1.0, 20.0, 10)))
    train = tmp_path / "train" / "en-ca" / "s0"
    train.mkdir(parents=True)
    (train / "ticket.dev.csv").write_text("epoch,step,chrf++,bleu\n1.0,125,10.5,1.0\n2.0,250,12.25,2.0\n3.0,375,11.0,1.5\n")
    (train / "embed.dev.csv").write_text("epoch,step,chrf++,bleu\n1.0,125,20.0,3.0\n")  # one epoch: not a curve
    args = ["table", "--eval-dir", str(tmp_path / "eval"), "--certify-dir", "none", "--ks-dir", "none"]
    out = tmp_path / "new" / "dev.png"  # a folder that does not exist yet is made
    result = CliRunner().invoke(main, [*args, "--train-dir", str(tmp_path / "train"), "--dev-curves", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    curve = pd.read_csv(out.with_suffix(".csv"))
    assert list(curve[curve["method"] == "ticket"]["chrF++"]) == [10.5, 12.25, 11.0]
    from kslottery.report.figures import plot_dev_curves

    assert not plot_dev_curves(curve[curve["method"] == "embed"], tmp_path / "one-epoch.png")  # no curve, no file
    assert not (tmp_path / "one-epoch.png").exists()
    refused = CliRunner().invoke(main, [*args, "--dev-curves", str(tmp_path / "other.png")])
    assert refused.exit_code != 0 and "add --train-dir" in refused.output and not (tmp_path / "other.png").exists()


def test_the_mean_dev_curve_ends_where_the_first_seed_stopped():
    from kslottery.report.figures import mean_dev_curve

    runs = pd.DataFrame({"seed": [0] * 5 + [1] * 3, "epoch": [1, 2, 3, 4, 5, 1, 2, 3],
                         "chrF++": [16.0, 17.0, 17.0, 17.0, 17.0, 6.0, 6.0, 6.0]})
    mean = mean_dev_curve(runs)
    assert list(mean.index) == [1, 2, 3] and list(mean) == [11.0, 11.5, 11.5]  # no jump to seed 0's 17 at epoch 4
