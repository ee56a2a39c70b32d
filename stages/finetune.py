"""DVC stages embed-finetune, ticket-finetune, baseline and control: train one method on one pair.

Every method goes through the same loop (kslottery.train); the method only decides, through its
surgery (kslottery.methods), which parameters train and how the result is saved. After every epoch
and at the last step the model translates the dev split (params evaluate.dev_limit): the dev scores
go to --dev-csv, and the last ones to the training metrics.
"""

import hashlib
import json
from pathlib import Path

import click
import torch

from kslottery import stage
from kslottery.cards import git_revision, model_card
from kslottery.corpus import SentencePair, read_pairs
from kslottery.ks import most_frequent_rows, random_rows
from kslottery.methods import TOKEN_METHODS, TRAINED_METHODS, prepare, save_trained
from kslottery.models import load_saved, saved_vocab_size
from kslottery.params import EvalParams
from kslottery.prompts import encode_pairs, format_prompt, token_counts
from kslottery.scoring import score
from kslottery.train import Checkpoint, train
from kslottery.translate import translate


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--method", required=True, type=click.Choice(TRAINED_METHODS))
@click.option("--seed", required=True, type=click.IntRange(min=0),
              help="Training seed (one of params `seeds`): batch order, initial weights, random-k rows.")
@click.option("--base", required=True, type=click.Path(exists=True), help="Base model directory (prepare-model).")
@click.option("--data", required=True, type=click.Path(exists=True), help="Prepared splits directory.")
@click.option("--tickets", type=click.Path(exists=True), help="tickets.json (ticket rows, and k for the controls).")
@click.option("--out", required=True, type=click.Path(), help="Directory for what the method trained.")
@click.option("--metrics", required=True, type=click.Path(), help="Training metrics JSON.")
@click.option("--loss-csv", required=True, type=click.Path(), help="Loss per step (DVC plot data).")
@click.option("--dev-csv", type=click.Path(), help="Dev chrF++ and BLEU per epoch (DVC plot data).")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(),
              help="Checkpoint file (default: .OUT.checkpoint.pt beside --out); deleted once the outputs are written.")
def main(params_path, pair, method, seed, base, data, tickets, out, metrics, loss_csv, dev_csv, checkpoint_path):
    params = stage.start(params_path, f"finetune {method} seed {seed}", pair, seed=seed)
    config = params.train_params(method)
    ticket_rows = None
    if method in TOKEN_METHODS:  # read and check the tickets before any model is loaded
        if tickets is None:
            raise click.UsageError(f"--tickets is required for {method}")
        ticket_rows = [t["token_id"] for t in json.loads(Path(tickets).read_text())["tickets"]]
        if not ticket_rows:
            raise click.ClickException(f"{tickets} holds no tickets: no row is significant at alpha={params.alpha}; "
                                       "raise alpha or train embed-finetune longer")
        vocab_size = saved_vocab_size(base)
        if vocab_size is not None and (len(ticket_rows) > vocab_size or max(ticket_rows) >= vocab_size):
            raise click.ClickException(f"{tickets}: {len(ticket_rows)} tickets up to row {max(ticket_rows)} do not fit "
                                       f"the {vocab_size}-row vocabulary of {base}; rerun ks-select on this model")
    model, tokenizer = load_saved(base)
    train_pairs = read_pairs(Path(data) / "train.tsv")
    dev_pairs = read_pairs(Path(data) / "dev.tsv")[: params.evaluate.dev_limit]
    if not dev_pairs and params.evaluate.dev_limit != 0:
        stage.log.warning("%s has no dev pairs (data.dev_size: 0): no dev scores", Path(data) / "dev.tsv")
    examples = encode_pairs(tokenizer, train_pairs, pair, params.prompt.template, config.max_length)

    rows = None
    if ticket_rows is not None:
        k, vocab_size = len(ticket_rows), model.get_input_embeddings().weight.shape[0]
        rows = {
            "ticket": lambda: ticket_rows,
            "random-k": lambda: random_rows(vocab_size, k, seed=seed).tolist(),
            "frequent-k": lambda: most_frequent_rows(token_counts(tokenizer, [p.target for p in train_pairs]), k).tolist(),
        }[method]()
        seen = {t for e in examples for t in e.input_ids}
        stage.log.info("%s: %d rows (k = %d tickets), %d of them occur in the training examples", method,
                       len(rows), k, len(seen.intersection(rows)))

    torch.manual_seed(seed)  # LoRA and prefix-tuning draw their initial weights here
    model = prepare(method, model, params.baseline, rows)
    checkpoint = None
    if params.checkpoint_every:
        rows_digest = hashlib.sha256(json.dumps(sorted(rows or [])).encode()).hexdigest()
        checkpoint = Checkpoint(Path(checkpoint_path or Path(out).parent / f".{Path(out).name}.checkpoint.pt"),
                                every=params.checkpoint_every, key=f"{method} {pair} rows {rows_digest}")
    evaluate = dev_scorer(tokenizer, dev_pairs, pair, params.prompt.template, params.evaluate, method) if dev_pairs else None
    result = train(model, examples, config, tokenizer.pad_token_id, seed=seed, desc=f"{method} {pair} seed {seed}",
                   checkpoint=checkpoint, evaluate=evaluate)
    if not result.main_process:
        return  # the other processes of a multi-process run: the main one writes
    info = {"pair": pair, "seed": seed, "trainable_params": result.trainable_params}
    if rows is not None:
        info["token_ids"] = sorted(rows)
    card = model_card(method, info, params.method_settings(method) | {"seed": seed}, result.metrics(), params.model.source, base, out, git_revision())
    with stage.atomic_dir(out) as tmp:
        save_trained(model, method, tmp, info, state_dict=result.gathered_state)
        (tmp / "README.md").write_text(card, encoding="utf-8")  # replaces peft's empty template
    stage.write_json(metrics, result.metrics())
    stage.write_text(loss_csv, result.loss_csv())
    if dev_csv:
        stage.write_text(dev_csv, result.dev_csv())
    if checkpoint is not None:
        checkpoint.discard()
    stage.log.info("saved %s to %s", method, out)


def dev_scorer(tokenizer, dev_pairs: list[SentencePair], pair: str, template: str, settings: EvalParams, method: str):
    """model -> {chrf++, bleu} on the dev pairs, decoded as the evaluate stage decodes the test set."""
    prompts = [format_prompt(template, pair, p.source) for p in dev_pairs]
    references = [p.target for p in dev_pairs]

    def evaluate(model) -> dict:
        hypotheses = translate(model, tokenizer, prompts, settings.batch_size, settings.max_new_tokens,
                               desc=f"dev {pair} {method}", num_beams=settings.num_beams)
        scores = score(hypotheses, references)
        return {"chrf++": scores["chrf++"], "bleu": scores["bleu"]}

    return evaluate


if __name__ == "__main__":
    stage.run(main)
