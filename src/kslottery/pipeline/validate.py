"""What `ksl validate` checks beyond the params file itself: everything a stage would die on that
can be known before any training (the files the params name, the corpora of the pairs, the model
source and the device, LoRA and ks.target modules, max_length against the prepared prompts).

Only `ksl validate` imports this module, so a new check reruns no stage.
"""

from __future__ import annotations

from pathlib import Path

from kslottery.config.params import Params, ParamsError, load_params
from kslottery.config.registry import LoraSettings, names, trained
from kslottery.data.corpus import read_pairs
from kslottery.model.loading import source_problems, top_k_problem
from kslottery.model.targets import lora_problems, target_problems
from kslottery.pipeline.launch import config_problems


def corpus_problems(params: Params, corpus_dir: str | Path) -> list[str]:
    """Pairs whose corpus prepare-data would read (corpus_dir/PAIR.tsv, as dvc.yaml names it) is missing."""
    return [f"pairs: {pair} has no corpus {Path(corpus_dir) / f'{pair}.tsv'} (prepare-data@{pair} reads it); "
            f"build it with `python tools/build_corpus.py --out {corpus_dir}`, add your own, or remove the pair"
            for pair in params.pairs if not (Path(corpus_dir) / f"{pair}.tsv").is_file()]


def max_length_problems(params: Params, base: str | Path, prepared: str | Path) -> list[str]:
    """Training max_lengths that leave no room for a target after the longest prompt of the prepared
    splits (checked once models/base and data/prepared/PAIR exist; nothing to check before)."""
    from transformers import AutoTokenizer

    from kslottery.data.prompts import longest_prompt  # noqa: I001 (with the tokenizer: only when both exist)

    splits = [path for pair in params.pairs for path in sorted((Path(prepared) / pair).glob("*.tsv"))]
    if not (Path(base) / "tokenizer_config.json").is_file() or not splits:
        return []
    tokenizer = AutoTokenizer.from_pretrained(base)
    longest = max(longest_prompt(tokenizer, read_pairs(path), path.parent.name, params.prompt.template)
                  for path in splits)
    lengths = {name: params.train_settings(name).max_length for name in names(trained)}
    short = sorted({length for length in lengths.values() if length <= longest})
    return [f"max_length: {length} (of {', '.join(m for m, n in lengths.items() if n == length)}) leaves no room "
            f"for the target after the longest prompt of {prepared} ({longest} tokens); raise train.max_length "
            f"(or the method's own) above {longest}" for length in short]


def validate(params_path: str | Path, base: str | Path, corpus_dir: str | Path, prepared: str | Path,
             model_check: bool = True) -> tuple[Params | None, list[str]]:
    """The params (None if they do not load) and every problem found, one line each with key, value
    and fix; `model_check` False skips the model source and device (another machine's params)."""
    try:
        params, problems, sections = load_params(params_path), [], None
    except ParamsError as err:
        params, problems, sections = None, list(err.problems), err.sections
    sections = sections if params is None else {"model": params.model, "accelerate": params.accelerate}
    if model_check and "model" in sections:
        problems += source_problems(sections["model"])
    if "accelerate" in sections:
        problems += config_problems(sections["accelerate"])
    if params is None:
        return None, problems
    if problem := top_k_problem(params, base):
        problems.append(problem)
    problems += target_problems(params.ks.target, base)
    for section, settings in params.train.sections.items():  # LoRA's: the modules its adapters wrap
        if isinstance(settings, LoraSettings):
            problems += lora_problems(settings.targets, base, key=f"train.{section}.targets")
    problems += corpus_problems(params, corpus_dir)
    problems += max_length_problems(params, base, prepared)
    return params, problems
