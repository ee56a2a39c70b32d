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


def read_pairs(path: str | Path) -> list[SentencePair]:
    """Read `source<TAB>target` lines (.tsv) or {"source":..,"target":..} objects (.jsonl)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such corpus file; build it with `python tools/build_corpus.py` or fix the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise CorpusError(f"{path}:{line}: not valid UTF-8 ({err.reason}); re-encode the file as UTF-8") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                record = json.loads(line)
                source, target = record["source"], record["target"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise CorpusError(f'{path}:{number}: expected a JSON object with "source" and "target"') from None
        else:
            fields = line.split("\t")
            if len(fields) != 2:
                raise CorpusError(f"{path}:{number}: expected source<TAB>target, found {len(fields) - 1} tab(s)")
            source, target = fields
        source, target = source.strip(), target.strip()
        if not source or not target:
            side = "source" if not source else "target"
            raise CorpusError(f"{path}:{number}: empty {side} side; remove the line or fill it in")
        pairs.append(SentencePair(source, target))
    return pairs


def write_pairs(pairs: list[SentencePair], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(f"{pair.source}\t{pair.target}\n")


def clean(pairs: list[SentencePair], max_source_words: int) -> list[SentencePair]:
    """Drop over-long sources and keep one translation per source sentence (the first)."""
    seen: set[str] = set()
    kept = []
    for pair in pairs:
        key = pair.source.casefold()
        if key in seen or len(pair.source.split()) > max_source_words:
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
