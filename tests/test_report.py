import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from kslottery.report import build_table, certification_markdown, plot_scores, to_markdown

REPO = Path(__file__).resolve().parents[1]


def record(pair, method, bleu, chrf, trainable, total=1000):
    return {"pair": pair, "method": method, "bleu": bleu, "chrf++": chrf, "trainable_params": trainable,
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


def test_certification_rows_per_pair():
    text = certification_markdown([{"pair": "en-ca", "n_tickets": 18, "next_token_agreement": 0.9,
                                     "next_token_accuracy_embed": 0.5, "next_token_accuracy_tickets_only": 0.45,
                                     "chrf++_embed": 30.0, "chrf++_tickets_only": 27.0}])
    header, _, row = text.splitlines()[:3]
    assert "next-token agreement" in header and "chrF++ (tickets only)" in header
    assert [cell.strip() for cell in row.strip("|").split("|")] == ["en-ca", "18", "0.9", "0.5", "0.45", "30", "27"]


def test_committed_table_is_regenerated_from_committed_metrics(tmp_path):
    """The paper table in results/ must be exactly what the committed metrics give."""
    result = subprocess.run([sys.executable, str(REPO / "stages/table.py"), "--eval-dir", str(REPO / "metrics/eval"),
                             "--certify-dir", str(REPO / "metrics/certify"), "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "table.md").read_text() == (REPO / "results/table.md").read_text()
    assert (tmp_path / "table.csv").read_text() == (REPO / "results/table.csv").read_text()
