"""DVC stage certify@pair-seed: test the tickets alone; the embedding-tuned model with every non-ticket row
reverted to the base.

Compares it with the embedding-tuned model on the test set: teacher-forced next-token agreement,
next-token accuracy of each, and the BLEU/chrF++ of its translations against the embedding-tuned
model's (from evaluate@{pair}-{seed}-embed). Also records how far the reverted rows had moved and
how many of them the T3 bound of docs/certification.md proves to be non-tickets by size alone
(kslottery.lottery.certify.shift_certificate).
"""

from pathlib import Path

import kslottery  # noqa: F401 (first of all: it pins portable CPU kernels before torch loads)
import click
import torch

from kslottery.pipeline import stage
from kslottery.lottery.certify import accuracy, agreement, greedy_next_tokens, keep_rows, shift_certificate
from kslottery.data.corpus import read_pairs
from kslottery.evaluation.decode import decode_and_score, write_translations
from kslottery.config.registry import KS_SOURCE
from kslottery.model.loading import load_saved
from kslottery.data.prompts import encode_pairs
from kslottery.model.saved import load_embedding
from kslottery.lottery.tickets import read_tickets_file, ticket_rows


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--base", required=True, type=click.Path(exists=True), help="Base model directory (prepare-model).")
@click.option("--embed", required=True, type=click.Path(exists=True), help="The embedding-tuned output (embed-finetune@PAIR-SEED).")
@click.option("--tickets", required=True, type=click.Path(exists=True), help="tickets.json from ks-select.")
@click.option("--embed-metrics", required=True, type=click.Path(exists=True), help="evaluate@{pair}-{seed}-embed metrics JSON.")
@click.option("--data", required=True, type=click.Path(exists=True), help="Prepared splits directory.")
@click.option("--out", required=True, type=click.Path(), help="Certification metrics JSON.")
@click.option("--translations", required=True, type=click.Path(), help="TSV of the reverted model's translations.")
def main(params_path, pair, base, embed, tickets, embed_metrics, data, out, translations):
    params = stage.start(params_path, "certify", pair)
    rows = ticket_rows(read_tickets_file(tickets))
    test = read_pairs(Path(data) / "test.tsv")[: params.evaluate.limit]
    model, tokenizer = load_saved(base)
    embedding = model.get_input_embeddings().weight
    base_rows, tuned = embedding.detach().clone(), load_embedding(embed).to(embedding)
    certificate = shift_certificate(base_rows.float().numpy(), tuned.float().numpy(), rows, params.alpha)
    examples = encode_pairs(tokenizer, test, pair, params.prompt.template, params.train_settings(KS_SOURCE).max_length)
    batch_size = params.evaluate.batch_size

    with torch.no_grad():
        embedding.copy_(tuned)
    tuned_predictions = greedy_next_tokens(model, examples, tokenizer.pad_token_id, batch_size, f"certify {pair} embed")
    with torch.no_grad():
        embedding.copy_(keep_rows(base_rows, tuned, rows))
    kept_predictions = greedy_next_tokens(model, examples, tokenizer.pad_token_id, batch_size, f"certify {pair} tickets")
    hypotheses, kept_scores = decode_and_score(model, tokenizer, test, pair, params.prompt.template, params.evaluate,
                                               desc=f"translate {pair} embed with only ticket rows")
    embed_scores = stage.read_json(embed_metrics, "rerun the embedding's evaluation (`dvc repro evaluate`)")
    result = {
        "pair": pair,
        "n_tickets": len(rows),
        "next_token_agreement": round(agreement(tuned_predictions, kept_predictions), 4),
        "next_token_accuracy_embed": round(accuracy(tuned_predictions, examples), 4),
        "next_token_accuracy_tickets_only": round(accuracy(kept_predictions, examples), 4),
        "bleu_embed": embed_scores["bleu"],
        "bleu_tickets_only": kept_scores["bleu"],
        "chrf++_embed": embed_scores["chrf++"],
        "chrf++_tickets_only": kept_scores["chrf++"],
        "chrf++_difference": round(kept_scores["chrf++"] - embed_scores["chrf++"], 2),
        **certificate,
    }
    stage.write_json(out, result)
    write_translations(translations, test, hypotheses)
    stage.log.info("%s: %d moved non-ticket rows reverted (l2 shift mean %.3g, max %.3g; tickets' mean %.3g); "
                   "%d of them moved too little to reach D_crit = %.4f (T3)", pair, result["reverted_rows"],
                   result["reverted_l2_mean"], result["reverted_l2_max"], result["ticket_l2_mean"],
                   result["reverted_rows_below_T3_bound"], result["critical_D"])
    stage.log.info("%s: reverting all but %d ticket rows keeps %.1f%% of next-token predictions; chrF++ %.2f -> %.2f",
                   pair, len(rows), 100 * result["next_token_agreement"], embed_scores["chrf++"], kept_scores["chrf++"])


if __name__ == "__main__":
    stage.run(main)
