"""The repository stands alone: its text cites only documents it contains.

Code comments once cited notes that lived outside the repository (the mission folder beside the
checkout, the recipe and library notes kept there, an old run-schema note); a contributor could not
follow them. Every tracked text file, this one included, is checked for such citations, and every ``docs/<name>.md`` it cites must exist, with the section
(``docs/<name>.md §N``) or anchor (``docs/<name>.md#slug``) it names.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = (".py", ".yaml", ".yml", ".md", ".toml")
TEXT_NAMES = ("MLproject", "Makefile")
# The outside documents' names, assembled so that this file does not cite them itself.
SHARED, BASELINE, NOTES, SCHEMA = "../" + "shared", "baseline" + ".md", "stack" + "_notes", "schema" + ".md"
DOCS = "docs" + "/"
# Citations of documents that are not in the repository.
FORBIDDEN = (
    re.compile(re.escape(SHARED)),
    re.compile(re.escape(BASELINE) + " §"),
    re.compile(re.escape(NOTES)),
    re.compile(NOTES.replace("_", " ") + " §", re.IGNORECASE),
    re.compile(r"(?<![\w/])" + re.escape(SCHEMA)),  # the old run-schema notes; the README holds the schema now
)
DOC_CITATION = re.compile(r"docs/([a-z_]+\.md)(?:#([\w-]+)| §(\d+))?")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)


def tracked_text_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    return sorted(
        name
        for name in listed
        if name
        and (name.endswith(TEXT_SUFFIXES) or Path(name).name in TEXT_NAMES)
        and (ROOT / name).is_file()
    )


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than '-' and '_' dropped, spaces → '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(doc: Path) -> list[str]:
    return HEADING.findall(doc.read_text(encoding="utf-8"))


def citation_problems(name: str, text: str) -> list[str]:
    """One line per citation in ``text`` that leaves the repository or names a missing doc/section/anchor."""
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        for pattern in FORBIDDEN:
            if pattern.search(line):
                problems.append(f"{name}:{number}: cites a file outside the repository: {line.strip()}")
        for match in DOC_CITATION.finditer(line):
            doc_name, anchor, section = match.groups()
            doc = ROOT / "docs" / doc_name
            if not doc.is_file():
                problems.append(f"{name}:{number}: docs/{doc_name} does not exist")
                continue
            titles = headings(doc)
            if anchor is not None and anchor not in {github_slug(t) for t in titles}:
                problems.append(f"{name}:{number}: docs/{doc_name} has no heading with anchor #{anchor}")
            if section is not None and not any(re.match(rf"{section}\.\s", t) for t in titles):
                problems.append(f"{name}:{number}: docs/{doc_name} has no section {section}")
    return problems


def test_tracked_text_cites_only_what_the_repository_holds() -> None:
    files = tracked_text_files()
    assert "README.md" in files and "src/sedwatt/config.py" in files  # the listing really covers the tree
    problems = []
    for name in files:
        problems += citation_problems(name, (ROOT / name).read_text(encoding="utf-8", errors="replace"))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (f"# exactly ({SHARED}/mission/{BASELINE})", "outside the repository"),
        (f'"""The CRNN ({BASELINE} §2)."""', "outside the repository"),
        (f"# workers ({NOTES} §2.4)", "outside the repository"),
        (f"# retry ({NOTES.replace('_', ' ')} §4.2)", "outside the repository"),
        (f'"""What it writes ({SCHEMA})."""', "outside the repository"),
        (f"# see {DOCS}nonexistent_doc.md", "does not exist"),  # DOCS: bad citations, not this file's
        (f"# see {DOCS}recipe.md §99", "no section 99"),
        (f"# see {DOCS}recipe.md#99-no-such-heading", "no heading with anchor"),
    ],
)
def test_each_kind_of_bad_citation_is_reported(text: str, complaint: str) -> None:
    problems = citation_problems("example.py", text)
    assert len(problems) == 1 and complaint in problems[0], problems


def test_citations_of_existing_sections_and_anchors_pass() -> None:
    text = "\n".join(
        [
            "# docs/recipe.md §3 and docs/recipe.md#3-training",
            "# docs/recipe.md#7-quirks, docs/stack.md §1",
            "# docs/stack.md#4-psds_eval-macro-f1-leaves-out-nan-classes",
        ]
    )
    assert citation_problems("example.py", text) == []
