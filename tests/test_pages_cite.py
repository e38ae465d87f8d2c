"""The chapters' prose cites only claims their tables have, and only documents a reader has."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]-*.md"))
# "claim 4.5c", "claims 9.2f, 9.2c and 9.3c", "Claims 7.2p and 7.6p", "(claims B.4r and B.4m)"
CITE = re.compile(r"\b[Cc]laims?\s+((?:[A-Z]?[A-Z0-9]*\.?\d+[a-z]*)(?:(?:,\s*|,?\s+and\s+)(?:[A-Z]?[A-Z0-9]*\.?\d+[a-z]*))*)")
ID = re.compile(r"[A-Z]?[A-Z0-9]*\.?\d+[a-z]*")
# documents of the project's own workshop, which a reader of the book does not have
UNSEEN = ("PAPER.md", "DESIGN.md", "STYLE.md", "MEASURED.md", "shared/", "seed 003", "seeds/", "design notes")


def _prose(path: Path) -> str:
    """The markdown of a chapter source outside its code cells."""
    return re.sub(r"^```\{code-cell\}.*?^```", "", path.read_text(), flags=re.S | re.M)


def _claims_of(chapter_number: str) -> set:
    path = next(BOOK.glob(f"{chapter_number}-*.claims.json"), None)
    return set() if path is None else {c["id"] for c in json.loads(path.read_text())["claims"]}


def _owner(claim_id: str) -> str:
    """The chapter whose table holds a claim: "4.5c" -> "04", "B.4r" -> "11" (the book's own claims)."""
    return "11" if claim_id.startswith("B.") else f"{int(claim_id.split('.')[0]):02d}"


def test_the_citation_pattern_reads_lists_of_claims():
    text = "as claims 9.2f, 9.2c and 9.3c show; claim B.4r; Claims 7.2p and 7.6p give"
    assert [ID.findall(m) for m in CITE.findall(text)] == [["9.2f", "9.2c", "9.3c"], ["B.4r"], ["7.2p", "7.6p"]]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_cited_claim_is_in_a_claims_table(path):
    missing = []
    for group in CITE.findall(_prose(path)):
        for cid in ID.findall(group):
            table = _claims_of(_owner(cid)) if re.match(r"^(\d+\.\d+[a-z]*|B\.\d+[a-z]*)$", cid) else set()
            # "claims 8.3" names the group 8.3a, 8.3b, ...
            if cid not in table and not any(re.fullmatch(re.escape(cid) + r"[a-z]+", t) for t in table):
                missing.append(cid)
    assert not missing, f"{path.name} cites claims no rendered table has: {sorted(set(missing))}"


@pytest.mark.parametrize("path", CHAPTERS + [BOOK / "intro.md", BOOK / "use-msnn.md", BOOK / "api.md"],
                         ids=lambda p: p.stem)
def test_no_page_names_a_document_the_reader_does_not_have(path):
    text = path.read_text()
    named = [d for d in UNSEEN if d in text]
    assert not named, f"{path.name} names {named}, which a reader of the book does not have"
