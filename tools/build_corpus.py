"""Build the small English→{ca,es,de,ro} parallel corpus under data/corpus/.

The corpus comes from Debian's LibreOffice packages because they are
MPL-2.0 licensed, versioned, and fetchable with nothing but apt:

* English→Catalan/Spanish/German: the offline help (``libreoffice-help-*``).
  Debian ships it as pre-rendered HTML, one page per help topic, and every
  language package contains the same page paths with the same paragraph ids
  (``par_id…``/``hd_id…``, inherited from the .xhp sources). A paragraph is
  therefore aligned by (page path, paragraph id), with no sentence aligner.
* English→Romanian: Debian has no Romanian help package, so the pairs come
  from the UI translation catalogs in ``libreoffice-l10n-ro``: gettext ``.mo``
  files whose msgid is the English string and whose msgstr is Romanian.

Packages are downloaded with ``apt-get download`` and unpacked with
``dpkg-deb -x`` into a scratch directory; nothing is installed.

Rebuild with::

    python tools/build_corpus.py --out data/corpus

The file reads top to bottom: text cleaning, help-page parsing, catalog
parsing, alignment and filtering, output writing, fetching packages, and the
command line. Everything above "Fetching packages" is pure and tested without
apt in tests/tools/test_build_corpus.py.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable, Iterator

import click

# --------------------------------------------------------------------------
# What the corpus is made of
# --------------------------------------------------------------------------

ENGLISH_HELP_PACKAGE = "libreoffice-help-en-us"
ENGLISH_HELP_LANGUAGE_DIR = "en-US"

# target language → (Debian package, language directory inside the package).
# libreoffice-help-ca also ships ca-valencia; only the "ca" tree is used.
HELP_PACKAGES = {
    "ca": ("libreoffice-help-ca", "ca"),
    "es": ("libreoffice-help-es", "es"),
    "de": ("libreoffice-help-de", "de"),
}

# target language → (Debian package, language directory of its .mo catalogs).
CATALOG_PACKAGES = {
    "ro": ("libreoffice-l10n-ro", "ro"),
}

ALL_PAIRS = ("en-ca", "en-es", "en-de", "en-ro")

HELP_ROOT = Path("usr/share/libreoffice/help")
CATALOG_ROOT = Path("usr/lib/libreoffice/program/resource")

MIN_ENGLISH_WORDS = 4
MAX_ENGLISH_WORDS = 60

# A translation more than this many times longer or shorter (in characters)
# than its English is, in these sources, nearly always a translation of an
# older or different English paragraph that kept the same id (common in the
# German help), or a broken catalog entry; see filter_pairs.
MAX_LENGTH_RATIO = 3.0

# --------------------------------------------------------------------------
# Text cleaning
# --------------------------------------------------------------------------

# Product-name variables survive in both the help pages ($[officename]) and
# the catalogs (%PRODUCTNAME); the running application substitutes them, so
# the corpus does too, identically on both sides. "$[…]" is the help's only
# variable syntax, and the Spanish help has it translated ("$[nombre de la
# oficina]"), hence the pattern. A few wizard messages write PRODUCTNAME
# without the "%"; the "%" form goes first so it leaves no stray "%".
PRODUCT_NAME_VARIABLE = re.compile(r"\$\[[^\]]*\]|%PRODUCTNAME|PRODUCTNAME")
PRODUCT_NAME = "LibreOffice"

# Characters that carry no text but would make "identical" comparisons and
# word counts lie: soft hyphen, zero-width space, direction marks, byte-order
# mark.
INVISIBLE_CHARACTERS = re.compile("[\u00ad\u200b\u200e\u200f\ufeff]")
WHITESPACE = re.compile(r"\s+")

# Only real markup is stripped from catalog strings. A generic "<...>" pattern
# would also eat UI text such as "<None>", "<All Files>" or "<page-name>".
MARKUP_TAG = re.compile(
    r"</?(a|b|big|br|em|i|p|s|small|span|strong|sub|sup|tt|u)\b[^<>]*/?>",
    re.IGNORECASE,
)

# What the help build writes where an embedded paragraph was missing, e.g.
# "[text/shared/02/01140000.xhp#textbox_text not found]".
MISSING_EMBED_MARKER = re.compile(r"\[\S+\.xhp#\S* not found\]")

# Variables the application fills in at run time: %1, %NAME, $(ARG1), $1,
# $name$, #1, %s. They are kept in the text (translators keep them too) but
# do not count as words, so strings made mostly of them fall under the
# minimum length.
PLACEHOLDER = re.compile(
    r"%[A-Za-z_]+[0-9]*|%[0-9]+|\$\([A-Za-z0-9_]+\)|\$[A-Za-z_]+\$|\$[A-Za-z0-9_]+|#[0-9]+"
)


def strip_markup(fragment: str) -> str:
    """Remove markup tags and decode entities of a catalog string.

    Line-breaking tags become a space, inline ones vanish, so "<b>Save</b>."
    stays "Save.". Help pages do not go through this: their parser already yields plain
    text, in which a literal "<Enter>" must survive.
    """
    line_breaking = ("br", "p")
    return html.unescape(
        MARKUP_TAG.sub(lambda tag: " " if tag.group(1).lower() in line_breaking else "", fragment)
    )


def clean_text(text: str) -> str:
    """Substitute product-name variables and collapse whitespace.

    Collapsing every run of whitespace (tabs and newlines included) to one
    space is also what guarantees that a TSV field never contains a tab or a
    line break.
    """
    text = PRODUCT_NAME_VARIABLE.sub(PRODUCT_NAME, text)
    text = INVISIBLE_CHARACTERS.sub("", text)
    return WHITESPACE.sub(" ", text).strip()


def remove_accelerators(text: str, uses_gtk_mnemonics: bool) -> str:
    """Drop keyboard-accelerator markers from a UI string.

    Older resource strings mark the accelerator with "~" ("~Save"); strings
    from .ui dialog files use GTK's "_" ("_Save"), where "__" stands for a
    literal underscore. Only the convention of the string's origin is
    applied, so "file_name" in a resource string and "Ignore ~~" in a dialog
    string stay intact.
    """
    if uses_gtk_mnemonics:
        return re.sub(r"__|_", lambda match: "_" if match.group() == "__" else "", text)
    return text.replace("~", "")


def count_words(text: str) -> int:
    """Count whitespace-separated words, not counting run-time variables."""
    return sum(1 for token in text.split() if not PLACEHOLDER.fullmatch(token.strip(".,:;!?()'\"")))


def comparison_key(text: str) -> str:
    """Case- and whitespace-insensitive form used to spot untranslated copies."""
    return WHITESPACE.sub("", text).casefold()


# --------------------------------------------------------------------------
# Help pages: HTML → {paragraph id: text}
# --------------------------------------------------------------------------

# Elements with an id that form one translation unit (they come from the
# <paragraph>/<title> elements of the .xhp sources).
TEXT_BLOCK_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6"})

# Paragraph classes holding program code or formulas, not prose.
CODE_CLASSES = frozenset({"code", "codeintable", "smathcode", "bascode", "pycode"})

VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
SKIPPED_TAGS = frozenset({"script", "style", "noscript", "pre"})


@dataclass
class Element:
    """A minimal DOM node; html.parser gives events, alignment needs a tree."""

    tag: str
    attributes: dict[str, str]
    children: list["Element | str"] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attributes.get("class", "").split())


class HelpTreeBuilder(HTMLParser):
    """Build an Element tree from a help page, tolerating unclosed tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.open_elements = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.open_elements[-1].children.append(element)
        if tag not in VOID_TAGS:
            self.open_elements.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open_elements[-1].children.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        # Close up to the matching open element; a stray end tag is ignored.
        for depth in range(len(self.open_elements) - 1, 0, -1):
            if self.open_elements[depth].tag == tag:
                del self.open_elements[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.open_elements[-1].children.append(data)


def element_text(element: Element) -> str:
    """Visible text of an element, as a reader of the default variant sees it.

    ``switch``/``switchinline`` spans hold one hidden child per case (macOS vs
    other systems, Writer vs Calc, …), which the help viewer's JavaScript
    picks from. Keeping all of them would concatenate "Command Ctrl", so the
    "default" case is kept when it has text, otherwise the first case with
    text — the same choice in every language, which keeps pairs parallel.
    """
    if element.tag in SKIPPED_TAGS:
        return ""
    if element.tag == "br":
        return " "
    if element.classes & {"switch", "switchinline"}:
        return element_text(choose_switch_case(element))
    parts = []
    for child in element.children:
        if isinstance(child, str):
            parts.append(child)
        elif "hidden" in child.attributes:
            continue
        else:
            parts.append(element_text(child))
    return "".join(parts)


def choose_switch_case(switch: Element) -> Element:
    """Pick the case of a switch span whose text stands for the paragraph."""
    cases = [child for child in switch.children if isinstance(child, Element)]
    visible_text = {id(case): clean_text(element_text(unhidden(case))) for case in cases}
    for case in cases:
        if case.attributes.get("id", "").startswith("default") and visible_text[id(case)]:
            return unhidden(case)
    for case in cases:
        if visible_text[id(case)]:
            return unhidden(case)
    return Element("span", {})


def unhidden(element: Element) -> Element:
    """Copy of an element without its ``hidden`` attribute."""
    attributes = {name: value for name, value in element.attributes.items() if name != "hidden"}
    return Element(element.tag, attributes, element.children)


def iter_text_blocks(element: Element) -> Iterator[Element]:
    """Yield the id-carrying paragraphs and headings in document order.

    ``div.embedded`` sections are skipped: they are copies of paragraphs that
    live in another help page (aligned there), and translated pages sometimes
    embed them still in English. Hidden switch cases are walked too: a
    block-level switch holds whole paragraphs, each with its own id.
    """
    for child in element.children:
        if not isinstance(child, Element) or child.tag in SKIPPED_TAGS:
            continue
        if "embedded" in child.classes and child.tag == "div":
            continue
        if child.tag in TEXT_BLOCK_TAGS and child.attributes.get("id"):
            yield child
        else:
            yield from iter_text_blocks(child)


def find_display_area(root: Element) -> Element:
    """The page body (``div#DisplayArea``), excluding navigation chrome."""
    stack: list[Element] = [root]
    while stack:
        element = stack.pop()
        if element.attributes.get("id") == "DisplayArea":
            return element
        stack.extend(reversed([child for child in element.children if isinstance(child, Element)]))
    return root


def parse_help_page(page_html: str) -> dict[str, str]:
    """Map each paragraph id of one help page to its cleaned text.

    Document order is kept (dicts are ordered). If an id repeats within a
    page, the first occurrence wins; code and formula blocks are left out.
    """
    builder = HelpTreeBuilder()
    builder.feed(page_html)
    builder.close()
    paragraphs: dict[str, str] = {}
    for block in iter_text_blocks(find_display_area(builder.root)):
        if block.classes & CODE_CLASSES:
            continue
        paragraphs.setdefault(block.attributes["id"], clean_text(element_text(block)))
    return paragraphs


def read_help_tree(language_dir: Path) -> dict[tuple[str, str], str]:
    """Map (page path relative to the language dir, paragraph id) → text.

    Pages are read in sorted path order so the result, and everything built
    from it, is the same on every run.
    """
    paragraphs: dict[tuple[str, str], str] = {}
    for page in sorted(language_dir.rglob("*.html")):
        relative_path = page.relative_to(language_dir).as_posix()
        for paragraph_id, text in parse_help_page(page.read_text(encoding="utf-8")).items():
            paragraphs[(relative_path, paragraph_id)] = text
    return paragraphs


# --------------------------------------------------------------------------
# Translation catalogs: .mo → [(context, English, translation)]
# --------------------------------------------------------------------------

MO_MAGIC_LITTLE_ENDIAN = 0x950412DE
MO_MAGIC_BIG_ENDIAN = 0xDE120495


@dataclass(frozen=True)
class CatalogEntry:
    """One msgctxt/msgid/msgstr triple, as stored (uncleaned)."""

    context: str
    english: str
    translation: str


def parse_mo(data: bytes) -> list[CatalogEntry]:
    """Decode a GNU gettext .mo file.

    Done by hand rather than with ``gettext.GNUTranslations`` because that
    class only answers lookups; the corpus needs every entry, with its
    context (``msgctxt``, stored before a 0x04 byte) to tell UI dialog strings
    from resource strings. Plural entries keep their singular forms; the
    header entry (empty msgid) is skipped.
    """
    if len(data) < 20:
        raise ValueError("not a .mo file: too short")
    (magic,) = struct.unpack("<I", data[:4])
    if magic == MO_MAGIC_LITTLE_ENDIAN:
        byte_order = "<"
    elif magic == MO_MAGIC_BIG_ENDIAN:
        byte_order = ">"
    else:
        raise ValueError(f"not a .mo file: magic number {magic:#x}")
    _, _, count, originals_offset, translations_offset = struct.unpack(byte_order + "5I", data[:20])

    def string_at(table_offset: int, index: int) -> str:
        length, offset = struct.unpack(byte_order + "2I", data[table_offset + 8 * index : table_offset + 8 * index + 8])
        return data[offset : offset + length].decode("utf-8")

    entries = []
    for index in range(count):
        original = string_at(originals_offset, index)
        translation = string_at(translations_offset, index)
        context, _, english = original.rpartition("\x04")
        english = english.split("\x00")[0]
        translation = translation.split("\x00")[0]
        if english:
            entries.append(CatalogEntry(context, english, translation))
    return entries


def is_dialog_string(context: str) -> bool:
    """True for strings from .ui dialog files, which use GTK "_" mnemonics.

    Their context is "dialogfile|widget"; extended tooltips
    ("dialogfile|extended_tip|widget") carry no mnemonics, and resource
    strings have identifiers such as "STR_…" without a "|".
    """
    return context.count("|") == 1


def catalog_pair(entry: CatalogEntry) -> tuple[str, str]:
    """Clean one catalog entry into an (English, translation) pair."""
    uses_gtk_mnemonics = is_dialog_string(entry.context)

    def clean(text: str) -> str:
        return clean_text(remove_accelerators(strip_markup(text), uses_gtk_mnemonics))

    return clean(entry.english), clean(entry.translation)


def read_catalogs(catalog_dir: Path) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """List ((catalog name, context), (English, translation)) for all .mo files.

    Catalogs in sorted file order and entries in their .mo order (sorted by
    context and msgid by msgfmt) make the output reproducible.
    """
    keyed_pairs = []
    for catalog in sorted(catalog_dir.glob("*.mo")):
        for entry in parse_mo(catalog.read_bytes()):
            keyed_pairs.append(((catalog.name, entry.context), catalog_pair(entry)))
    return keyed_pairs


# --------------------------------------------------------------------------
# Alignment and filtering
# --------------------------------------------------------------------------


def align(
    english: dict[tuple[str, str], str], target: dict[tuple[str, str], str]
) -> list[tuple[str, str]]:
    """Pair paragraphs that share (page path, paragraph id).

    Follows the English order, which is page path then paragraph order.
    """
    return [(text, target[key]) for key, text in english.items() if key in target]


# Why filter_pairs drops a pair, in the order the checks run.
EMPTY_SIDE = "empty side"
BUILD_ERROR_MARKER = "help build error marker"
IDENTICAL_SIDES = "identical sides (untranslated)"
TOO_SHORT = f"English under {MIN_ENGLISH_WORDS} words"
TOO_LONG = f"English over {MAX_ENGLISH_WORDS} words"
LENGTH_MISMATCH = f"lengths differ over {MAX_LENGTH_RATIO:g}x"
DUPLICATE_PAIR = "duplicate pair"
ENGLISH_ALREADY_PAIRED = "English already paired"
DROP_REASONS = (
    EMPTY_SIDE, BUILD_ERROR_MARKER, IDENTICAL_SIDES, TOO_SHORT, TOO_LONG, LENGTH_MISMATCH, DUPLICATE_PAIR,
    ENGLISH_ALREADY_PAIRED,
)


def filter_pairs(pairs: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], Counter]:
    """Keep pairs worth training on; also count why the others went.

    In order: a side is empty; a side holds the help build's "… not found]"
    marker instead of text; the sides are the same text up to case and
    whitespace (an untranslated copy); the English side has fewer than
    MIN_ENGLISH_WORDS or more than MAX_ENGLISH_WORDS words (variables not
    counted); one side is over MAX_LENGTH_RATIO times as long as the other
    (characters); the exact pair was seen already; or the English sentence was
    seen already with another translation (the first one is kept, so every
    English sentence appears once).
    """
    kept: list[tuple[str, str]] = []
    dropped: Counter = Counter()
    seen_english: set[str] = set()
    seen_pairs: set[tuple[str, str]] = set()
    for english, target in pairs:
        words = count_words(english)
        if not english or not target:
            reason = EMPTY_SIDE
        elif MISSING_EMBED_MARKER.search(english) or MISSING_EMBED_MARKER.search(target):
            reason = BUILD_ERROR_MARKER
        elif comparison_key(english) == comparison_key(target):
            reason = IDENTICAL_SIDES
        elif words < MIN_ENGLISH_WORDS:
            reason = TOO_SHORT
        elif words > MAX_ENGLISH_WORDS:
            reason = TOO_LONG
        elif not 1 / MAX_LENGTH_RATIO <= len(target) / len(english) <= MAX_LENGTH_RATIO:
            reason = LENGTH_MISMATCH
        elif (english, target) in seen_pairs:
            reason = DUPLICATE_PAIR
        elif english in seen_english:
            reason = ENGLISH_ALREADY_PAIRED
        else:
            reason = None
        if reason:
            dropped[reason] += 1
            continue
        seen_pairs.add((english, target))
        seen_english.add(english)
        kept.append((english, target))
    return kept, dropped


# --------------------------------------------------------------------------
# Writing outputs
# --------------------------------------------------------------------------


def write_atomically(path: Path, content: str) -> None:
    """Write through a temporary file in the same directory, then rename.

    A reader never sees a half-written corpus file, and an interrupted
    build leaves the previous file in place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(content)
        os.chmod(temporary_name, 0o644)
        os.replace(temporary_name, path)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise


def format_tsv(pairs: Iterable[tuple[str, str]]) -> str:
    """One "english<TAB>target" line per pair, no header.

    Refuses a field with a tab or any line break str.splitlines() knows
    (readers such as kslottery.data.corpus split lines that way, so U+2028 or
    U+001C would cut a pair in two) rather than write a file whose columns
    cannot be trusted; clean_text makes that unreachable.
    """
    lines = []
    for english, target in pairs:
        for text in (english, target):
            if "\t" in text or "".join(text.splitlines()) != text:
                raise ValueError(f"field contains a tab or line break: {text!r}")
        lines.append(f"{english}\t{target}\n")
    return "".join(lines)


def write_tsv(pairs: Iterable[tuple[str, str]], path: Path) -> None:
    """Write pairs as TSV, atomically."""
    write_atomically(path, format_tsv(pairs))


@dataclass
class PairReport:
    """What went into one output file, for SOURCES.md."""

    pair: str
    source_kind: str
    packages: list[tuple[str, str]]
    aligned: int
    kept: int
    dropped: Counter
    tsv_bytes: int


def format_sources(reports: list[PairReport]) -> str:
    """SOURCES.md: where each file came from and how to rebuild it.

    No timestamps, so that rebuilding from the same package versions gives
    byte-identical output.
    """
    lines = [
        "# Parallel corpus sources",
        "",
        "Built by `tools/build_corpus.py` from Debian's LibreOffice packages",
        "(downloaded with `apt-get download`, unpacked with `dpkg-deb -x`).",
        "Content licence: MPL-2.0, see `LICENSE` in this directory.",
        "",
        "Each `.tsv` file holds one pair per line, `english<TAB>target`, UTF-8,",
        "no header.",
        "",
        "## Packages",
        "",
        "| Package | Version |",
        "|---|---|",
    ]
    packages = sorted({package for report in reports for package in report.packages})
    lines += [f"| {name} | {version} |" for name, version in packages]
    lines += [
        "",
        "## Files",
        "",
        "| File | Source | Aligned pairs | Kept pairs | Size (bytes) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {report.pair}.tsv | {report.source_kind} | {report.aligned} | {report.kept} | {report.tsv_bytes} |"
        for report in reports
    ]
    lines += ["", "## Pairs dropped by the filters", ""]
    lines += ["| Reason | " + " | ".join(f"{report.pair}" for report in reports) + " |"]
    lines += ["|---|" + "---|" * len(reports)]
    lines += [
        f"| {reason} | " + " | ".join(str(report.dropped.get(reason, 0)) for report in reports) + " |"
        for reason in DROP_REASONS
    ]
    lines += [
        "",
        "## How the pairs are made",
        "",
        "* en-ca, en-es, en-de: help pages (`/usr/share/libreoffice/help/<lang>/text/**.html`)",
        "  aligned by page path and paragraph id (`par_id…`, `hd_id…`). Embedded copies of",
        "  other pages and code blocks are skipped; of OS/application-specific variants the",
        "  default one is kept.",
        "* en-ro: Debian has no Romanian help, so the pairs come from the UI catalogs",
        "  (`/usr/lib/libreoffice/program/resource/ro/LC_MESSAGES/*.mo`), msgid → msgstr,",
        "  with accelerator markers (`~`, and `_` in dialog strings) removed.",
        "* Cleaning: markup stripped, entities decoded, whitespace collapsed,",
        "  `$[officename]` (any `$[…]`) and `%PRODUCTNAME` replaced by \"LibreOffice\"; pairs holding the",
        "  help build's `[….xhp#… not found]` marker instead of text are dropped.",
        "* Filters: no empty side, no identical sides (case/whitespace-insensitive), English",
        f"  side of {MIN_ENGLISH_WORDS}–{MAX_ENGLISH_WORDS} words (run-time variables such as `%1` not counted),",
        f"  neither side over {MAX_LENGTH_RATIO:g}x as long as the other (characters; catches stale translations),",
        "  no duplicate pairs, and each English sentence only once (first translation kept).",
        "* Order: help page path, then paragraph order; catalogs by file name, then context.",
        "",
        "## Rebuild",
        "",
        "```",
        "python tools/build_corpus.py --out data/corpus",
        "```",
        "",
        "Needs a Debian system with `apt-get` and `dpkg-deb` (and root, or an up-to-date",
        "package index, because the tool may run `apt-get update`). The versions above are",
        "whatever the configured Debian suite served; a different suite gives different files.",
        "",
    ]
    return "\n".join(lines)


def format_license(copyright_stanza: str) -> str:
    """LICENSE: the MPL-2.0 notice plus Debian's copyright statement for it."""
    notice = """\
The text in this directory is derived from LibreOffice's help pages and user
interface translations, as packaged by Debian.

LibreOffice is licensed under the Mozilla Public License, v. 2.0 (MPL-2.0).
This Source Code Form is subject to the terms of the Mozilla Public License,
v. 2.0. If a copy of the MPL was not distributed with this file, You can
obtain one at https://mozilla.org/MPL/2.0/ .

Source: https://www.libreoffice.org/ (help: https://git.libreoffice.org/help,
translations: https://git.libreoffice.org/translations), via Debian packages
listed in SOURCES.md.
"""
    if not copyright_stanza:
        return notice
    return (
        notice
        + "\nFrom the packages' /usr/share/doc/<package>/copyright (Debian):\n\n"
        + copyright_stanza.rstrip()
        + "\n"
    )


def main_copyright_stanza(copyright_text: str) -> str:
    """The "Files: *" stanza of a Debian machine-readable copyright file.

    That stanza is the one covering the help and translations; the rest of
    the file is about icon themes, fonts and other parts not used here.
    """
    for stanza in re.split(r"\n\s*\n(?=\S)", copyright_text):
        if stanza.startswith("Files: *\n"):
            return stanza.strip()
    return ""


# --------------------------------------------------------------------------
# Fetching packages (needs apt-get and dpkg-deb)
# --------------------------------------------------------------------------


class BuildError(click.ClickException):
    """A failure the user can fix; shown without a traceback."""


def require_commands(*commands: str) -> None:
    """Fail early, naming the missing tool, rather than deep inside a subprocess call."""
    missing = [command for command in commands if shutil.which(command) is None]
    if missing:
        raise BuildError(
            f"{', '.join(missing)} not found. This tool needs a Debian or Ubuntu system "
            "(apt-get, apt-cache and dpkg-deb come with the apt and dpkg packages)."
        )


def candidate_version(package: str) -> str | None:
    """The version apt would download, or None if the index does not list it."""
    result = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True, check=False)
    match = re.search(r"^\s*Candidate:\s*(\S+)", result.stdout, re.MULTILINE)
    if not match or match.group(1) == "(none)":
        return None
    return match.group(1)


def ensure_available(packages: list[str]) -> None:
    """Make sure apt can download every package, refreshing the index once."""
    missing = [package for package in packages if candidate_version(package) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise BuildError(
            f"apt does not know {', '.join(missing)}. Run `sudo apt-get update` "
            "(and make sure the Debian 'main' component is enabled), then retry."
        )
    click.echo(f"apt does not list {', '.join(missing)}; running apt-get update", err=True)
    result = subprocess.run(["apt-get", "update"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"apt-get update failed:\n{result.stderr.strip()}")
    still_missing = [package for package in missing if candidate_version(package) is None]
    if still_missing:
        raise BuildError(
            f"package(s) {', '.join(still_missing)} not available from the configured apt sources. "
            "They are in Debian 'main' (e.g. bookworm); add such a source to /etc/apt/sources.list "
            "and run apt-get update."
        )


def download_and_extract(package: str, workdir: Path) -> tuple[str, Path]:
    """Download one package's .deb and unpack it; return (version, tree).

    The version is read from the downloaded .deb itself, so SOURCES.md names
    exactly what was used.
    """
    download_dir = workdir / "debs" / package
    shutil.rmtree(download_dir, ignore_errors=True)
    download_dir.mkdir(parents=True)
    result = subprocess.run(
        ["apt-get", "download", package], cwd=download_dir, capture_output=True, text=True, check=False
    )
    debs = sorted(download_dir.glob("*.deb"))
    if result.returncode != 0 or len(debs) != 1:
        raise BuildError(
            f"apt-get download {package} failed:\n{result.stderr.strip()}\n"
            "Check the network and that `apt-cache policy " + package + "` shows a candidate."
        )
    version = subprocess.run(
        ["dpkg-deb", "--field", str(debs[0]), "Version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not version:
        raise BuildError(f"could not read the Version field of {debs[0].name}; the download may be corrupt.")
    tree = workdir / "trees" / package
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    result = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tree)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"dpkg-deb -x {debs[0].name} failed:\n{result.stderr.strip()}")
    return version, tree


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_pair_list(_context: click.Context, _parameter: click.Parameter, value: str) -> list[str]:
    """Validate --pairs and put the pairs in the canonical order of ALL_PAIRS."""
    pairs = [pair.strip() for pair in value.split(",") if pair.strip()]
    unknown = [pair for pair in pairs if pair not in ALL_PAIRS]
    if unknown or not pairs:
        raise click.BadParameter(f"unknown pair(s) {', '.join(unknown) or '(none)'}; choose from {','.join(ALL_PAIRS)}")
    return [pair for pair in ALL_PAIRS if pair in pairs]


def packages_for(pairs: list[str]) -> list[str]:
    """The Debian packages the requested pairs are built from."""
    targets = [pair.split("-", 1)[1] for pair in pairs]
    help_packages = [HELP_PACKAGES[language][0] for language in targets if language in HELP_PACKAGES]
    catalog_packages = [CATALOG_PACKAGES[language][0] for language in targets if language in CATALOG_PACKAGES]
    return ([ENGLISH_HELP_PACKAGE] if help_packages else []) + help_packages + catalog_packages


def existing_dir(path: Path, package: str) -> Path:
    """Return path, or fail naming the package whose layout did not match."""
    if not path.is_dir():
        raise BuildError(f"{package} has no {path.name}/ where expected ({path}); its layout may have changed.")
    return path


def build(out_dir: Path, pairs: list[str], workdir: Path) -> list[PairReport]:
    """Fetch the packages the requested pairs need and write every output.

    All outputs are computed first and written only at the end, so a failure
    half-way leaves the previous corpus untouched rather than half-replaced.
    """
    packages = packages_for(pairs)
    ensure_available(packages)
    versions: dict[str, str] = {}
    trees: dict[str, Path] = {}
    for package in packages:
        click.echo(f"fetching {package}", err=True)
        versions[package], trees[package] = download_and_extract(package, workdir)

    english_help: dict[tuple[str, str], str] = {}
    if ENGLISH_HELP_PACKAGE in trees:
        click.echo("reading en-US help pages", err=True)
        english_dir = trees[ENGLISH_HELP_PACKAGE] / HELP_ROOT / ENGLISH_HELP_LANGUAGE_DIR / "text"
        english_help = read_help_tree(existing_dir(english_dir, ENGLISH_HELP_PACKAGE))

    reports: list[PairReport] = []
    outputs: dict[Path, str] = {}
    for pair in pairs:
        language = pair.split("-", 1)[1]
        if language in HELP_PACKAGES:
            package, language_dir = HELP_PACKAGES[language]
            click.echo(f"reading {language_dir} help pages", err=True)
            target_dir = existing_dir(trees[package] / HELP_ROOT / language_dir / "text", package)
            aligned = align(english_help, read_help_tree(target_dir))
            used = [(ENGLISH_HELP_PACKAGE, versions[ENGLISH_HELP_PACKAGE]), (package, versions[package])]
            source_kind = "help pages"
        else:
            package, language_dir = CATALOG_PACKAGES[language]
            click.echo(f"reading {language_dir} UI catalogs", err=True)
            catalog_dir = existing_dir(trees[package] / CATALOG_ROOT / language_dir / "LC_MESSAGES", package)
            aligned = [texts for _key, texts in read_catalogs(catalog_dir)]
            used = [(package, versions[package])]
            source_kind = "UI catalogs (.mo)"
        kept, dropped = filter_pairs(aligned)
        if not kept:
            raise BuildError(f"{pair}: no pairs survived the filters; the layout of {package} may have changed.")
        tsv = format_tsv(kept)
        outputs[out_dir / f"{pair}.tsv"] = tsv
        reports.append(PairReport(pair, source_kind, used, len(aligned), len(kept), dropped, len(tsv.encode())))
        click.echo(f"{pair}: {len(aligned)} aligned, {len(kept)} kept", err=True)

    outputs[out_dir / "SOURCES.md"] = format_sources(reports)
    copyright_file = trees[packages[0]] / "usr/share/doc" / packages[0] / "copyright"
    copyright_text = copyright_file.read_text(encoding="utf-8") if copyright_file.exists() else ""
    outputs[out_dir / "LICENSE"] = format_license(main_copyright_stanza(copyright_text))
    for path, content in outputs.items():
        write_atomically(path, content)
    return reports


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the .tsv files, SOURCES.md and LICENSE (e.g. data/corpus).",
)
@click.option(
    "--pairs", default=",".join(ALL_PAIRS), show_default=True, callback=parse_pair_list,
    help="Comma-separated language pairs to build.",
)
@click.option(
    "--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Keep downloaded .debs and unpacked trees here (default: a temporary directory, removed afterwards).",
)
def main(out_dir: Path, pairs: list[str], workdir: Path | None) -> None:
    """Build the English→{ca,es,de,ro} corpus from Debian's LibreOffice packages."""
    require_commands("apt-get", "apt-cache", "dpkg-deb")
    started = time.monotonic()
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="build_corpus.") as scratch:
            reports = build(out_dir, pairs, Path(scratch))
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        reports = build(out_dir, pairs, workdir)
    for report in reports:
        click.echo(f"{out_dir / (report.pair + '.tsv')}: {report.kept} pairs, {report.tsv_bytes} bytes")
    click.echo(f"done in {time.monotonic() - started:.0f} s", err=True)


if __name__ == "__main__":
    sys.exit(main())
