import pytest

from kslottery.data.corpus import CorpusError, SentencePair, check_contamination, clean, read_pairs, split


def test_reads_tsv_and_jsonl(tmp_path):
    (tmp_path / "a.tsv").write_text("Hello world.\tHola món.\n\nOpen the file.\tObre el fitxer.\n", encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"source": "Hello world.", "target": "Hola món."}\n', encoding="utf-8")
    assert read_pairs(tmp_path / "a.tsv") == [SentencePair("Hello world.", "Hola món."), SentencePair("Open the file.", "Obre el fitxer.")]
    assert read_pairs(tmp_path / "a.jsonl") == [SentencePair("Hello world.", "Hola món.")]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"Good line.\tBona.\nno tab here\n", "a.tsv:2: expected source<TAB>target, found 0 tab"),
        (b"Good line.\tBona.\nA\tB\tC\n", "a.tsv:2: expected source<TAB>target, found 2 tab"),
        (b"Good line.\tBona.\n \tBona.\n", "a.tsv:2: empty source side"),
        (b"Good line.\t\n", "a.tsv:1: empty target side"),
        (b"Good line.\tBona.\nCaf\xe9\tCaf\xe8\n", "a.tsv:2: not valid UTF-8"),
        (b"source\ttarget\nGood line.\tBona.\n", "a.tsv:1: a header line"),
        (b"\xef\xbb\xbfSource\tTarget\nGood line.\tBona.\n", "a.tsv:1: a header line"),
        (b"Good line.\tBona.\nNUL\x00 here\tB\n", "a.tsv:2: holds a NUL byte"),
        (b'{"source": "Good.", "target": "Bona."}\n{"source": 5, "target": "Cinc."}\n', 'a.jsonl:2: "source" is 5'),
        (b'{"source": "Good.", "target": null}\n', 'a.jsonl:1: "target" is null'),
        (b'{"source": "Good.", "target": "Bona."}\n{"source": "Cut', "a.jsonl:2: not JSON"),
        (b'["Good.", "Bona."]\n', 'a.jsonl:1: expected a JSON object with "source" and "target"'),
    ],
)
def test_bad_lines_are_reported_with_file_and_line(tmp_path, content, message):
    name = "a.jsonl" if content.startswith((b"{", b"[")) else "a.tsv"
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        read_pairs(tmp_path / name)


def test_lines_end_at_newline_only_and_a_byte_order_mark_is_dropped(tmp_path):
    """A form feed, U+2028 or U+0085 inside a sentence is part of it (str.splitlines would cut there);
    CRLF endings and a UTF-8 BOM are read as the plain file."""
    text = "\ufeffPage\x0cbreak.\tSalt\x0cde pàgina.\r\nLine\u2028separator.\tSeparador\u0085de línia.\r\n"
    (tmp_path / "a.tsv").write_text(text, encoding="utf-8", newline="")
    assert read_pairs(tmp_path / "a.tsv") == [SentencePair("Page\x0cbreak.", "Salt\x0cde pàgina."),
                                              SentencePair("Line\u2028separator.", "Separador\u0085de línia.")]


def test_long_targets_are_dropped_like_long_sources():
    data = [SentencePair("Short.", "Curt."), SentencePair("Also short.", " ".join(["mot"] * 500))]
    assert clean(data, max_source_words=40, max_target_words=150) == [data[0]]
    assert clean(data, max_source_words=40) == data  # no target limit given: kept


def test_missing_corpus_names_the_builder(tmp_path):
    with pytest.raises(CorpusError, match="build_corpus.py"):
        read_pairs(tmp_path / "none.tsv")


def pairs(n):
    return [SentencePair(f"Sentence number {i} here.", f"Frase número {i}.") for i in range(n)]


def test_split_is_seeded_disjoint_and_sized():
    data = pairs(100)
    first = split(data, {"train": 60, "dev": 10, "test": 20}, seed=1)
    again = split(data, {"train": 60, "dev": 10, "test": 20}, seed=1)
    other = split(data, {"train": 60, "dev": 10, "test": 20}, seed=2)
    assert first == again and first["test"] != other["test"]
    assert [len(first[k]) for k in ("train", "dev", "test")] == [60, 10, 20]
    sources = [p.source for k in first for p in first[k]]
    assert len(sources) == len(set(sources))
    # growing train leaves test unchanged
    assert split(data, {"train": 70, "dev": 10, "test": 20}, seed=1)["test"] == first["test"]


def test_split_refuses_too_small_corpus():
    with pytest.raises(CorpusError, match="lower data.train_size"):
        split(pairs(10), {"train": 8, "dev": 1, "test": 2}, seed=0)


def test_contamination_is_an_error():
    train = [SentencePair("Open the file.", "Obre el fitxer.")]
    with pytest.raises(CorpusError, match="also appear in train"):
        check_contamination(train, [SentencePair("open the file.", "x")])


def test_clean_dedupes_sources_and_drops_long_ones():
    data = [SentencePair("One two three four.", "a"), SentencePair("one two three four.", "b"),
            SentencePair(" ".join(["w"] * 50), "c")]
    assert clean(data, max_source_words=40) == [data[0]]
