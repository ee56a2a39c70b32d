"""Model cards: the README.md written into every trained method's output directory.

A card says what the directory holds (method, pair, seed, base model), how it was trained (the
settings, the training curve's ends, the dev score after training) and how to load it in three lines.
A card is a function of the stage's deps and params alone (no git revision, no clock, no machine),
so equal weights give an equal folder md5; the code's identity is in dvc.lock. Test scores are not
in it: they come later, from the evaluate stage, and the card names where.
"""

from __future__ import annotations

import json

from kslottery.config.registry import run_entry
from kslottery.model.saved import form_of


def model_card(method: str, manifest: dict, settings: dict, training: dict, base_source: str, base_dir: str,
               out_dir: str, numerics: dict | None = None) -> str:
    """The README.md of a trained method's directory; `method` is the run name (METHOD@PATTERN for a
    target method)."""
    pair, seed = manifest["pair"], manifest["seed"]
    entry, form = run_entry(method), form_of(method)
    lines = [
        "---",
        f"library_name: {form.library}",
        f"base_model: {base_dir}",
        "tags: [ks-lottery, translation, " + method + "]",
        "---",
        "",
        f"# ks-lottery: {method}, {pair}, seed {seed}",
        "",
        f"This directory holds what method `{method}` trained (saved as: {entry.saved_as}), to translate {pair}",
        "(prompt plus target, loss on the target only); `src/kslottery/methods/" + entry.name + ".py` says what it is.",
        f"Base model: `{base_dir}`, prepared from `{base_source}` with its output layer untied.",
        "",
        "## Load it",
        "",
        "```python",
        form.snippet(base_dir, out_dir),
        "```",
        "",
        "## Training",
        "",
        f"- trainable parameters: {training['trainable_params']:,} of {training['total_params']:,}",
        f"- steps: {training['steps']}, loss {training['first_loss']} at the first step, "
        f"{training['final_loss']} over the last ten",
        f"- settings: `{json.dumps(settings, sort_keys=True)}`",
    ]
    if entry.needs_tickets:
        lines.append(f"- rows trained: {len(manifest['token_ids'])} (their ids are in `method.json`)")
    if entry.target:
        lines.append(f"- rows trained: {manifest['rows']:,} output units, in {len(manifest['modules'])} matrices "
                     f"named by `{manifest['target']}` (their names are in `method.json`)")
    if numerics:  # which kernels computed it: portable ones give the same bytes on any AVX2 machine
        lines.append(f"- numerics: {numerics['numerics']} (torch CPU kernels {numerics['cpu_capability']}, "
                     f"MKL_CBWR {numerics.get('mkl_cbwr') or 'unset'})")
    if "dev_chrf++" in training:
        lines.append(f"- dev split after training: chrF++ {training['dev_chrf++']}, BLEU {training['dev_bleu']} "
                     f"(the score learning rates are chosen on)")
    lines += [
        "",
        "## Scores",
        "",
        f"The evaluate stage writes them: `metrics/eval/{pair}/s{seed}/{method}.json` (BLEU, chrF++ on the",
        "held-out test split); `results/table.md` compares every method.",
        "",
    ]
    return "\n".join(lines)
