"""Every document the code cites is in the repository, and every section it cites exists there.

The code and the docs cite `CONTRACT §n` (a numbered section of `docs/contract.md`, optionally
with a named part: `CONTRACT §4 "Budgets"`), `DESIGN "name"` and `FIELD-NOTES "name"` (a section
title or a bold principle of `docs/design.md` / `docs/field-notes.md`) and `docs/x.md "Title"`.
Before issue 25 those documents lived outside the repository, so a clone could not follow a
citation. A renamed or renumbered section fails here, naming the file and the citation. Reads
files only: no servers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CITING_DIRS = ("packages", "apps", "tools", "tests", ".ci", "docs")
CITING_FILES = ("README.md", "CONTRIBUTING.md", "pyproject.toml")
SUFFIXES = {".py", ".md", ".sql", ".sh", ".toml", ".yml", ".yaml", ".lua", ""}
SKIP_PARTS = {".venv", "node_modules", "__pycache__", "dist", ".schemathesis", "bench-results"}

CONTRACT = re.compile(
    r"\bCONTRACT((?:[\s,/]*(?:and\s+)?§\s*\d+)+)(?:\s*[\"“]([^\"”]{1,60})[\"”])?", re.IGNORECASE
)
DESIGN = re.compile(r"(?<!`)\bDESIGN\s*[\"“]([^\"”]{1,80})[\"”]")
FIELD_NOTES = re.compile(r"(?<!`)\bFIELD-NOTES\s*[\"“]([^\"”]{1,80})[\"”]")
DOC_FILE = re.compile(r"(?<![`\w/])docs/([\w-]+\.md),?\s+[\"“]([^\"”]{1,80})[\"”]")
"""A citation in a code span (`DESIGN "name"`) shows the form; it cites nothing."""
HEADING = re.compile(r"^#{2,4}\s+(.+?)\s*$")
BOLD = re.compile(r"\*\*(.+?)\*\*")
CONTINUATION = re.compile(r"\s*\n\s*(?:#(?!#)|--|//|\*(?!\*))?\s*")
"""A line break plus what starts a comment's next line: a citation may wrap across lines."""


@dataclass(frozen=True)
class Doc:
    text: str
    titles: list[str]
    """Headings and bold spans, lower-cased, whitespace collapsed."""
    sections: dict[str, str]
    """`## n. …` section number → its text, lower-cased."""


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _read_doc(path: Path) -> Doc:
    text = path.read_text()
    titles: list[str] = []
    sections: dict[str, str] = {}
    current: str | None = None
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            if current:
                sections[current] += "\n" + line
            continue
        heading = HEADING.match(line)
        if heading:
            titles.append(_norm(heading.group(1)))
            number = re.match(r"(\d+)\.\s", heading.group(1))
            if line.startswith("## "):
                current = number.group(1) if number else None
                if current:
                    sections[current] = ""
        titles += [_norm(b) for b in BOLD.findall(line)]
        if current:
            sections[current] += "\n" + line
    return Doc(text, titles, {k: _norm(v) for k, v in sections.items()})


def _citing_files() -> list[Path]:
    files = [ROOT / name for name in CITING_FILES if (ROOT / name).exists()]
    for folder in CITING_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT)
            if path.is_file() and path.suffix in SUFFIXES and not SKIP_PARTS & set(rel.parts):
                files.append(path)
    return [f for f in files if f.resolve() != Path(__file__).resolve()]


def _has_title(doc: Doc, name: str) -> bool:
    wanted = _norm(name)
    return any(wanted in title for title in doc.titles)


def broken_citations(text: str, where: str, docs: dict[str, Doc]) -> list[str]:
    """Every citation in `text` that names a document or section the docs lack."""
    flat = CONTINUATION.sub(" ", text)
    broken: list[str] = []
    contract = docs["contract.md"]
    for match in CONTRACT.finditer(flat):
        numbers = re.findall(r"§\s*(\d+)", match.group(1))
        for number in numbers:
            if number not in contract.sections:
                broken.append(f"{where}: {match.group(0)!r}: docs/contract.md has no § {number}")
        part = match.group(2)
        if part and not any(_norm(part) in contract.sections.get(n, "") for n in numbers):
            broken.append(f"{where}: {match.group(0)!r}: no {part!r} in that section")
    for pattern, name in ((DESIGN, "design.md"), (FIELD_NOTES, "field-notes.md")):
        for match in pattern.finditer(flat):
            if not _has_title(docs[name], match.group(1)):
                broken.append(f"{where}: {match.group(0)!r}: no such section in docs/{name}")
    for match in DOC_FILE.finditer(flat):
        doc = docs.get(match.group(1))
        if doc is None:
            broken.append(f"{where}: {match.group(0)!r}: docs/{match.group(1)} does not exist")
        elif not _has_title(doc, match.group(2)):
            broken.append(f"{where}: {match.group(0)!r}: no such heading in docs/{match.group(1)}")
    return broken


def _docs() -> dict[str, Doc]:
    return {path.name: _read_doc(path) for path in sorted(DOCS.glob("*.md"))}


def test_the_cited_documents_are_in_the_repository() -> None:
    for name in ("contract.md", "design.md", "field-notes.md", "performance.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"
    sections = _docs()["contract.md"].sections
    assert sorted(sections, key=int) == [str(n) for n in range(1, 8)], sorted(sections)


def test_every_citation_resolves_to_a_section_that_exists() -> None:
    docs = _docs()
    broken: list[str] = []
    cited = 0
    for path in _citing_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        flat = CONTINUATION.sub(" ", text)
        cited += sum(len(p.findall(flat)) for p in (CONTRACT, DESIGN, FIELD_NOTES, DOC_FILE))
        broken += broken_citations(text, str(path.relative_to(ROOT)), docs)
    assert cited > 100, f"only {cited} citations found: is the scan reading the code?"
    assert not broken, "\n".join(broken)


def test_a_citation_of_a_missing_section_is_caught() -> None:
    docs = _docs()
    text = '''"""Checks (CONTRACT §4 "Budgets", CONTRACT §3, §9). Also DESIGN "no such
    principle", FIELD-NOTES "Object storage" and docs/performance.md "Nothing here"."""'''
    broken = broken_citations(text, "example.py", docs)
    assert len(broken) == 3, broken
    assert "no § 9" in broken[0]
    assert "design.md" in broken[1]
    assert "performance.md" in broken[2]


def test_nothing_points_outside_the_repository_for_the_specs() -> None:
    outside = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _citing_files()
        if path.suffix in {".md", ".py"}
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if "../shared/" in line
    ]
    assert not outside, outside


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^#{1,6}\s+(.+?)\s*$", line)):
            anchors.add(_slug(m.group(1)))
    return anchors


def test_the_docs_links_reach_a_file_and_a_heading() -> None:
    """The README is a front door to docs/: each relative link, and its #anchor, must land."""
    broken: list[str] = []
    for page in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: outside the repository
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target}: no such heading")
    assert not broken, "\n".join(broken)
