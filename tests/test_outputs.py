"""An output folder is replaced only when this project wrote it, never when it holds the working
directory, a stage input or a repository, and the swap never leaves a moment with neither folder."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from kslottery.atomic import MARKER, OutputError, atomic_dir, check_output_dir, remove_stale_temporaries
from kslottery.cli import main

REPO = Path(__file__).resolve().parents[1]


def written(path: Path, text: str) -> Path:
    with atomic_dir(path) as tmp:
        (tmp / "weights").write_text(text)
    return path


def test_a_folder_this_project_wrote_is_replaced_whole(tmp_path):
    out = written(tmp_path / "model", "old")
    assert (out / MARKER).is_file()
    written(out, "new")
    assert (out / "weights").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (written(empty, "w") / "weights").read_text() == "w"


@pytest.mark.parametrize("case", ["user folder", "file", "repository", "working directory", "input"])
def test_what_is_not_ours_is_refused_before_the_block_and_kept(tmp_path, monkeypatch, case):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    inputs = ()
    if case == "file":
        (out / "mine.txt").unlink()
        out.rmdir()
        out.write_text("keep me")
    elif case == "repository":
        (out / MARKER).write_text("")  # even with a marker: a repository is never an output
        (out / ".git").mkdir()
    elif case == "working directory":
        (out / MARKER).write_text("")
        (out / "sub").mkdir()
        monkeypatch.chdir(out / "sub")
    elif case == "input":
        (out / MARKER).write_text("")
        inputs = (out / "train.tsv",)
    ran = []
    with pytest.raises(OutputError, match=r"--out .*out"):
        with atomic_dir(out, inputs) as tmp:
            ran.append(tmp)
    assert not ran  # refused before the block: no work done
    assert (out.read_text() if out.is_file() else (out / "mine.txt").read_text()) == "keep me"


def test_a_kill_between_the_two_renames_leaves_the_old_folder_aside_and_the_next_write_restores_it(tmp_path):
    out = written(tmp_path / "model", "old")
    aside = tmp_path / ".model.k1ll3d.old"
    os.rename(out, aside)  # where a SIGKILL after the first rename of the swap leaves things
    remove_stale_temporaries(out)
    assert (out / "weights").read_text() == "old" and not aside.exists()
    os.rename(written(tmp_path / "spare", "old"), aside)  # killed after the second rename: both there
    remove_stale_temporaries(out)
    assert not aside.exists() and (out / "weights").read_text() == "old"


def test_prepare_data_refuses_to_write_over_the_corpus_or_the_working_directory(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "en-ca.tsv").write_text("One.\tU.\n" * 3, encoding="utf-8")
    (corpus / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for out in ("corpus", "."):
        result = runner.invoke(main, ["prepare-data", "--params", str(REPO / "params.yaml"), "--pair", "en-ca",
                                      "--corpus", "corpus/en-ca.tsv", "--out", out])
        assert result.exit_code == 1 and result.output.count("\n") == 1 and "--out" in result.output, result.output
        assert "Traceback" not in result.output
    assert sorted(p.name for p in corpus.iterdir()) == ["en-ca.tsv", "notes.txt"]
    assert (corpus / "notes.txt").read_text() == "mine"


def test_check_output_dir_accepts_a_new_path(tmp_path):
    check_output_dir(tmp_path / "new" / "deeper")  # nothing there yet: fine
