"""DVC stage table: the paper's comparison table and plot from every evaluation's metrics."""

from pathlib import Path

import click

from kslottery import stage
from kslottery.report import plot_scores, report_markdown


@click.command()
@click.option("--eval-dir", required=True, type=click.Path(exists=True), help="metrics/eval with {pair}/{method}.json.")
@click.option("--certify-dir", type=click.Path(exists=True), help="metrics/certify with {pair}.json.")
@click.option("--out", required=True, type=click.Path(), help="Directory for table.md, table.csv and scores.png.")
def main(eval_dir, certify_dir, out):
    stage.setup_logging()
    table, markdown = report_markdown(eval_dir, certify_dir)
    out = Path(out)
    stage.write_text(out / "table.md", markdown)
    stage.write_text(out / "table.csv", table.to_csv(float_format="%.4f"))
    with stage.atomic_file(out / "scores.png") as tmp:
        plot_scores(table, tmp)
    print(markdown)
    stage.log.info("wrote %s, %s and %s", out / "table.md", out / "table.csv", out / "scores.png")


if __name__ == "__main__":
    main()
