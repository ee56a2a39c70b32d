"""README's results table, cut from results/table.md (what the `table` stage wrote), never typed by hand.

The README shows the default's first pair: each method's trainable parameters, its four scores and
the share of embedding only's gain it recovers (first line). They are copied cell for cell from the
two tables of results/table.md, so the README cannot drift from the committed run;
tests/test_docs.py fails when it does.

    python tools/readme_table.py        # rewrite the block between the markers in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- results table: made by tools/readme_table.py from results/table.md; do not edit -->"
END = "<!-- end of the results table -->"
SCORES = ("BLEU", "chrF++", "BLEU (whole)", "chrF++ (whole)")
GAIN = "% of embedding only's gain (first line)"


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every pipe table of a markdown text, as rows of {header: cell}."""
    tables, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif block:
            header, _rule, *rows = block
            tables.append([dict(zip(header, row)) for row in rows])
            block = []
    return tables


def readme_table(table_md: str) -> str:
    """The README's table from results/table.md: the first pair's scores and the gain shares."""
    scores, gains = markdown_tables(table_md)[:2]
    pair = next(key.split()[0] for key in scores[0] if key.endswith(" chrF++"))
    share = {row["method"]: row[GAIN] for row in gains}
    header = ["method", "trainable params", *SCORES, "% of embedding only's gain"]
    lines = ["| " + " | ".join(header) + " |", "|:--|" + "--:|" * (len(header) - 1)]
    for row in scores:
        cells = [row["method"], row["trainable params"], *(row[f"{pair} {score}"] for score in SCORES),
                 share.get(row["method"], "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def with_table(readme: str, table_md: str) -> str:
    """README.md with the block between the markers replaced by the table of results/table.md."""
    head, found, rest = readme.partition(BEGIN)
    _old, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise SystemExit(f"README.md has no {BEGIN!r} ... {END!r} block: put the two markers where the table goes")
    return f"{head}{BEGIN}\n{readme_table(table_md)}\n{END}{tail}"


def main() -> None:
    readme = REPO / "README.md"
    new = with_table(readme.read_text(encoding="utf-8"), (REPO / "results/table.md").read_text(encoding="utf-8"))
    readme.write_text(new, encoding="utf-8")
    print("README.md: results table rewritten from results/table.md", file=sys.stderr)


if __name__ == "__main__":
    main()
