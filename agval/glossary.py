"""Metric glossary and pitfall names for reports.

* :func:`build_glossary` parses the ``| key | meaning |`` tables of
  ``docs/metrics-{qtl,twas,mpra}.md`` into ``{kind: {key: meaning}}``; the result ships as
  package data (``agval/metrics_glossary.json``, regenerated with
  ``python -m agval.glossary docs``; a test checks it is in sync with the docs).
* :func:`glossary` loads the shipped table; :data:`PITFALLS` names the study spec's
  pitfall codes P1-P32 (``STUDIES.md``) in words.
"""

from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path

KINDS = ("qtl", "twas", "mpra")
_PACKAGED = Path(__file__).with_name("metrics_glossary.json")
_ROW = re.compile(r"^\|\s*(`[^|]+?)\s*\|\s*(.+?)\s*\|\s*$")
_KEY = re.compile(r"`([^`]+)`")

PITFALLS: dict[str, str] = {
    "P1": "GTEx column 6 is the nominal P value, not the slope",
    "P2": "hg19 peak file intersected with hg38 positions",
    "P3": "caQTL effect allele unknown: direction unverified, test magnitude",
    "P4": "hQTL beta sign inverted after seeing the result",
    "P5": "opposing-biology tracks averaged (ATAC + DNase + repressive marks)",
    "P6": "all histone marks averaged regardless of the QTL's mark; wrong cell type",
    "P7": "per-track quantile scores averaged and correlated",
    "P8": "failed hg38 lookup falling back to hg19 positions",
    "P9": "rows joined on a non-unique variant key (duplicates collapse)",
    "P10": "multi-allelic lookup: last hit wins, silent drops",
    "P11": "no reference-allele check against hg38",
    "P12": "placeholder alleles (negative control only)",
    "P13": "silent mock predictions written to real result paths",
    "P14": "every DNase track averaged and called one cell type",
    "P15": "top-variants panel sorted by signed, not absolute, score",
    "P16": "N-padded oligos (small-n artefact)",
    "P17": "few distinct model inputs for many rows (pseudo-replication)",
    "P18": "strand handling of the element inverts minus-strand sites",
    "P19": "merge on a non-unique key multiplies rows",
    "P20": "checkpoint resume discarded rows",
    "P21": "TWAS Q4 score contains the GWAS z that drives TWAS.Z",
    "P22": "TWAS Q1 binomial P anti-conservative and one-sided",
    "P23": "GWAS z must be oriented to the AlphaGenome ALT allele",
    "P24": "mouse sequences scored with human tracks",
    "P25": "off-centre window; stranded tracks mixed",
    "P26": "no DNA-count or barcode filter on MPRA counts",
    "P27": "wrong dataset attributions in the seed's docs",
    "P28": "API key committed to the repository",
    "P29": "duplicate or unordered scorers",
    "P30": "TWAS Q1 self-inclusion: TWAS.Z contains the variant's own eQTL effect",
    "P31": "shared units resampled as if independent",
    "P32": "TWAS Q3 has no null and is confounded by gene-level signal",
}
"""Pitfall code -> short name (``../shared/docs/STUDIES.md``, pitfalls table)."""

PITFALL_CODE = re.compile(r"\bP([1-9]|[12][0-9]|3[0-2])\b")


def _plain(md: str) -> str:
    """Markdown cell -> plain text (backticks and emphasis removed, escaped pipes kept)."""
    s = md.replace("\\|", "|")
    s = re.sub(r"\*\*(.+?)\*\*", r"\1", s)
    return s.replace("`", "").strip()


def parse_metrics_doc(text: str) -> dict[str, str]:
    """``{key: meaning}`` from every two-column markdown table row whose first cell holds
    backticked key names (a row naming several keys gives each the same meaning; the
    first definition of a key wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        meaning = _plain(cells[1])
        for key in _KEY.findall(cells[0]):
            key = key.strip()
            if key and key not in out:
                out[key] = meaning
    return out


def build_glossary(docs_dir: str | Path) -> dict[str, dict[str, str]]:
    """``{kind: {key: meaning}}`` from ``docs_dir/metrics-<kind>.md``."""
    d = Path(docs_dir)
    return {k: parse_metrics_doc((d / f"metrics-{k}.md").read_text()) for k in KINDS
            if (d / f"metrics-{k}.md").is_file()}


@lru_cache(maxsize=1)
def glossary() -> dict[str, dict[str, str]]:
    """The shipped glossary (empty when the package data is missing)."""
    try:
        return json.loads(_PACKAGED.read_text())
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    docs = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "docs"
    _PACKAGED.write_text(json.dumps(build_glossary(docs), indent=1, sort_keys=True) + "\n")
    print(f"wrote {_PACKAGED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
