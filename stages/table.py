"""DVC stage table: the paper's comparison table, its companions, the plot and metrics/summary.json."""

from pathlib import Path

import click

from kslottery import stage
from kslottery.report import plot_scores, report_markdown, summary


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--eval-dir", required=True, type=click.Path(exists=True),
              help="metrics/eval: {pair}/base.json and {pair}/s{seed}/{method}.json.")
@click.option("--certify-dir", type=click.Path(exists=True), help="metrics/certify: {pair}/s{seed}.json.")
@click.option("--ks-dir", type=click.Path(exists=True), help="metrics/ks: {pair}/s{seed}.json (ticket overlaps).")
@click.option("--train-dir", type=click.Path(exists=True), help="metrics/train: {pair}/s{seed}/{method}.json.")
@click.option("--out", required=True, type=click.Path(), help="Directory for table.md, table.csv and scores.png.")
@click.option("--summary", "summary_path", type=click.Path(), help="Nested metrics JSON for `dvc metrics`.")
def main(params_path, eval_dir, certify_dir, ks_dir, train_dir, out, summary_path):
    params = stage.start(params_path, "table")
    pairs, seeds = set(params.pairs), set(params.seeds)  # outputs of removed pairs/seeds stay on disk: skip them
    table, markdown = report_markdown(eval_dir, certify_dir, ks_dir, pairs, seeds)
    out = Path(out)
    stage.write_text(out / "table.md", markdown)
    stage.write_text(out / "table.csv", table.to_csv(float_format="%.4f"))
    with stage.atomic_file(out / "scores.png") as tmp:
        plot_scores(table, tmp)
    if summary_path:
        stage.write_json(summary_path, summary(eval_dir, certify_dir, ks_dir, train_dir, pairs, seeds))
    print(markdown)
    stage.log.info("wrote %s, %s and %s%s", out / "table.md", out / "table.csv", out / "scores.png",
                   f" and {summary_path}" if summary_path else "")


if __name__ == "__main__":
    stage.run(main)
