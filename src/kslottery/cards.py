"""Model cards: the README.md written into every trained method's output directory.

A card says what the directory holds (method, pair, seed, base model), how it was trained (the
settings, the training curve's ends, the dev score after training, the git revision of the code),
and how to load it in three lines. Test scores are not in it: they come later, from the evaluate
stage, and the card names where.
"""

from __future__ import annotations

import json
import subprocess

from kslottery.methods import run_entry
from kslottery.surgery import EMBEDDING_FILE, TARGET_FILE


def git_revision() -> str:
    """HEAD of the repository the stage runs in, or 'unknown' outside one."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def load_snippet(method: str, base_dir: str, out_dir: str) -> str:
    """Three lines of Python that load what `method` (a run name) saved in out_dir."""
    saved_as = run_entry(method).saved_as
    if saved_as == "model":
        return (f'from transformers import AutoModelForCausalLM, AutoTokenizer\n'
                f'model = AutoModelForCausalLM.from_pretrained("{out_dir}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{base_dir}")')
    if saved_as == "embedding":
        return (f'from kslottery.surgery import load_trained\n'
                f'model, tokenizer = load_trained("{base_dir}", "{out_dir}")  # the base model, this embedding copied in\n'
                f'# or by hand: model.get_input_embeddings().weight.data = safetensors.torch.load_file("{out_dir}/{EMBEDDING_FILE}")["weight"]')
    if saved_as in ("weights", "rows"):
        return (f'from kslottery.surgery import load_trained\n'
                f'model, tokenizer = load_trained("{base_dir}", "{out_dir}")  # the base model, these matrices or rows written in\n'
                f'# {TARGET_FILE} holds NAME.weight (every row) or NAME.rows and NAME.delta (W[rows] += delta)')
    assert saved_as == "adapter", method
    return (f'from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n'
            f'model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base_dir}"), "{out_dir}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{base_dir}")')


def model_card(method: str, manifest: dict, settings: dict, training: dict, base_source: str, base_dir: str,
               out_dir: str, revision: str) -> str:
    """The README.md of a trained method's directory (deterministic for a given revision); `method`
    is the run name (METHOD@PATTERN for a target method)."""
    pair, seed = manifest["pair"], manifest["seed"]
    entry = run_entry(method)
    lines = [
        "---",
        "library_name: " + ("peft" if entry.saved_as == "adapter" else "transformers"),
        f"base_model: {base_dir}",
        "tags: [ks-lottery, translation, " + method + "]",
        "---",
        "",
        f"# ks-lottery: {method}, {pair}, seed {seed}",
        "",
        f"This directory holds {entry.description}, trained to translate {pair} (prompt plus target, loss on the",
        f"target only). Base model: `{base_dir}`, prepared from `{base_source}` with its output layer untied.",
        "",
        "## Load it",
        "",
        "```python",
        load_snippet(method, base_dir, out_dir),
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
    if "dev_chrf++" in training:
        lines.append(f"- dev split after training: chrF++ {training['dev_chrf++']}, BLEU {training['dev_bleu']} "
                     f"(the score learning rates are chosen on)")
    lines += [
        f"- code: git revision `{revision}` of the ks-lottery repository",
        "",
        "## Scores",
        "",
        f"The evaluate stage writes them: `metrics/eval/{pair}/s{seed}/{method}.json` (BLEU, chrF++ on the",
        "held-out test split); `results/table.md` compares every method.",
        "",
    ]
    return "\n".join(lines)
