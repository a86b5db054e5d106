"""Step 4-5 as data: which scorers each analysis needs and which tracks it keeps.

An :class:`Analysis` is one correlation of a score with beta: its mode (``original`` /
``corrected``), biosample, the scorers (output types) it needs, the
:class:`~agval.scoring.TrackSelection` of its tracks, the score column (quantile or raw),
the beta column, a per-row match (``mark``: the track's histone mark must equal the row's
mark; ``gene``: the gene-level score of the row's own gene) and how tracks are pooled.

=========== ============================================ =============================================
kind        original (the seed's choices)                corrected
=========== ============================================ =============================================
caqtl       mean QUANTILE over every ATAC + DNASE +      RAW ATAC and DNASE of ``biosample`` per track,
            CHIP_HISTONE track of CL:0000624 (8 tracks,  pooled = mean raw (P5, P7)
            incl. repressive H3K27me3/H3K9me3) (P5)
hqtl        mean QUANTILE over every CHIP_HISTONE track  RAW CHIP_HISTONE track whose histone_mark is
            of CL:0000236 (10 marks) (P6), beta negated  the row's mark, on GM12878 EFO:0002784;
            (P4)                                         sensitivity: the same on CL:0000236
eqtl        mean QUANTILE over every RNA_SEQ track (and  RAW RNA_SEQ of the matched tissue, the row's
            gene) of the biosample                       own gene only
generic     mean QUANTILE over ``output_types``          RAW ``output_types`` (default ATAC, DNASE)
=========== ============================================ =============================================

:func:`plan_analyses` builds the list for a study, :func:`scorers_for` the deduplicated,
ordered scorer list (P29: duplicates raise in the SDK, ``set()`` order is random).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from agval.qtl.study import QTLStudy
from agval.scoring import TrackSelection
from agval.stats.qtl import DEFAULT_UNIT_WINDOW

__all__ = ["Analysis", "plan_analyses", "scorers_for", "ORIGINAL_OUTPUTS", "CORRECTED_OUTPUTS"]

#: the seed's scorer keys per kind (STUDIES.md §1.3: modality map, deduplicated)
ORIGINAL_OUTPUTS: dict[str, tuple[str, ...]] = {
    "caqtl": ("ATAC", "DNASE", "CHIP_HISTONE"),
    "hqtl": ("CHIP_HISTONE",),
    "eqtl": ("RNA_SEQ",),
    "generic": ("ATAC", "DNASE"),
}
CORRECTED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "caqtl": ("ATAC", "DNASE"),
    "hqtl": ("CHIP_HISTONE",),
    "eqtl": ("RNA_SEQ",),
    "generic": ("ATAC", "DNASE"),
}


@dataclass(frozen=True)
class Analysis:
    """One score-vs-beta analysis (see the module docstring)."""

    name: str                                   # original | corrected | corrected@<CURIE> | <column>
    mode: Literal["original", "corrected"]
    biosample: str | None
    outputs: tuple[str, ...]                    # scorer keys (RECOMMENDED_VARIANT_SCORERS)
    selection: TrackSelection
    score_col: Literal["raw_score", "quantile_score"]
    beta_col: Literal["beta_seed", "beta_alt"]
    match: Literal["mark", "gene"] | None = None
    sensitivity: bool = False
    description: str = ""
    column: str | None = None                   # precomputed path: the prediction column
    one_row_per: str | None = None              # keep the first row per value of this column (hQTL
                                                # original: one row per SNP, as the seed scored it)
    unit_window: int = DEFAULT_UNIT_WINDOW      # LD window (bp) of the resampling unit (study.unit_window)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "biosample": self.biosample, "outputs": list(self.outputs),
                "selection": self.selection.to_dict(), "score": self.score_col, "beta": self.beta_col,
                "match": self.match, "pool": "mean", "sensitivity": self.sensitivity,
                "description": self.description, "column": self.column, "one_row_per": self.one_row_per,
                "unit_window": self.unit_window}


def _sel(name: str, outputs: tuple[str, ...], study: QTLStudy, curie: str | None,
         marks: list[str] | None = None) -> TrackSelection:
    kw: dict[str, Any] = {"name": name, "output_types": outputs}
    if curie:
        kw["ontology_curies"] = (curie,)
    elif study.gtex_tissue:
        kw["gtex_tissues"] = (study.gtex_tissue,)
    if marks:
        kw["histone_marks"] = tuple(marks)
    return TrackSelection(**kw)


def plan_analyses(study: QTLStudy, *, marks: list[str] | None = None,
                  prediction_columns: dict[str, str] | None = None) -> list[Analysis]:
    """The analyses of ``study`` in report order: original, corrected, then sensitivity.

    ``marks`` (hQTL): the marks present in the table (restricts the corrected selection).
    ``prediction_columns`` (precomputed path): analysis name -> column
    (:func:`agval.qtl.precomputed.resolve_prediction_columns`).
    """
    if study.predictions:
        return [replace(a, unit_window=study.unit_window)
                for a in _precomputed_analyses(prediction_columns or study.prediction_columns or {})]
    kind = study.kind
    out: list[Analysis] = []
    corrected_outputs = tuple(o.upper() for o in study.output_types) if study.output_types \
        else CORRECTED_OUTPUTS[kind]
    original_outputs = ORIGINAL_OUTPUTS[kind] if kind != "generic" else corrected_outputs
    match = {"hqtl": "mark", "eqtl": "gene"}.get(kind)
    if "original" in study.modes:
        out.append(Analysis(
            "original", "original", study.original_biosample, original_outputs,
            _sel("original", original_outputs, study, study.original_biosample),
            "quantile_score", "beta_seed", None, one_row_per="source_row" if kind == "hqtl" else None,
            description=(f"the seed's choices: mean quantile score over every {'/'.join(original_outputs)} track "
                         f"of {study.original_biosample or study.gtex_tissue}"
                         + ("; beta negated" if study.seed_negate_beta else "")
                         + ("; one row per SNP (the seed's unit), not per mark" if kind == "hqtl" else ""))))
    if "corrected" in study.modes:
        for curie, sens in [(study.biosample, False)] + [(c, True) for c in study.sensitivity_biosamples or []]:
            name = "corrected" if not sens else f"corrected@{curie}"
            out.append(Analysis(
                name, "corrected", curie, corrected_outputs,
                _sel(name, corrected_outputs, study, curie, marks if match == "mark" else None),
                "raw_score", "beta_alt", match, sensitivity=sens,
                description=(f"raw scores of {'/'.join(corrected_outputs)} on {curie or study.gtex_tissue}"
                             + {"mark": ", the track of the row's histone mark",
                                "gene": ", the row's own gene"}.get(match or "", ", per track and pooled (mean)")
                             + f"; beta oriented by the declared convention ({study.effect_allele})")))
    return [replace(a, unit_window=study.unit_window) for a in out]


def _precomputed_analyses(cols: dict[str, str]) -> list[Analysis]:
    out = []
    for name, col in cols.items():
        mode = "original" if name.startswith("original") else "corrected"
        out.append(Analysis(name, mode, None, (), TrackSelection(name=name), "raw_score",
                            "beta_seed" if mode == "original" else "beta_alt", None, column=col,
                            description=f"precomputed column {col!r}"))
    return out


def scorers_for(analyses: list[Analysis]) -> list[str]:
    """The scorer keys every analysis needs, deduplicated in first-seen order (P29)."""
    return list(dict.fromkeys(o for a in analyses for o in a.outputs))
