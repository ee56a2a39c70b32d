"""DVC stage table: write the paper's comparison table; its companions, the plots and the metrics (metrics/summary/)."""

from functools import partial
from pathlib import Path

import click

from kslottery.pipeline import stage
from kslottery.report.figures import loss_curves_frame, plot_cost, plot_ks_histogram, plot_losses, plot_scores
from kslottery.report.tables import (cost_markdown, cost_table, dev_scores_frame, read_records, report_markdown, summary,
                                     summary_files)


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--eval-dir", required=True, type=click.Path(exists=True),
              help="metrics/eval: {pair}/base.json and {pair}/s{seed}/{method}.json.")
@click.option("--certify-dir", type=click.Path(exists=True), help="metrics/certify: {pair}/s{seed}.json.")
@click.option("--ks-dir", type=click.Path(exists=True), help="metrics/ks: {pair}/s{seed}.json (ticket overlaps).")
@click.option("--train-dir", type=click.Path(exists=True), help="metrics/train: {pair}/s{seed}/{method}.json.")
@click.option("--cost-dir", type=click.Path(exists=True),
              help="metrics/cost: {pair}/s{seed}/{method}.json (time and memory of each training; cost.png).")
@click.option("--out", required=True, type=click.Path(),
              help="Directory for table.md, table.csv, scores.png, loss_curves.png, ks_histogram.png and (with "
                   "--cost-dir) cost.md, cost.csv and cost.png.")
@click.option("--summary", "summary_dir", type=click.Path(),
              help="Directory for the DVC metrics: PAIR/METHOD.json, PAIR/ks-select.json, PAIR/certify.json.")
def main(params_path, eval_dir, certify_dir, ks_dir, train_dir, cost_dir, out, summary_dir):
    params = stage.start(params_path, "table")
    # outputs of removed pairs, seeds and ks.target patterns stay on disk: skip them
    pairs, seeds, targets = set(params.pairs), set(params.seeds), set(params.ks.target)
    table, markdown = report_markdown(eval_dir, certify_dir, ks_dir, pairs, seeds, targets)
    out = Path(out)
    stage.write_text(out / "table.md", markdown)
    stage.write_text(out / "table.csv", table.to_csv(float_format="%.4f"))
    with stage.atomic_file(out / "scores.png") as tmp:
        plot_scores(table, tmp)
    figures = [out / "scores.png"]
    if cost_dir:  # time and memory: apart from the deterministic table
        cost_records = read_records(cost_dir, pairs, seeds, targets)
        costs = cost_table(cost_records)
        with stage.atomic_file(out / "cost.png") as tmp:
            if not plot_cost(table, costs, tmp):
                raise click.ClickException(f"no training costs under {cost_dir}; run the training stages first")
        stage.write_text(out / "cost.md", cost_markdown(cost_records))
        stage.write_text(out / "cost.csv", costs.to_csv(float_format="%.4f"))
        figures.append(out / "cost.png")
    if train_dir:  # the data of dvc.yaml's comparison plots (`dvc plots diff` compares them across revisions)
        losses = loss_curves_frame(train_dir, pairs, seeds, targets)
        if losses is not None:
            stage.write_text(out / "loss_curves.csv", losses.to_csv())
        stage.write_text(out / "dev_scores.csv",
                         dev_scores_frame(read_records(train_dir, pairs, seeds, targets)).to_csv(index=False))
    for name, draw, directory in (("loss_curves.png", partial(plot_losses, targets=targets), train_dir),
                                  ("ks_histogram.png", plot_ks_histogram, ks_dir)):
        with stage.atomic_file(out / name) as tmp:
            if directory and draw(directory, pairs, seeds, tmp):
                figures.append(out / name)
            else:
                raise click.ClickException(f"no data for {name} under {directory}; run the stages before the table")
    if summary_dir:
        write_summary(Path(summary_dir), summary_files(summary(eval_dir, certify_dir, ks_dir, train_dir, pairs, seeds,
                                                               targets)))
    print(markdown)
    stage.log.info("wrote %s, %s, %s%s", out / "table.md", out / "table.csv", ", ".join(map(str, figures)),
                   f" and {summary_dir}/" if summary_dir else "")


def write_summary(directory: Path, files: dict[str, dict]) -> None:
    """The metrics files, each written whole; a file of a pair or method no longer summarised goes."""
    for stale in sorted(directory.rglob("*.json")) if directory.is_dir() else []:
        if stale.relative_to(directory).as_posix() not in files:
            stale.unlink()
    for name, record in files.items():
        stage.write_json(directory / name, record)


if __name__ == "__main__":
    stage.run(main)
