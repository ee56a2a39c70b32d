"""DVC stage ks-select@pair-seed: KS-test every embedding row before vs after tuning; keep the tickets."""

import time
from pathlib import Path

import kslottery  # noqa: F401 (first of all: it pins portable CPU kernels before torch loads)
import click
import torch

from kslottery import numerics
from kslottery.pipeline import stage
from kslottery.lottery.certify import critical_statistic
from kslottery.data.corpus import read_pairs
from kslottery.training.cost import machine, peak_memory
from kslottery.lottery.ks import ks_2samp_rows
from kslottery.config.registry import KS_SOURCE
from kslottery.model.loading import top_k_problem
from kslottery.data.prompts import encode_pairs
from kslottery.model.saved import embedding_rows
from kslottery.lottery.tickets import TOKEN_CLASSES, histogram_csv, row_shift, select_tickets, token_classes
from kslottery.data.training_tokens import TrainingTokens


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--base", required=True, type=click.Path(exists=True), help="Base model directory (prepare-model).")
@click.option("--embed", required=True, type=click.Path(exists=True), help="The embedding-tuned output (embed-finetune@PAIR-SEED).")
@click.option("--data", required=True, type=click.Path(exists=True),
              help="Prepared splits directory: the training inputs that tell template and frequent tokens.")
@click.option("--out", required=True, type=click.Path(), help="tickets.json to write.")
@click.option("--metrics", required=True, type=click.Path(),
              help="Selection summary JSON (counts, and the ticket ids and tokens that the table compares).")
@click.option("--histogram", required=True, type=click.Path(),
              help="CSV of the KS statistic over the moved rows: D, rows, tickets (DVC plot data).")
@click.option("--cost", "cost_path", type=click.Path(),
              help="Seconds of the KS test and of the whole selection, peak memory (JSON; not deterministic).")
@click.option("--allow-empty", is_flag=True,
              help="Write an empty ticket set instead of failing when no row is significant (ksl regime).")
def main(params_path, pair, base, embed, data, out, metrics, histogram, cost_path, allow_empty):
    stage_start = time.perf_counter()
    params = stage.start(params_path, "ks-select", pair)
    if problem := top_k_problem(params, base):
        raise click.ClickException(problem)
    _, tokenizer, before, after = embedding_rows(base, embed)  # (V, d) each
    test_start = time.perf_counter()
    statistic, pvalue = ks_2samp_rows(before, after)
    test_seconds = time.perf_counter() - test_start
    tickets = select_tickets(statistic, pvalue, params.alpha, params.ks.top_k, params.ks.rank_by,
                             shift=row_shift(before, after))
    if len(tickets.token_ids) == 0 and not allow_empty:
        raise click.ClickException(f"{pair}: no row is significant at alpha={params.alpha} ({tickets.n_moved} rows moved, "
                                   "smallest p = %.3g); raise alpha or train the embedding harder (train.embed: lr, steps)"
                                   % (pvalue.min() if len(pvalue) else 1.0))
    strings = tokenizer.convert_ids_to_tokens(tickets.token_ids.tolist())
    examples = encode_pairs(tokenizer, read_pairs(Path(data) / "train.tsv"), pair, params.prompt.template,
                            params.train_settings(KS_SOURCE).max_length)
    classes = token_classes(tickets.token_ids, [tokenizer.decode([t]) for t in tickets.token_ids.tolist()],
                            TrainingTokens.of(examples, tokenizer))
    record = tickets.record(strings, params.alpha, params.ks.top_k, params.ks.rank_by, vocab_size=before.shape[0],
                            classes=classes)
    stage.write_json(out, record)
    summary = {k: v for k, v in record.items() if k != "tickets"}
    summary["critical_D"] = critical_statistic(before.shape[1], params.alpha)  # rows with D >= this have p < alpha
    stage.write_json(metrics, {**summary, "pair": pair, "token_ids": tickets.token_ids.tolist(), "tokens": strings})
    stage.write_text(histogram, histogram_csv(statistic, tickets.token_ids))
    if cost_path:
        memory, kind = peak_memory(torch.device("cpu"))
        stage.write_json(cost_path, {"pair": pair, "rows": before.shape[0], "d": before.shape[1],
                                     "ks_test_seconds": round(test_seconds, 4),
                                     "stage_seconds": round(time.perf_counter() - stage_start, 2),
                                     "peak_memory_bytes": memory, "memory_kind": kind,
                                     "machine": machine(torch.device("cpu")), **numerics.record()})
    stage.log.info("%s: %d tickets at alpha %g (%d rows significant, %d moved, of %d)", pair, record["n_tickets"],
                   params.alpha, record["n_significant"], record["n_moved"], record["vocab_size"])
    stage.log.info("first tickets: %s", " ".join(repr(s) for s in strings[:20]))
    stage.log.info("tickets by class: %s", ", ".join(f"{name} {record[f'n_{name}']}" for name in TOKEN_CLASSES))


if __name__ == "__main__":
    stage.run(main)
