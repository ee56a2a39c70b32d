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
    ],
)
def test_bad_lines_are_reported_with_file_and_line(tmp_path, content, message):
    (tmp_path / "a.tsv").write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        read_pairs(tmp_path / "a.tsv")


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
