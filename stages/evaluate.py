"""DVC stages evaluate and evaluate-base: translate the test split with one method's model and score it."""

from pathlib import Path

import click

from kslottery.pipeline import stage
from kslottery.data.corpus import read_pairs
from kslottery.evaluation.decode import decode_and_score, write_translations
from kslottery.config.registry import BASE, names, run_entry, split_run
from kslottery.model.loading import saved_parameter_count
from kslottery.model.saved import load_trained, read_manifest


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--method", required=True, callback=lambda ctx, param, value: checked_run(value),
              help=f"Name recorded in the metrics ({', '.join(names())}; METHOD@PATTERN for a target method); "
                   "must be what --model holds.")
@click.option("--base", required=True, type=click.Path(exists=True), help="Base model directory (prepare-model).")
@click.option("--model", "method_dir", type=click.Path(exists=True), help="What the method trained; omit for the base model.")
@click.option("--data", required=True, type=click.Path(exists=True), help="Prepared splits directory.")
@click.option("--out", required=True, type=click.Path(), help="Metrics JSON to write.")
@click.option("--translations", required=True, type=click.Path(), help="TSV of source, reference, hypothesis.")
def main(params_path, pair, method, base, method_dir, data, out, translations):
    params = stage.start(params_path, "evaluate", pair)
    manifest = read_manifest(method_dir) if method_dir else {"method": BASE, "trainable_params": 0}
    if manifest["method"] != method:
        raise click.ClickException(f"--method {method} but {method_dir or 'no --model'} holds {manifest['method']!r}; "
                                   "pass the directory that method wrote (or no --model for base)")
    test = read_pairs(Path(data) / "test.tsv")[: params.evaluate.limit]
    model, tokenizer = load_trained(base, method_dir, merge=True)
    hypotheses, scores = decode_and_score(model, tokenizer, test, pair, params.prompt.template, params.evaluate,
                                          desc=f"translate {pair} {method}")
    total = saved_parameter_count(base)  # the base model's size, whatever the method adds
    rows = len(manifest["token_ids"]) if "token_ids" in manifest else manifest.get("rows")  # token or target rows
    stage.write_json(out, {"pair": pair, "method": method, "seed": manifest.get("seed"), **scores,
                           "trainable_params": manifest["trainable_params"], "total_params": total, "rows": rows})
    write_translations(translations, test, hypotheses)
    stage.log.info("%s %s: chrF++ %.2f (first line), %.2f (whole continuation); BLEU %.2f, %.2f; %d sentences",
                   pair, method, scores["chrf++"], scores["whole_chrf++"], scores["bleu"], scores["whole_bleu"], len(test))


def checked_run(run: str) -> str:
    """A method name, or METHOD@PATTERN for a target method."""
    name, target = split_run(run)
    if name not in names():
        raise click.BadParameter(f"{run!r}: unknown method {name!r}; known: {', '.join(names())}")
    if run_entry(run).target != (target is not None):
        raise click.BadParameter(f"{run!r}: target methods are named METHOD@PATTERN, the others by their name alone")
    return run


if __name__ == "__main__":
    stage.run(main)
