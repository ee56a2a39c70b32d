"""The docs say what the params say: README.md stays a front door, every learning rate the docs
quote is the one in the params file it names, docs/parameters.md documents every key of
params.yaml with its value, every relative link points at a file (and heading) that exists, and
README's results table is results/table.md's, cell for cell.

How a learning rate is quoted, the convention these tests hold the docs to:

* `train.<method>.lr` followed on the same line by a number, with only backticks, spaces, `|`,
  `:` or `=` between them ("| `train.lora.lr` | `3.2e-3` |", "`train.lora.lr = 3.2e-3`"), quotes
  params.yaml.
* In a markdown table whose header names profile files (`params.yaml`, `configs/paper.yaml`,
  `configs/gemma3-270m.yaml`), a row whose first cell is `train.<method>.lr` quotes, in each such
  column, the file that column names.
* `-S train.<method>.lr=...` (a `dvc exp run` override) sets a value; it quotes nothing.

Another profile's rate written as a plain quote is checked against params.yaml, and fails.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
LINKED = [*PAGES, REPO / "results" / "NOTES.md"]
README_MAX_LINES = 250

NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?"
LR_KEY = re.compile(r"train\.([a-z][a-z0-9_-]*)\.lr\b")
VALUE_AFTER_KEY = re.compile(rf"[`\s*|:=]*({NUMBER})(?!\w)")
CELL_LR_KEY = re.compile(r"^\s*`?train\.([a-z][a-z0-9_-]*)\.lr`?\s*$")
PROFILE_FILE = re.compile(r"[\w./-]+\.yaml")  # a table header cell that is a params file's path
OVERRIDE = re.compile(r"(?:-S|--set-param)\s*['\"]?$")
FENCE = re.compile(r"^\s*(```|~~~)")


def load_yaml(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text(encoding="utf-8"))


def lr_in(profile: dict, method: str) -> float | None:
    """`train.<method>.lr` of a params file, None where the method has no lr there."""
    section = (profile.get("train") or {}).get(method)
    return float(section["lr"]) if isinstance(section, dict) and "lr" in section else None


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def lr_quotes(text: str) -> list[tuple[str, str, float, int]]:
    """Every learning rate quoted in a markdown text: (params file, method, value, line number)."""
    quotes = []
    table_files: list[str | None] | None = None  # per column of the current table: the file it quotes
    previous = ""
    for number, line in enumerate(text.splitlines(), 1):
        in_table = line.lstrip().startswith("|")
        if in_table and not previous.lstrip().startswith("|"):  # a table's header row
            named = [cell.strip("` ") for cell in cells(line)]
            files = [name if PROFILE_FILE.fullmatch(name) else None for name in named]
            table_files = files if any(files) else None
        previous = line
        row = cells(line) if in_table and table_files is not None else []
        key = CELL_LR_KEY.match(row[0]) if row else None
        if key:
            for file, cell in zip(table_files, row):
                value = re.search(NUMBER, cell) if file else None
                if value:
                    quotes.append((file, key.group(1), float(value.group(0)), number))
            continue
        for key in LR_KEY.finditer(line):
            if OVERRIDE.search(line[:key.start()].rstrip("`")):
                continue
            value = VALUE_AFTER_KEY.match(line, key.end())
            if value:
                quotes.append(("params.yaml", key.group(1), float(value.group(1)), number))
    return quotes


def all_lr_quotes() -> list[tuple[str, str, str, float, int]]:
    return [(page.relative_to(REPO).as_posix(), *quote)
            for page in PAGES for quote in lr_quotes(page.read_text(encoding="utf-8"))]


def test_the_quote_parser_reads_the_convention():
    text = "\n".join([
        "| key | default | meaning |",
        "|---|---|---|",
        "| `train.lora.lr` | `3.2e-3` | LoRA's rate |",
        "LoRA trains at train.lora.lr = 3.2e-3.",
        "`train.full.lr: 5.0e-4`, and `train.prefix.lr` is named without a value",
        "dvc exp run -S train.embed.lr=0.1 -S 'train.ticket.lr=0.2'",
        "",
        "| key | `params.yaml` | `configs/paper.yaml` |",
        "|---|---:|---:|",
        "| `train.full.lr` | 5e-4 | 2e-5 |",
        "",
        "| method | in params.yaml |",
        "|---|---|",
        "| LoRA | `train.lora.lr` = 1e-3 |",
    ])
    assert lr_quotes(text) == [("params.yaml", "lora", 3.2e-3, 3), ("params.yaml", "lora", 3.2e-3, 4),
                               ("params.yaml", "full", 5e-4, 5),
                               ("params.yaml", "full", 5e-4, 10), ("configs/paper.yaml", "full", 2e-5, 10),
                               ("params.yaml", "lora", 1e-3, 14)]


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/ and run notes "
        "to results/NOTES.md")


def _readme_table_tool():
    spec = importlib.util.spec_from_file_location("readme_table", REPO / "tools" / "readme_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_results_table_is_the_committed_table():
    tool = _readme_table_tool()
    readme, table = README.read_text(encoding="utf-8"), (REPO / "results/table.md").read_text(encoding="utf-8")
    assert tool.with_table(readme, table) == readme, (
        "README.md's results table differs from results/table.md: `python tools/readme_table.py` rewrites it")


def test_the_readme_table_tool_copies_every_cell():
    table = """| method | trainable params | % of full | seeds | en-ca BLEU | en-ca chrF++ | en-ca BLEU (whole) | en-ca chrF++ (whole) |
|:--|--:|--:|--:|--:|--:|--:|--:|
| base (zero-shot) | 0 | 0.00 | 1 | 0.52 | 8.02 | 0.19 | 9.93 |
| LoRA | 460,800 | 0.28 | 3 | 6.41 ± 1.00 | 27.67 ± 0.80 | 6.40 ± 0.98 | 27.60 ± 0.81 |

Share:

| method | % of embedding only's gain (first line) | % of full fine-tuning's gain (first line) |
|:--|--:|--:|
| LoRA | 102 | 51 |
"""
    tool = _readme_table_tool()
    assert tool.readme_table(table).splitlines()[2:] == [
        "| base (zero-shot) | 0 | 0.52 | 8.02 | 0.19 | 9.93 |  |",
        "| LoRA | 460,800 | 6.41 ± 1.00 | 27.67 ± 0.80 | 6.40 ± 0.98 | 27.60 ± 0.81 | 102 |"]
    readme = f"before\n{tool.BEGIN}\nold\n{tool.END}\nafter\n"
    assert tool.with_table(readme, table) == f"before\n{tool.BEGIN}\n{tool.readme_table(table)}\n{tool.END}\nafter\n"


@pytest.mark.parametrize("pattern", [r"\brun before\b", r"\bbyte for byte\b", r"\bwas [0-9]", r"\bnow [0-9]",
                                     r"[0-9] ?-> ?[0-9]"])
def test_readme_holds_no_run_history(pattern):
    hits = [f"README.md:{n}: {line.strip()}" for n, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(pattern, line)]
    assert not hits, "run history belongs in results/NOTES.md:\n" + "\n".join(hits)


def test_every_quoted_learning_rate_is_the_one_in_its_params_file():
    profiles: dict[str, dict] = {}
    stale = []
    for page, file, method, value, line in all_lr_quotes():
        assert (REPO / file).is_file(), f"{page}:{line}: quotes {file}, which does not exist"
        profile = profiles.setdefault(file, load_yaml(file))
        actual = lr_in(profile, method)
        if actual is None or not math.isclose(value, actual, rel_tol=1e-9):
            stale.append(f"{page}:{line}: train.{method}.lr quoted as {value:g}; {file} has {actual}")
    assert not stale, "stale learning rates in the docs:\n" + "\n".join(stale)


def test_every_method_with_a_learning_rate_has_it_quoted():
    train = load_yaml("params.yaml")["train"]
    methods = {name for name, section in train.items() if isinstance(section, dict) and "lr" in section}
    assert methods, "params.yaml has no train.<method>.lr: nothing to check"
    quoted = {method for _, file, method, _, _ in all_lr_quotes() if file == "params.yaml"}
    assert methods <= quoted, f"never quoted with its value: {sorted(f'train.{m}.lr' for m in methods - quoted)}"


def leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def documented_keys() -> dict[str, str]:
    """docs/parameters.md's reference rows: `key` -> the text of its default cell."""
    rows = {}
    for line in (REPO / "docs" / "parameters.md").read_text(encoding="utf-8").splitlines():
        row = cells(line) if line.lstrip().startswith("|") else []
        key = re.fullmatch(r"`([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)`", row[0]) if len(row) >= 3 else None
        if key:
            rows[key.group(1)] = row[1]
    return rows


def same_value(cell: str, value: object) -> bool:
    text = cell.strip().strip("`")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return math.isclose(float(text), float(value), rel_tol=1e-9)
        except ValueError:
            return False
    if isinstance(value, str) and text == value.encode("unicode_escape").decode():
        return True
    try:
        return yaml.safe_load(text) == value
    except yaml.YAMLError:
        return False


def test_parameters_page_documents_every_key_with_its_value():
    params = load_yaml("params.yaml")
    documented = documented_keys()
    expected = leaves(params)
    missing = sorted(set(expected) - set(documented))
    assert not missing, f"docs/parameters.md has no row for: {missing}"
    wrong = [f"{key}: documented {documented[key]}, params.yaml has {value!r}"
             for key, value in expected.items() if not same_value(documented[key], value)]
    assert not wrong, "docs/parameters.md disagrees with params.yaml:\n" + "\n".join(wrong)
    for key in documented:  # an optional key (absent from params.yaml) still sits under a real section
        parent = key.rpartition(".")[0]
        assert not parent or parent in expected or any(k.startswith(parent + ".") for k in expected), (
            f"docs/parameters.md documents `{key}`, but params.yaml has no `{parent}`")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def outside_code(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def link_targets(line: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", re.sub(r"`[^`]*`", "", line))


def anchors(page: Path) -> set[str]:
    found, counts = set(), {}
    for _, line in outside_code(page.read_text(encoding="utf-8")):
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            base = slug(heading.group(1).replace("`", ""))
            found.add(f"{base}-{counts[base]}" if base in counts else base)
            counts[base] = counts.get(base, 0) + 1
    return found


@pytest.mark.parametrize("page", LINKED, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_point_at_what_exists(page):
    assert page.is_file(), f"{page.relative_to(REPO)} is missing"
    broken = []
    for number, line in outside_code(page.read_text(encoding="utf-8")):
        for target in link_targets(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(REPO)}:{number}: ({target})"
            if not file.exists():
                broken.append(f"{where}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{where}: no heading with that anchor")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_links_are_checked_at_all():
    links = [target for page in PAGES for _, line in outside_code(page.read_text(encoding="utf-8"))
             for target in link_targets(line) if not re.match(r"[a-z][a-z0-9+.-]*:|#", target)]
    assert len(links) >= 10, "README.md and docs/ link to almost nothing: is the link pattern still right?"
