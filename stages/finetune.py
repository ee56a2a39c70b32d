"""DVC stages embed-finetune, baseline, ticket-finetune and target-*: train one method on one pair, one seed.

Every method goes through the same loop (kslottery.training.loop); the method only decides, through its
surgery (kslottery.model.surgery), which parameters train and how the result is saved. A token method
(the tickets and their controls) reads tickets.json for its rows or its k and picks its rows by its
own rule (src/kslottery/methods/NAME.py); a target method (KS beyond the embedding) trains the linear
matrices of a `--target` pattern: every row (`target-tuned`), or the rows of its target-tickets JSON
(`target-ticket`). After every epoch and at
the last step the model translates the dev split (params evaluate.dev_limit): the dev scores go to
--dev-csv, and the last ones to the training metrics.
"""

import hashlib
import json
from pathlib import Path

import kslottery  # noqa: F401 (first of all: it pins portable CPU kernels before torch loads)
import click
import torch

from kslottery import numerics
from kslottery.config.registry import method as registry_entry, names, run_name, trained
from kslottery.data.corpus import read_pairs
from kslottery.data.prompts import encode_pairs
from kslottery.data.training_tokens import TrainingTokens
from kslottery.evaluation.decode import dev_scorer
from kslottery.model.cards import model_card
from kslottery.model.loading import load_saved
from kslottery.model.saved import save_trained
from kslottery.model.surgery import prepare
from kslottery.model.targets import row_count, rows_to_train
from kslottery.pipeline import stage
from kslottery.pipeline.inputs import check_target, read_target_tickets, read_tickets
from kslottery.training.checkpoint import Checkpoint
from kslottery.training.cost import disk_bytes
from kslottery.training.loop import train


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--method", required=True, type=click.Choice(names(trained)))
@click.option("--seed", required=True, type=click.IntRange(min=0),
              help="Training seed (one of params `seeds`): batch order, initial weights, random-k rows.")
@click.option("--base", required=True, type=click.Path(exists=True), help="Base model directory (prepare-model).")
@click.option("--data", required=True, type=click.Path(exists=True), help="Prepared splits directory.")
@click.option("--tickets", type=click.Path(exists=True),
              help="tickets.json (ticket rows, and k for the controls); target-tickets JSON for target-ticket.")
@click.option("--target", help="Target methods: the ks.target module pattern whose matrices train.")
@click.option("--out", required=True, type=click.Path(), help="Directory for what the method trained.")
@click.option("--metrics", required=True, type=click.Path(), help="Training metrics JSON.")
@click.option("--loss-csv", required=True, type=click.Path(), help="Loss per step (DVC plot data).")
@click.option("--dev-csv", type=click.Path(), help="Dev chrF++ and BLEU per epoch (DVC plot data).")
@click.option("--cost", "cost_path", type=click.Path(),
              help="What training cost on this machine: s per step, peak memory, gradient and optimizer bytes, "
                   "size on disk (JSON; not deterministic, so not in --metrics).")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(),
              help="Checkpoint file (default: .OUT.checkpoint.pt beside --out); deleted once the outputs are written.")
@click.option("--stop-after", type=click.IntRange(min=1),
              help="Stop after this many steps, on the full run's schedule: its first steps, to check them "
                   "against a committed run (tools/rederive.py); not a run of its own.")
def main(params_path, pair, method, seed, base, data, tickets, out, metrics, loss_csv, dev_csv, cost_path,
         checkpoint_path, target, stop_after):
    params = stage.start(params_path, f"finetune {run_name(method, target)} seed {seed}", pair, seed=seed)
    entry, settings = registry_entry(method), params.train_settings(method)
    inputs = (base, data, tickets)
    stage.check_output_dir(out, inputs)
    winners = read_tickets(tickets, method, base, params.alpha) if entry.needs_tickets else None
    check_target(entry, params, target, base)  # from the config alone: before loading
    target_rows = read_target_tickets(tickets) if entry.needs_target_tickets else None
    model, tokenizer = load_saved(base)
    train_pairs = read_pairs(Path(data) / "train.tsv")
    dev_pairs = read_pairs(Path(data) / "dev.tsv")[: params.evaluate.dev_limit]
    if not dev_pairs and params.evaluate.dev_limit != 0:
        stage.log.warning("%s has no dev pairs (data.dev_size: 0): no dev scores", Path(data) / "dev.tsv")
    examples = encode_pairs(tokenizer, train_pairs, pair, params.prompt.template, settings.max_length)

    rows = None
    if winners is not None:
        tokens = TrainingTokens.of(examples, tokenizer)
        rows = entry.rows(winners, model.get_input_embeddings().weight.shape[0], seed, tokens)
        seen = set(tokens.seen().tolist())
        stage.log.info("%s: %d rows (k = %d tickets), %d of them occur in the training examples", method,
                       len(rows), len(winners), len(seen.intersection(rows)))

    if entry.target:  # {module: None (every row) or its ticket rows}
        rows = rows_to_train(model, target, target_rows)
        target_info = {"target": target, "modules": sorted(rows), "rows": row_count(model, rows)}
        stage.log.info("%s: %d matrices, %d rows", run_name(method, target), len(rows), target_info["rows"])

    torch.manual_seed(seed)  # LoRA and prefix-tuning draw their initial weights here
    model = prepare(method, model, params.method_section(method), rows)
    checkpoint = None
    if params.checkpoint_every and stop_after is None:
        rows_digest = hashlib.sha256(json.dumps(rows if isinstance(rows, dict) else sorted(rows or []),
                                                sort_keys=True).encode()).hexdigest()
        checkpoint = Checkpoint(Path(checkpoint_path or Path(out).parent / f".{Path(out).name}.checkpoint.pt"),
                                every=params.checkpoint_every, key=f"{run_name(method, target)} {pair} rows {rows_digest}")
    evaluate = (dev_scorer(tokenizer, dev_pairs, pair, params.prompt.template, params.evaluate, f"dev {pair} {method}")
                if dev_pairs else None)
    result = train(model, examples, settings, tokenizer.pad_token_id, seed=seed, desc=f"{method} {pair} seed {seed}",
                   checkpoint=checkpoint, evaluate=evaluate if stop_after is None else None, stop_after=stop_after)
    if not result.main_process:
        return  # the other processes of a multi-process run: the main one writes
    info = {"pair": pair, "seed": seed, "trainable_params": result.trainable_params}
    if entry.target:
        info |= target_info
    elif rows is not None:
        info["token_ids"] = sorted(rows)
    card = model_card(run_name(method, target), info, params.method_settings(method) | {"seed": seed}, result.metrics(),
                      params.model.source, base, out, numerics.record())
    with stage.atomic_dir(out, inputs) as tmp:
        save_trained(model, run_name(method, target), tmp, info, state_dict=result.gathered_state)
        (tmp / "README.md").write_text(card, encoding="utf-8")  # replaces peft's empty template
    stage.write_json(metrics, result.metrics())
    stage.write_text(loss_csv, result.loss_csv())
    if dev_csv:
        stage.write_text(dev_csv, result.dev_csv())
    if cost_path:
        stage.write_json(cost_path, result.cost().record(pair=pair, seed=seed, method=run_name(method, target),
                                                         saved_bytes=disk_bytes(out), **numerics.record()))
    if checkpoint is not None:
        checkpoint.discard()
    stage.log.info("saved %s to %s", run_name(method, target), out)


if __name__ == "__main__":
    stage.run(main)
