"""DVC stage prepare-data@pair: clean the parallel corpus and cut seeded train/dev/test splits."""

import click

from kslottery import corpus, stage


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path())
@click.option("--pair", required=True)
@click.option("--corpus", "corpus_path", required=True, type=click.Path(), help="source<TAB>target file (.tsv or .jsonl).")
@click.option("--out", required=True, type=click.Path(), help="Directory for train.tsv, dev.tsv, test.tsv.")
def main(params_path, pair, corpus_path, out):
    params = stage.start(params_path, "prepare-data", pair)
    data = params.data
    try:
        pairs = corpus.clean(corpus.read_pairs(corpus_path), data.max_source_words)
        splits = corpus.split(pairs, {"train": data.train_size, "dev": data.dev_size, "test": data.test_size}, data.seed)
    except corpus.CorpusError as err:
        where = "" if str(err).startswith(str(corpus_path)) else f"{corpus_path}: "  # read_pairs names file:line
        raise click.ClickException(f"{where}{err}") from None
    with stage.atomic_dir(out) as tmp:
        for name, rows in splits.items():
            corpus.write_pairs(rows, tmp / f"{name}.tsv")
    sizes = ", ".join(f"{name} {len(rows)}" for name, rows in splits.items())
    stage.log.info("%s: %d usable pairs -> %s (in %s)", pair, len(pairs), sizes, out)


if __name__ == "__main__":
    stage.run(main)
