"""DVC stage table: the paper's comparison table and plot from every evaluation's metrics."""

from pathlib import Path

import click

from kslottery import stage
import json

from kslottery.report import build_table, certification_markdown, plot_scores, read_records, to_markdown


@click.command()
@click.option("--eval-dir", required=True, type=click.Path(exists=True), help="metrics/eval with {pair}/{method}.json.")
@click.option("--certify-dir", type=click.Path(exists=True), help="metrics/certify with {pair}.json.")
@click.option("--out", required=True, type=click.Path(), help="Directory for table.md, table.csv and scores.png.")
def main(eval_dir, certify_dir, out):
    stage.setup_logging()
    table = build_table(read_records(eval_dir))
    markdown = to_markdown(table)
    if certify_dir:
        records = [json.loads(p.read_text()) for p in sorted(Path(certify_dir).glob("*.json"))]
        if records:
            markdown += ("\nCertification (the embedding-tuned model with every non-ticket row reverted to the base,"
                         " against the embedding-tuned model on the test set):\n\n" + certification_markdown(records))
    out = Path(out)
    stage.write_text(out / "table.md", markdown)
    stage.write_text(out / "table.csv", table.to_csv(float_format="%.4f"))
    with stage.atomic_file(out / "scores.png") as tmp:
        plot_scores(table, tmp)
    print(markdown)
    stage.log.info("wrote %s, %s and %s", out / "table.md", out / "table.csv", out / "scores.png")


if __name__ == "__main__":
    main()
