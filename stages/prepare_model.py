"""DVC stage prepare-model: fetch the base model, untie lm_head, save it as plain safetensors."""

from pathlib import Path

import click

from kslottery.pipeline import stage
from kslottery.model.loading import count_parameters, load_source_model, save_model


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Directory for the saved base model.")
def main(params_path, out):
    params = stage.start(params_path, "prepare-model")
    inputs = [params.model.source] if Path(params.model.source).exists() else []  # a local model directory
    stage.check_output_dir(out, inputs)
    model, tokenizer = load_source_model(params.model)
    _, total = count_parameters(model)
    embedding = model.get_input_embeddings().weight
    stage.log.info("loaded %s: %s parameters, vocabulary %d x %d, %s", params.model.source, f"{total:,}",
                   *embedding.shape, embedding.dtype)
    with stage.atomic_dir(out, inputs) as tmp:
        save_model(model, tokenizer, tmp)
    stage.log.info("saved the untied base model to %s", out)


if __name__ == "__main__":
    stage.run(main)
