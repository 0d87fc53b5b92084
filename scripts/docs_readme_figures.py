"""MkDocs hook: measured figures come from the README, so the docs never hold a second copy.

- ``<!-- readme: NAME -->`` becomes the README's text between ``<!-- docs:NAME:start -->`` and
  ``<!-- docs:NAME:end -->``, with links to the README's own headings pointed at the docs
  page that covers them (or unlinked).
- ``<!-- bench-rows: ROUTER [ROUTER ...] -->`` becomes those routers' rows of the README's two
  benchmark tables (all test queries, novel queries), with the best single candidate for
  reference, and their points of the quality-cost curve table when it has any.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"
# README heading anchors -> the docs page that covers them (relative to docs/).
ANCHORS = {
    "the-fast-path-a-static-featuriser": "concepts/featurisers.md",
    "benchmark-every-router-on-routerdc-data": "routers/index.md#the-benchmark",
    "overhead": "howto/drop-in.md#overhead",
}
_SECTION = re.compile(r"<!-- readme: ([\w-]+) -->")
_ROWS = re.compile(r"<!-- bench-rows: ([\w\- ]+) -->")
_LINK = re.compile(r"\[([^\]]+)\]\(#([\w-]+)\)")
_FILE_LINK = re.compile(r"(!?)\[([^\]]*)\]\((?!https?:|#)([^)\s]+)\)")


def _section(text: str, name: str) -> str:
    start, end = f"<!-- docs:{name}:start -->", f"<!-- docs:{name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"README.md has no {start} ... {end} section")
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def _relink(text: str, page_path: str) -> str:
    """Point the README's links at the docs: its headings at the pages that cover them, its
    ``docs/...`` files relative to the page; other links keep only their text."""
    up = "../" * page_path.count("/")

    def heading(match: re.Match[str]) -> str:
        target = ANCHORS.get(match.group(2))
        return match.group(1) if target is None else f"[{match.group(1)}]({up}{target})"

    def file(match: re.Match[str]) -> str:
        bang, label, target = match.groups()
        if target.startswith("docs/"):
            return f"{bang}[{label}]({up}{target.removeprefix('docs/')})"
        return label

    return _FILE_LINK.sub(file, _LINK.sub(heading, text))


def _table_after(text: str, caption: str) -> list[str]:
    """The first Markdown table after ``caption``."""
    lines = text.split(caption, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _row_name(line: str) -> str:
    label = _cells(line)[0].replace("*", "")
    return " ".join(label.split()[:2]) if label.startswith("always ") else label.split()[0]


def _is_best_single(line: str) -> bool:
    cells = _cells(line)
    return cells[0].startswith("always ") and cells[2] in ("[+0.000, +0.000]", "")


def _rows(text: str, routers: list[str]) -> str:
    out: list[str] = []
    tables = (
        ("All 500 test queries:", "All 500 test queries", True),
        (
            "The 381 novel test queries (those not also in the training file):",
            "The 381 novel test queries",
            True,
        ),
        (
            "Points on the quality–cost curves",
            "Points on the quality–cost curve (all 500 queries)",
            False,
        ),
    )
    for caption, title, with_reference in tables:
        if caption not in text:
            continue
        table = _table_after(text, caption)
        body = [line for line in table[2:] if _row_name(line) in routers]
        if not body:
            continue
        if with_reference:
            body += [line for line in table[2:] if _is_best_single(line)][:1]
        out += [f"{title}:", "", *table[:2], *body, ""]
    if not out:
        raise ValueError(f"README.md's benchmark tables have no rows for {routers}")
    return "\n".join(out).rstrip("\n")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Fill the page's README placeholders."""
    if "<!-- readme:" not in markdown and "<!-- bench-rows:" not in markdown:
        return markdown
    text = README.read_text(encoding="utf-8")
    path = page.file.src_uri
    markdown = _SECTION.sub(lambda m: _relink(_section(text, m.group(1)), path), markdown)
    return _ROWS.sub(lambda m: _rows(text, m.group(1).split()), markdown)
