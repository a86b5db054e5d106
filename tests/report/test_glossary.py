"""The report's metric glossary is generated from docs/metrics-*.md and ships in sync."""

from __future__ import annotations

import json
from pathlib import Path

from agval import glossary as g

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_packaged_glossary_matches_the_docs():
    built = g.build_glossary(DOCS)
    shipped = json.loads((Path(g.__file__).with_name("metrics_glossary.json")).read_text())
    assert shipped == built, "run: python -m agval.glossary docs"
    assert built["qtl"]["headline_statistic"] and built["mpra"]["primary_aggregate"]
    assert len(built["twas"]) > 20


def test_parse_rows_with_several_keys_and_escaped_pipes():
    text = "| key | meaning |\n|---|---|\n| `a`, `b` | the **same** \\| thing |\n| plain | skipped |\n"
    assert g.parse_metrics_doc(text) == {"a": "the same | thing", "b": "the same | thing"}


def test_every_pitfall_code_is_named():
    assert sorted(g.PITFALLS, key=lambda c: int(c[1:])) == [f"P{i}" for i in range(1, 33)]
    assert g.PITFALL_CODE.findall("P3 and P32, not P33 or P0") == ["3", "32"]
