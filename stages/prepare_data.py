"""DVC stage prepare-data@pair: clean the parallel corpus and cut seeded train/dev/test splits.

With data.flores set, dev and test come from that Flores dataset instead, and train from the corpus."""

import click

from kslottery.data import corpus
from kslottery.pipeline import stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--corpus", "corpus_path", required=True, type=click.Path(), help="source<TAB>target file (.tsv or .jsonl).")
@click.option("--out", required=True, type=click.Path(), help="Directory for train.tsv, dev.tsv, test.tsv.")
def main(params_path, pair, corpus_path, out):
    params = stage.start(params_path, "prepare-data", pair)
    stage.check_output_dir(out, [corpus_path])
    data = params.data
    try:
        read = corpus.read_pairs(corpus_path)
        pairs = corpus.clean(read, data.max_source_words, data.max_target_words)
        long_targets = sum(len(p.target.split()) > data.max_target_words for p in read)
        if long_targets:
            stage.log.info("%s: %d pairs dropped for a target of more than %d words (data.max_target_words)",
                           corpus_path, long_targets, data.max_target_words)
        if data.flores is None:
            splits = corpus.split(pairs, {"train": data.train_size, "dev": data.dev_size, "test": data.test_size},
                                  data.seed)
        else:
            splits = flores_splits(pair, pairs, data)
    except corpus.CorpusError as err:
        named = (str(corpus_path), data.flores.dataset) if data.flores else (str(corpus_path),)
        where = "" if str(err).startswith(named) or "config is known" in str(err) else f"{corpus_path}: "
        raise click.ClickException(f"{where}{err}") from None
    with stage.atomic_dir(out, [corpus_path]) as tmp:
        for name, rows in splits.items():
            corpus.write_pairs(rows, tmp / f"{name}.tsv")
    sizes = ", ".join(f"{name} {len(rows)}" for name, rows in splits.items())
    stage.log.info("%s: %d usable pairs -> %s (in %s)", pair, len(pairs), sizes, out)


def flores_splits(pair, pairs, data):
    """dev and test: the first dev_size/test_size sentences of the Flores splits; train: the corpus."""
    flores = data.flores
    held_out = {}
    for name, split, size in (("dev", flores.dev_split, data.dev_size), ("test", flores.test_split, data.test_size)):
        sentences = corpus.flores_pairs(pair, flores.dataset, split, flores.codes, flores.column, flores.revision)
        if size > len(sentences):
            raise corpus.CorpusError(f"{flores.dataset} split {split} has {len(sentences)} sentences but "
                                     f"data.{name}_size is {size}; lower it (at most {len(sentences)})")
        held_out[name] = sentences[:size]
    splits, dropped = corpus.split_with_held_out(pairs, held_out["dev"], held_out["test"], data.train_size, data.seed)
    stage.log.info("%s: dev and test from %s (%s, %s); %d corpus pairs dropped for being dev/test sentences",
                   pair, flores.dataset, flores.dev_split, flores.test_split, dropped)
    return splits


if __name__ == "__main__":
    stage.run(main)
