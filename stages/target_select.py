"""DVC stage target-select@pair-seed-target: KS beyond the embedding; KS-test every row (output unit) of
the matrices a ks.target pattern names, before vs after their tuning; keep the significant rows."""

import kslottery  # noqa: F401 (first of all: it pins portable CPU kernels before torch loads)
import click
import numpy as np

from kslottery.pipeline import stage
from kslottery.lottery.ks import ks_2samp_rows
from kslottery.model.loading import load_saved
from kslottery.model.saved import load_target
from kslottery.lottery.targets import stacked_rows, target_record
from kslottery.model.targets import matching_linears, target_problems
from kslottery.lottery.tickets import row_shift, select_tickets


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--target", required=True, help="The ks.target module pattern.")
@click.option("--base", required=True, type=click.Path(exists=True), help="Base model directory (prepare-model).")
@click.option("--tuned", required=True, type=click.Path(exists=True),
              help="The target's tuned matrices (target-finetune@PAIR-SEED-TARGET).")
@click.option("--out", required=True, type=click.Path(), help="The row tickets JSON to write.")
@click.option("--metrics", required=True, type=click.Path(), help="Selection summary JSON (counts, tickets per module).")
def main(params_path, pair, target, base, tuned, out, metrics):
    params = stage.start(params_path, f"target-select {target}", pair)
    if problem := params.target_problem(target):
        raise click.ClickException(problem)
    if problems := target_problems([target], base):  # from the config alone: before loading the weights
        raise click.ClickException(problems[0])
    model, _ = load_saved(base)
    tuned_weights = load_target(tuned)  # {NAME.weight: (out, in)}
    linears = matching_linears(model, target)
    if sorted(f"{name}.weight" for name in linears) != sorted(tuned_weights):
        raise click.ClickException(f"{tuned} holds other matrices than {target!r} matches in {base}; "
                                   "rerun target-finetune for this pattern")
    names, before = stacked_rows({name: module.weight for name, module in linears.items()})
    after = [tuned_weights[f"{name}.weight"].float().numpy() for name in names]
    tested = [ks_2samp_rows(b, a) for b, a in zip(before, after)]  # per matrix: d_in may differ between them
    statistic, pvalue = (np.concatenate(parts) for parts in zip(*tested))  # (R,) over the stacked rows
    shift = np.concatenate([row_shift(b, a) for b, a in zip(before, after)])
    tickets = select_tickets(statistic, pvalue, params.alpha, params.ks.top_k, params.ks.rank_by, shift=shift)
    if len(tickets.token_ids) == 0:
        raise click.ClickException(f"{pair} {target}: no row is significant at alpha={params.alpha} "
                                   f"({tickets.n_moved} of {len(statistic)} rows moved, smallest p = {pvalue.min():.3g}); "
                                   "raise alpha or tune the target harder (train.target_tuned: lr, steps)")
    record = target_record(tickets, names, before, target, params.alpha, params.ks.top_k, params.ks.rank_by)
    stage.write_json(out, record)
    summary = {k: v for k, v in record.items() if k != "tickets"}
    stage.write_json(metrics, {**summary, "pair": pair})
    stage.log.info("%s %s: %d row tickets at alpha %g (%d significant, %d moved, of %d rows in %d matrices)", pair,
                   target, record["n_tickets"], params.alpha, record["n_significant"], record["n_moved"],
                   record["rows"], record["matrices"])
    busiest = sorted(record["per_module"].items(), key=lambda item: -item[1])[:5]
    stage.log.info("most tickets: %s", ", ".join(f"{name} {count}" for name, count in busiest))


if __name__ == "__main__":
    stage.run(main)
