"""DVC stage embed-finetune@pair: tune only the input embedding on the pair's training data."""

from pathlib import Path

import click

from kslottery import stage
from kslottery.corpus import read_pairs
from kslottery.methods import prepare_embed, save_trained
from kslottery.models import load_saved
from kslottery.prompts import encode_pairs
from kslottery.train import train


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--base", required=True, type=click.Path(exists=True), help="Base model directory (prepare-model).")
@click.option("--data", required=True, type=click.Path(exists=True), help="Prepared splits directory.")
@click.option("--out", required=True, type=click.Path(), help="Directory for the tuned embedding.")
@click.option("--metrics", required=True, type=click.Path(), help="Training metrics JSON.")
@click.option("--loss-csv", required=True, type=click.Path(), help="Loss per step (DVC plot data).")
def main(params_path, pair, base, data, out, metrics, loss_csv):
    params = stage.start(params_path, "embed-finetune", pair)
    config = params.embed_finetune
    model, tokenizer = load_saved(base)
    examples = encode_pairs(tokenizer, read_pairs(Path(data) / "train.tsv"), pair, params.prompt.template, config.max_length)
    model = prepare_embed(model)
    result = train(model, examples, config, tokenizer.pad_token_id, desc=f"embed-finetune {pair}")
    with stage.atomic_dir(out) as tmp:
        save_trained(model, "embed", tmp, {"pair": pair, "trainable_params": result.trainable_params})
    stage.write_json(metrics, result.metrics())
    stage.write_text(loss_csv, result.loss_csv())
    stage.log.info("saved the tuned embedding to %s", out)


if __name__ == "__main__":
    main()
