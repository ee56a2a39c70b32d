"""Tests for tools/build_corpus.py, without apt or network.

The fixture under tests/fixtures/corpus/ mirrors the real package layouts:
two help pages in libreoffice-help-en-us and libreoffice-help-ca, and a tiny
Romanian catalog (tiny.mo, built from tiny.po beside it) in
libreoffice-l10n-ro. Each paragraph of the help pages exercises one rule;
the page text says which.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "corpus"
ENGLISH_HELP = FIXTURE / "libreoffice-help-en-us/usr/share/libreoffice/help/en-US/text"
CATALAN_HELP = FIXTURE / "libreoffice-help-ca/usr/share/libreoffice/help/ca/text"
ROMANIAN_CATALOGS = FIXTURE / "libreoffice-l10n-ro/usr/lib/libreoffice/program/resource/ro/LC_MESSAGES"


def load_build_corpus():
    """Import tools/build_corpus.py by path: tools/ is not a package."""
    spec = importlib.util.spec_from_file_location("build_corpus", REPO_ROOT / "tools" / "build_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_corpus"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


build_corpus = load_build_corpus()


# --- help pages: parsing and alignment --------------------------------------


def test_help_tree_is_keyed_by_page_path_and_paragraph_id_in_document_order():
    english = build_corpus.read_help_tree(ENGLISH_HELP)

    assert list(english)[:3] == [
        ("shared/01/save.html", "hd_id200"),
        ("shared/01/save.html", "par_id201"),
        ("shared/01/save.html", "par_id202"),
    ]
    assert ("swriter/guide/numbering.html", "par_id101") in english


def test_help_page_markup_is_stripped_and_entities_decoded():
    english = build_corpus.read_help_tree(ENGLISH_HELP)
    page = "swriter/guide/numbering.html"

    assert english[(page, "par_id101")] == "LibreOffice can number paragraphs & headings while you type."
    # <br> becomes a space; an escaped "<Enter>" is text, not a tag.
    assert english[(page, "par_id103")] == "Type a number, then press <Enter> to start the list."


def test_switch_keeps_only_the_default_case():
    english = build_corpus.read_help_tree(ENGLISH_HELP)

    assert english[("swriter/guide/numbering.html", "par_id102")] == "Press Ctrl+Enter to insert a manual page break."


def test_chrome_code_embedded_copies_and_repeated_ids_are_left_out():
    english = build_corpus.read_help_tree(ENGLISH_HELP)
    page = "swriter/guide/numbering.html"

    assert (page, "par_id_chrome") not in english  # outside div#DisplayArea
    assert (page, "par_id108") not in english  # class="code"
    assert (page, "par_id900") not in english  # inside div.embedded
    assert english[(page, "par_id101")].startswith("LibreOffice can number")  # first of two par_id101


def test_align_pairs_shared_ids_only_in_english_order():
    english = build_corpus.read_help_tree(ENGLISH_HELP)
    catalan = build_corpus.read_help_tree(CATALAN_HELP)

    pairs = build_corpus.align(english, catalan)

    assert ("Only the English package has this paragraph.", "") not in pairs
    assert all("Només el paquet català" not in target for _, target in pairs)
    assert pairs[0] == ("Save", "Desa")
    assert ("Press Ctrl+Enter to insert a manual page break.",
            "Premeu Ctrl+Retorn per a inserir un salt de pàgina manual.") in pairs
    assert len(pairs) == len(set(english) & set(catalan))


def test_help_fixture_end_to_end_keeps_the_four_good_pairs():
    pairs = build_corpus.align(build_corpus.read_help_tree(ENGLISH_HELP), build_corpus.read_help_tree(CATALAN_HELP))

    kept, dropped = build_corpus.filter_pairs(pairs)

    assert kept == [
        ("Saves the current document.", "Desa el document actual."),
        ("LibreOffice can number paragraphs & headings while you type.",
         "El LibreOffice pot numerar paràgrafs i encapçalaments mentre escriviu."),
        ("Press Ctrl+Enter to insert a manual page break.",
         "Premeu Ctrl+Retorn per a inserir un salt de pàgina manual."),
        ("Type a number, then press <Enter> to start the list.",
         "Escriviu un número i premeu <Retorn> per a començar la llista."),
    ]
    assert dropped == Counter({
        build_corpus.EMPTY_SIDE: 1,
        build_corpus.IDENTICAL_SIDES: 1,
        build_corpus.TOO_SHORT: 2,  # the two headings
        build_corpus.TOO_LONG: 1,
        build_corpus.LENGTH_MISMATCH: 1,
        build_corpus.DUPLICATE_PAIR: 1,
        build_corpus.ENGLISH_ALREADY_PAIRED: 1,
    })


# --- catalogs ----------------------------------------------------------------


def test_mo_entries_keep_context_and_singular_forms():
    entries = build_corpus.parse_mo((ROMANIAN_CATALOGS / "tiny.mo").read_bytes())
    by_context = {entry.context: entry for entry in entries}

    assert "" not in {entry.english for entry in entries}  # header skipped
    assert by_context["STR_PAGES"].english == "%1 page was printed in total"
    assert by_context["STR_PAGES"].translation == "%1 pagină a fost tipărită în total"


def test_mo_rejects_other_files():
    with pytest.raises(ValueError, match="not a .mo file"):
        build_corpus.parse_mo(b"<html>" * 10)


def test_catalog_strings_lose_accelerators_markup_and_product_variables():
    pairs = dict(build_corpus.read_catalogs(ROMANIAN_CATALOGS))

    assert pairs[("tiny.mo", "STR_SAVE_DOC")] == (
        "Save the current document to a file", "Salvează documentul curent într-un fișier")
    assert pairs[("tiny.mo", "newdialog|filename")] == (
        "File name for the new document:", "Nume de fișier pentru noul document:")
    # In a dialog string "~" is literal; only "_" marks the accelerator there.
    assert pairs[("tiny.mo", "smathsettings|norightspaces")][0] == "Ignore ~~ and ' at the end of the line"
    assert pairs[("tiny.mo", "STR_FILE_NOT_FOUND")] == (
        "LibreOffice could not find the file %1.", "LibreOffice nu a putut găsi fișierul %1.")
    assert pairs[("tiny.mo", "STR_CREATE_ERROR")][0] == (
        "The file could not be created. Please check the free disk space.")


def test_catalog_filtering_drops_variable_only_and_untranslated_strings():
    pairs = [texts for _key, texts in build_corpus.read_catalogs(ROMANIAN_CATALOGS)]

    kept, dropped = build_corpus.filter_pairs(pairs)

    kept_english = {english for english, _ in kept}
    assert "Align %1 to %2" not in kept_english  # two words once %1, %2 are not counted
    assert "Microsoft Word 2007-365 Template" not in kept_english  # msgstr == msgid
    assert dropped == Counter({build_corpus.TOO_SHORT: 1, build_corpus.IDENTICAL_SIDES: 1})
    assert len(kept) == 6


# --- cleaning and filters, one rule at a time --------------------------------


def test_clean_text_substitutes_product_names_and_collapses_whitespace():
    assert build_corpus.clean_text("  $[officename]\tand\n%PRODUCTNAME\u00a0 Writer\u200b ") == (
        "LibreOffice and LibreOffice Writer")
    assert build_corpus.clean_text("$[nombre de la oficina] Calc") == "LibreOffice Calc"


def test_strip_markup_keeps_angle_bracketed_ui_text():
    assert build_corpus.strip_markup("<b>Bold</b> &amp; <None>") == "Bold & <None>"


def test_gtk_mnemonics_keep_a_doubled_underscore():
    assert build_corpus.remove_accelerators("_Save as file__name", uses_gtk_mnemonics=True) == "Save as file_name"
    assert build_corpus.remove_accelerators("~Save as file_name", uses_gtk_mnemonics=False) == "Save as file_name"


@pytest.mark.parametrize(
    ("pair", "reason"),
    [
        (("Choose a file to open.", ""), "EMPTY_SIDE"),
        (("", "Trieu un fitxer per obrir."), "EMPTY_SIDE"),
        (("See the [text/shared/01/x.xhp#y not found] page.", "Vegeu la pàgina [text/shared/01/x.xhp#y not found]."),
         "BUILD_ERROR_MARKER"),
        (("Choose a file to open.", "choose a  FILE to open."), "IDENTICAL_SIDES"),
        (("Open a file.", "Obre un fitxer."), "TOO_SHORT"),
        ((" ".join(["word"] * 61), " ".join(["paraula"] * 61)), "TOO_LONG"),
        (("Choose a file to open.", "Trieu."), "LENGTH_MISMATCH"),
    ],
)
def test_each_filter_drops_its_pair(pair, reason):
    kept, dropped = build_corpus.filter_pairs([pair])

    assert kept == []
    assert dropped == Counter({getattr(build_corpus, reason): 1})


def test_length_limits_are_inclusive():
    four = ("Choose a file now.", "Trieu un fitxer ara.")
    sixty = (" ".join(["word"] * 60), " ".join(["paraula"] * 60))

    kept, _ = build_corpus.filter_pairs([four, sixty])

    assert kept == [four, sixty]


def test_duplicates_keep_the_first_translation_of_each_english_sentence():
    first = ("Choose a file to open.", "Trieu un fitxer per obrir.")
    other_translation = ("Choose a file to open.", "Seleccioneu un fitxer per obrir.")

    kept, dropped = build_corpus.filter_pairs([first, first, other_translation])

    assert kept == [first]
    assert dropped == Counter({build_corpus.DUPLICATE_PAIR: 1, build_corpus.ENGLISH_ALREADY_PAIRED: 1})


# --- output ------------------------------------------------------------------


def test_tsv_is_two_columns_no_header_newline_terminated(tmp_path):
    pairs = [("Choose a file to open.", "Trieu un fitxer per obrir."), ("Save it now, please.", "Deseu-lo ara.")]
    path = tmp_path / "en-ca.tsv"

    build_corpus.write_tsv(pairs, path)

    raw = path.read_bytes()
    assert raw == "Choose a file to open.\tTrieu un fitxer per obrir.\nSave it now, please.\tDeseu-lo ara.\n".encode()
    assert [line.split("\t") for line in raw.decode("utf-8").splitlines()] == [list(pair) for pair in pairs]
    assert [p.name for p in tmp_path.iterdir()] == ["en-ca.tsv"]  # no temporary file left behind


@pytest.mark.parametrize("bad_field", ["tab\there", "line\nbreak", "line\u2028separator"])
def test_tsv_refuses_fields_that_would_break_lines_or_columns(bad_field):
    with pytest.raises(ValueError, match="tab or line break"):
        build_corpus.format_tsv([(bad_field, "ok")])


def test_build_writes_all_outputs_from_package_trees(tmp_path, monkeypatch):
    """The whole build, with apt replaced by the fixture trees."""
    monkeypatch.setattr(build_corpus, "ensure_available", lambda packages: None)
    monkeypatch.setattr(
        build_corpus, "download_and_extract", lambda package, workdir: ("4:7.4.7-1+test", FIXTURE / package)
    )
    out_dir = tmp_path / "corpus"

    reports = build_corpus.build(out_dir, ["en-ca", "en-ro"], tmp_path / "work")

    assert sorted(p.name for p in out_dir.iterdir()) == ["LICENSE", "SOURCES.md", "en-ca.tsv", "en-ro.tsv"]
    assert [(report.pair, report.kept) for report in reports] == [("en-ca", 4), ("en-ro", 6)]
    assert (out_dir / "en-ca.tsv").read_text(encoding="utf-8").splitlines()[0] == (
        "Saves the current document.\tDesa el document actual.")
    sources = (out_dir / "SOURCES.md").read_text(encoding="utf-8")
    assert "| libreoffice-help-ca | 4:7.4.7-1+test |" in sources
    assert "| en-ro.tsv | UI catalogs (.mo) | 8 | 6 |" in sources
    license_text = (out_dir / "LICENSE").read_text(encoding="utf-8")
    assert "https://mozilla.org/MPL/2.0/" in license_text
    assert "License: MPL-2.0" in license_text and "GPL-2+" not in license_text


def test_unavailable_package_is_named_with_the_fix(monkeypatch):
    monkeypatch.setattr(build_corpus, "candidate_version", lambda package: None)
    monkeypatch.setattr(build_corpus.os, "geteuid", lambda: 1000)

    with pytest.raises(build_corpus.BuildError, match="libreoffice-help-ca.*apt-get update"):
        build_corpus.ensure_available(["libreoffice-help-ca"])


def test_missing_apt_is_reported_by_name(monkeypatch):
    monkeypatch.setattr(build_corpus.shutil, "which", lambda command: None)

    result = CliRunner().invoke(build_corpus.main, ["--out", "unused"])

    assert result.exit_code == 1
    assert "apt-get, apt-cache, dpkg-deb not found" in result.output


def test_cli_rejects_unknown_pairs():
    result = CliRunner().invoke(build_corpus.main, ["--out", "unused", "--pairs", "en-ca,en-xx"])

    assert result.exit_code == 2
    assert "en-xx" in result.output
