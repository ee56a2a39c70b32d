"""DVC stage ticket-finetune@pair: from the base model, train only the ticket rows (a peft adapter)."""

import json
from pathlib import Path

import click

from kslottery import stage
from kslottery.corpus import read_pairs
from kslottery.methods import prepare_tokens, save_trained
from kslottery.models import load_saved
from kslottery.prompts import encode_pairs
from kslottery.train import train


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--base", required=True, type=click.Path(exists=True), help="Base model directory (prepare-model).")
@click.option("--data", required=True, type=click.Path(exists=True), help="Prepared splits directory.")
@click.option("--tickets", required=True, type=click.Path(exists=True), help="tickets.json from ks-select.")
@click.option("--out", required=True, type=click.Path(), help="Directory for the ticket adapter.")
@click.option("--metrics", required=True, type=click.Path(), help="Training metrics JSON.")
@click.option("--loss-csv", required=True, type=click.Path(), help="Loss per step (DVC plot data).")
def main(params_path, pair, base, data, tickets, out, metrics, loss_csv):
    params = stage.start(params_path, "ticket-finetune", pair)
    config = params.ticket_finetune
    token_ids = [t["token_id"] for t in json.loads(Path(tickets).read_text())["tickets"]]
    if not token_ids:
        raise click.ClickException(f"{tickets} holds no tickets: no row is significant at alpha={params.alpha}; "
                                   "raise alpha or train embed-finetune longer")
    model, tokenizer = load_saved(base)
    examples = encode_pairs(tokenizer, read_pairs(Path(data) / "train.tsv"), pair, params.prompt.template, config.max_length)
    model = prepare_tokens(model, token_ids)
    result = train(model, examples, config, tokenizer.pad_token_id, desc=f"ticket-finetune {pair} ({len(token_ids)} rows)")
    with stage.atomic_dir(out) as tmp:
        save_trained(model, "ticket", tmp, {"pair": pair, "trainable_params": result.trainable_params,
                                            "token_ids": sorted(token_ids)})
    stage.write_json(metrics, result.metrics())
    stage.write_text(loss_csv, result.loss_csv())
    stage.log.info("saved the ticket adapter to %s", out)


if __name__ == "__main__":
    main()
