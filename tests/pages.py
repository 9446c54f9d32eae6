"""The user documentation, README.md and the pages under docs/ it links, read by section: a test that
quotes a section finds it on whichever page it lives."""

import re

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _lines_outside_code(text: str):
    """Each line of ``text`` with whether it is outside a fenced code block (a ``# comment`` is no heading)."""
    fenced = False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        yield line, not fenced and not line.startswith("```")


def section(heading: str) -> str:
    """The text under ``heading`` (e.g. ``"## GAN"``), up to the next heading of the same or a higher level."""
    level = len(heading.split()[0])
    found = []
    for page in PAGES:
        lines, inside = [], False
        for line, outside_code in _lines_outside_code(page.read_text()):
            marks = re.match(r"(#+) ", line) if outside_code else None
            if marks and inside and len(marks.group(1)) <= level:
                break
            if inside:
                lines.append(line)
            if marks and line.rstrip("\n") == heading:
                inside = True
        if inside:
            found.append("".join(lines))
    assert len(found) == 1, f"{heading!r} is on {len(found)} pages of {[p.name for p in PAGES]}, not one"
    return found[0]
