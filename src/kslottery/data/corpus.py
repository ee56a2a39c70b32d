"""Parallel text: read local TSV/JSONL pairs, clean, split with a seed, guard against contamination.

Never tokenizes: splits are sentences, so that any model and any prompt can use them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from kslottery import KSLotteryError

SPLITS = ("train", "dev", "test")


class CorpusError(KSLotteryError, ValueError):
    """Bad parallel text; the message names the file and line."""


@dataclass(frozen=True)
class SentencePair:
    source: str
    target: str


HEADERS = {("source", "target"), ("src", "tgt"), ("src", "trg"), ("en", "ca")}
"""First lines that name the columns instead of holding a pair (compared case-insensitively)."""


def read_pairs(path: str | Path) -> list[SentencePair]:
    """Read `source<TAB>target` lines (.tsv) or {"source":..,"target":..} objects (.jsonl).

    Lines end at "\n" only ("\r\n" too): a form feed or U+2028 inside a sentence stays in it. A
    UTF-8 byte order mark is dropped; a header line, NUL bytes, a missing or non-string side are
    refused with the file and line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such corpus file; build it with `python tools/build_corpus.py` or fix the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise CorpusError(f"{path}:{line}: not valid UTF-8 ({err.reason}); re-encode the file as UTF-8") from None
    pairs = []
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if "\x00" in line:
            raise CorpusError(f"{path}:{number}: holds a NUL byte (a binary file, or UTF-16?); save it as UTF-8 text")
        source, target = _fields(path, number, line)
        if number == 1 and (source.strip().casefold(), target.strip().casefold()) in HEADERS:
            raise CorpusError(f"{path}:1: a header line ({source.strip()!r}, {target.strip()!r}), not a pair; "
                              "delete it (the file holds pairs only)")
        source, target = source.strip(), target.strip()
        if not source or not target:
            side = "source" if not source else "target"
            raise CorpusError(f"{path}:{number}: empty {side} side; remove the line or fill it in")
        pairs.append(SentencePair(source, target))
    return pairs


def _fields(path: Path, number: int, line: str) -> tuple[str, str]:
    """The two sides of one line of a .jsonl or .tsv corpus file."""
    if path.suffix == ".jsonl":
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}:{number}: not JSON ({err.msg}); write one "
                              '{"source": "...", "target": "..."} object per line') from None
        if not isinstance(record, dict) or not {"source", "target"} <= record.keys():
            raise CorpusError(f'{path}:{number}: expected a JSON object with "source" and "target"')
        for side in ("source", "target"):
            if not isinstance(record[side], str):
                raise CorpusError(f'{path}:{number}: "{side}" is {json.dumps(record[side])}, not a string; '
                                  "write the sentence as a JSON string")
        return record["source"], record["target"]
    fields = line.split("\t")
    if len(fields) != 2:
        raise CorpusError(f"{path}:{number}: expected source<TAB>target, found {len(fields) - 1} tab(s)")
    return fields[0], fields[1]


def write_pairs(pairs: list[SentencePair], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(f"{pair.source}\t{pair.target}\n")


def clean(pairs: list[SentencePair], max_source_words: int, max_target_words: int | None = None) -> list[SentencePair]:
    """Drop pairs whose source (or target) has more words than the limit, and keep one translation
    per source sentence (the first)."""
    seen: set[str] = set()
    kept = []
    for pair in pairs:
        key = pair.source.casefold()
        if key in seen or len(pair.source.split()) > max_source_words:
            continue
        if max_target_words is not None and len(pair.target.split()) > max_target_words:
            continue
        seen.add(key)
        kept.append(pair)
    return kept


def split(pairs: list[SentencePair], sizes: dict[str, int], seed: int) -> dict[str, list[SentencePair]]:
    """Shuffle with `seed`, then cut test, dev and train (in that order, so test is stable when
    train_size grows). Raises if the corpus is too small or a test source also appears in train."""
    needed = sum(sizes.values())
    if needed > len(pairs):
        wanted = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise CorpusError(f"corpus has {len(pairs)} usable pairs but the splits need {needed} ({wanted}); "
                          "lower data.train_size/dev_size/test_size")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    result, start = {}, 0
    for name in ("test", "dev", "train"):
        result[name] = [pairs[i] for i in order[start:start + sizes[name]]]
        start += sizes[name]
    check_contamination(result["train"], result["test"])
    return result


def check_contamination(train: list[SentencePair], test: list[SentencePair]) -> None:
    train_sources = {p.source.casefold() for p in train}
    leaked = [p.source for p in test if p.source.casefold() in train_sources]
    if leaked:
        raise CorpusError(f"{len(leaked)} test source sentence(s) also appear in train, e.g. {leaked[0]!r}; "
                          "deduplicate the corpus before splitting")


# ---------------------------------------------------------------------------------------------
# Flores: dev and test sets from a hub dataset (or a local directory in the same format)

FLORES_CONFIGS = {
    "flores101": {"en": "eng", "ca": "cat", "es": "spa", "de": "deu", "ro": "ron", "fr": "fra", "it": "ita",
                  "pt": "por", "nl": "nld", "pl": "pol", "cs": "ces", "ru": "rus", "zh": "zho_simpl", "ja": "jpn"},
    "flores200": {"en": "eng_Latn", "ca": "cat_Latn", "es": "spa_Latn", "de": "deu_Latn", "ro": "ron_Latn",
                  "fr": "fra_Latn", "it": "ita_Latn", "pt": "por_Latn", "nl": "nld_Latn", "pl": "pol_Latn",
                  "cs": "ces_Latn", "ru": "rus_Cyrl", "zh": "zho_Hans", "ja": "jpn_Jpan"},
}


def flores_pairs(pair: str, dataset: str, split: str, codes: str = "flores101", column: str = "sentence",
                 revision: str | None = None) -> list[SentencePair]:
    """Sentence i of the source language's config beside sentence i of the target's, from
    `datasets.load_dataset(dataset, config, split=split)`: a hub id (Flores-101 is gsarti/flores_101,
    read from its parquet export) or a local directory whose README declares the same configs."""
    from datasets import load_dataset  # heavy; only this path needs it

    sides = []
    for language in pair.split("-"):
        config = FLORES_CONFIGS[codes].get(language)
        if config is None:
            raise CorpusError(f"no {codes} config is known for language {language!r}; "
                              f"known: {', '.join(FLORES_CONFIGS[codes])}")
        where = f"{dataset} (config {config}, split {split}{f', revision {revision}' if revision else ''})"
        try:
            rows = load_dataset(dataset, config, split=split, revision=revision)
        except Exception as err:  # datasets raises many kinds; each names the problem
            raise CorpusError(f"{where}: cannot load it ({type(err).__name__}: {err}); check data.flores "
                              "(dataset, revision, codes, splits), or put the dataset in a local directory") from None
        if column not in rows.column_names:
            raise CorpusError(f"{where}: no column {column!r} (it has {', '.join(rows.column_names)}); "
                              "set data.flores.column")
        sides.append([str(text).strip() for text in rows[column]])
    source, target = sides
    if len(source) != len(target):
        raise CorpusError(f"{dataset} split {split}: {len(source)} {pair.split('-')[0]} sentences but "
                          f"{len(target)} {pair.split('-')[1]}; the two configs must align line by line")
    pairs = [SentencePair(s, t) for s, t in zip(source, target)]
    empty = next((i for i, p in enumerate(pairs) if not p.source or not p.target), None)
    if empty is not None:
        raise CorpusError(f"{dataset} split {split}: sentence {empty} is empty on one side")
    return pairs


def split_with_held_out(pairs: list[SentencePair], dev: list[SentencePair], test: list[SentencePair],
                        train_size: int, seed: int) -> tuple[dict[str, list[SentencePair]], int]:
    """Train drawn (seeded) from `pairs` without any pair whose source is a dev or test source;
    dev and test as given. Returns the splits and how many pairs were dropped for overlapping."""
    held_out = {p.source.casefold() for p in dev + test}
    kept = [p for p in pairs if p.source.casefold() not in held_out]
    if train_size > len(kept):
        raise CorpusError(f"corpus has {len(kept)} usable pairs (after removing {len(pairs) - len(kept)} that "
                          f"are dev/test sentences) but train_size is {train_size}; lower data.train_size")
    order = list(range(len(kept)))
    random.Random(seed).shuffle(order)
    splits = {"train": [kept[i] for i in order[:train_size]], "dev": dev, "test": test}
    check_contamination(splits["train"], test)
    return splits, len(pairs) - len(kept)
