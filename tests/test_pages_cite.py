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


ROLE = re.compile(r"\{claim\}`([^`]+)`")


def _all_claim_ids() -> set:
    return {c["id"] for p in BOOK.glob("[0-9][0-9]-*.claims.json") for c in json.loads(p.read_text())["claims"]}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_number_put_in_prose_by_a_claim_role_exists(path):
    """``{claim}`4.3``` shows claim 4.3's measured value from the claims files: the id must be in one."""
    missing = sorted(set(ROLE.findall(_prose(path))) - _all_claim_ids())
    assert not missing, f"{path.name} puts claims no claims file has into its prose: {missing}"


def test_every_claim_that_fails_says_why_and_no_cause_is_stale():
    from msnn.book import scorecard

    problems = scorecard.cause_problems(str(ROOT))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", [p for p in CHAPTERS if p.with_suffix(".claims.json").exists()], ids=lambda p: p.stem)
def test_every_chapter_shows_why_its_claims_fail(path):
    """The claims table of a chapter is followed by the table of its FAIL causes (the ``claim-causes`` directive)."""
    prose = _prose(path)
    assert re.search(r"^```\{claim-causes\}\s*\n```", prose, flags=re.M), \
        f"{path.name} has no claim-causes directive under its claims table"
    assert prose.index("{claim-causes}") > prose.index("## Claims"), f"{path.name}: the causes come before the claims"
