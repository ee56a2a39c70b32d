"""DVC stage certify@pair-seed: the embedding-tuned model with every non-ticket row reverted to the base.

Compares it with the embedding-tuned model on the test set: teacher-forced next-token agreement,
next-token accuracy of each, and the BLEU/chrF++ of its translations against the embedding-tuned
model's (from evaluate@{pair}-{seed}-embed). Also records how far the reverted rows had moved and
how many of them the T3 bound of docs/certification.md proves to be non-tickets by size alone.
"""

import json
from pathlib import Path

import click
import torch

from kslottery import stage
from kslottery.certify import (accuracy, agreement, critical_statistic, greedy_next_tokens, keep_rows,
                               ks_shift_bound, reverted_shift_summary)
from kslottery.corpus import read_pairs
from kslottery.methods import load_embedding
from kslottery.models import load_saved
from kslottery.prompts import encode_pairs, format_prompt
from kslottery.scoring import score
from kslottery.translate import translate


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--base", required=True, type=click.Path(exists=True), help="Base model directory (prepare-model).")
@click.option("--embed", required=True, type=click.Path(exists=True), help="embed-finetune output directory.")
@click.option("--tickets", required=True, type=click.Path(exists=True), help="tickets.json from ks-select.")
@click.option("--embed-metrics", required=True, type=click.Path(exists=True), help="evaluate@{pair}-embed metrics JSON.")
@click.option("--data", required=True, type=click.Path(exists=True), help="Prepared splits directory.")
@click.option("--out", required=True, type=click.Path(), help="Certification metrics JSON.")
@click.option("--translations", required=True, type=click.Path(), help="TSV of the reverted model's translations.")
def main(params_path, pair, base, embed, tickets, embed_metrics, data, out, translations):
    params = stage.start(params_path, "certify", pair)
    rows = [t["token_id"] for t in json.loads(Path(tickets).read_text())["tickets"]]
    test = read_pairs(Path(data) / "test.tsv")[: params.evaluate.limit]
    model, tokenizer = load_saved(base)
    embedding = model.get_input_embeddings().weight
    base_rows, tuned = embedding.detach().clone(), load_embedding(embed).to(embedding)
    before, after = base_rows.float().numpy(), tuned.float().numpy()  # (V, d) each
    shift = reverted_shift_summary(before, after, rows)
    moved = (before != after).any(axis=1)
    moved[rows] = False  # the reverted rows
    d_crit = critical_statistic(before.shape[1], params.alpha)
    small_move = int((ks_shift_bound(before[moved], after[moved]) < d_crit).sum())  # T3: not tickets by size
    examples = encode_pairs(tokenizer, test, pair, params.prompt.template, params.embed_finetune.max_length)
    batch_size = params.evaluate.batch_size

    with torch.no_grad():
        embedding.copy_(tuned)
    tuned_predictions = greedy_next_tokens(model, examples, tokenizer.pad_token_id, batch_size, f"certify {pair} embed")
    with torch.no_grad():
        embedding.copy_(keep_rows(base_rows, tuned, rows))
    kept_predictions = greedy_next_tokens(model, examples, tokenizer.pad_token_id, batch_size, f"certify {pair} tickets")

    prompts = [format_prompt(params.prompt.template, pair, p.source) for p in test]
    hypotheses = translate(model, tokenizer, prompts, batch_size, params.evaluate.max_new_tokens,
                           desc=f"translate {pair} embed with only ticket rows", num_beams=params.evaluate.num_beams)
    kept_scores = score(hypotheses, [p.target for p in test], params.evaluate.spbleu_tokenizer)
    embed_scores = json.loads(Path(embed_metrics).read_text())
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
        "critical_D": round(d_crit, 6),
        "reverted_rows_below_T3_bound": small_move,
        **shift,
    }
    stage.write_json(out, result)
    stage.write_translations(translations, test, hypotheses)
    stage.log.info("%s: %d moved non-ticket rows reverted (l2 shift mean %.3g, max %.3g; tickets' mean %.3g); "
                   "%d of them moved too little to reach D_crit = %.4f (T3)", pair, shift["reverted_rows"],
                   shift["reverted_l2_mean"], shift["reverted_l2_max"], shift["ticket_l2_mean"], small_move, d_crit)
    stage.log.info("%s: reverting all but %d ticket rows keeps %.1f%% of next-token predictions; chrF++ %.2f -> %.2f",
                   pair, len(rows), 100 * result["next_token_agreement"], embed_scores["chrf++"], kept_scores["chrf++"])


if __name__ == "__main__":
    stage.run(main)
