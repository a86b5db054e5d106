"""Gene identifiers: the one version rule.

Ensembl gene ids carry a version (``ENSG00000141510.16``); studies, GTEx models and the
AlphaGenome catalogue disagree on whether they write it, so every comparison is made on
the id without it. GENCODE's pseudo-autosomal copies on chrY are written
``ENSG00000002586.20_PAR_Y``: the suffix marks a different gene row and is **kept**
(``ENSG00000002586_PAR_Y``). Ids that are not Ensembl-style (gene symbols, ``None``)
are returned unchanged (bar surrounding whitespace).
"""

from __future__ import annotations

import re

__all__ = ["GENE_VERSION_PATTERN", "strip_gene_version", "strip_gene_version_expr"]

#: ``ENS<species letters><digits>`` followed by ``.<version>``: group 1 is the id kept.
GENE_VERSION_PATTERN = r"^(ENS[A-Z]*\d+)\.\d+"
_GENE_VERSION = re.compile(GENE_VERSION_PATTERN)


def strip_gene_version(gene_id: str | None) -> str | None:
    """``ENSG00000141510.16`` -> ``ENSG00000141510``; ``ENSG00000002586.20_PAR_Y`` ->
    ``ENSG00000002586_PAR_Y``; ``None`` -> ``None``; other ids unchanged."""
    if gene_id is None:
        return None
    return _GENE_VERSION.sub(r"\1", str(gene_id).strip(), count=1)


def strip_gene_version_expr(e):
    """:func:`strip_gene_version` on a polars text expression (nulls stay null)."""
    return e.str.strip_chars().str.replace(GENE_VERSION_PATTERN, "${1}")
