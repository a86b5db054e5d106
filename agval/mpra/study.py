"""The ``[study]`` section of an MPRA study file (:class:`MPRAStudy`) and the checks made
before any service is contacted (:func:`check_study`). Plain pydantic, no Prefect;
``flows/mpra.py`` runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agval.errors import ConfigError
from agval.mpra.aggregates import center_bounds, choose_bin_size
from agval.mpra.backbone import BACKBONE_SEED
from agval.mpra.sequences import check_length
from agval.stats.mpra import DEFAULT_WARN_RATIO

__all__ = ["MPRAStudy", "STRAND_SUFFIXES", "OUTPUT_TYPES", "check_study", "cluster_column", "study_inputs"]

STRAND_SUFFIXES = ("_plus", "_minus", "_unstranded")
OUTPUT_TYPES = ("ATAC", "CAGE", "DNASE", "RNA_SEQ", "PROCAP", "CHIP_HISTONE", "CHIP_TF")


class MPRAStudy(BaseModel):
    """The ``[study]`` section of an MPRA study file (paths relative to the file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("mpra", description="study name (run folder and report title)")
    # -- measured activity
    counts: list[str] = Field(default_factory=list, description="count files (GSE84888 *_MPRA.txt or count tables)")
    count_format: Literal["gse84888", "table"] = "gse84888"
    pools: list[str] | None = Field(None, description="one pool name per count file (default: from the file name)")
    build: str = Field("mm9", description="genome build of the coordinates in the construct names")
    pseudocount: float = Field(1.0, ge=0)
    min_dna: float = Field(0, ge=0, description="drop constructs with fewer DNA (plasmid) counts")
    min_tags: int = Field(0, ge=0, description="drop constructs with fewer barcodes (tags)")
    aggregate: Literal["auto", "none", "mean", "median", "sum"] = Field(
        "auto", description="count tables: combine barcode rows per element (auto: sum when per-barcode)")
    # -- model inputs
    sequences: str | None = Field(None, description="element sequences (FASTA or table, keyed by element id)")
    element_source: Literal["auto", "sequences", "seq16", "reference"] = Field(
        "auto", description="what is inserted: the given sequences, the locus 16-mer of the GSE84888 name, or "
        "the reference bases at the coordinates (auto: sequences if given, else seq16)")
    reference_fasta: str | None = Field(None, description="reference FASTA for genomic flanks / reference elements")
    backbone: Literal["neutral", "reference"] = Field(
        "neutral", description="what surrounds the element: the fixed neutral backbone or its reference flanks")
    backbone_seed: int = Field(BACKBONE_SEED, description="seed of the neutral backbone (agval.mpra.backbone)")
    element_orientation: Literal["strand", "plus"] = Field(
        "strand", description="given sequences are written on the construct's strand (strand) or genomic + (plus)")
    coordinate_base: Literal[0, 1] = Field(0, description="0: name coordinates are 0-based half-open [start, end)")
    n_policy: Literal["refuse", "drop"] = Field("refuse", description="inputs containing N: refuse (error) or drop")
    sequence_length: int = Field(16_384, description="model input length: 16384, 131072, 524288 or 1048576")
    center_window: int = Field(200, ge=1, description="width of the centred aggregate window (bp)")
    # -- predictions
    organism: Literal["MUS_MUSCULUS", "HOMO_SAPIENS"] = "MUS_MUSCULUS"
    ontology_terms: list[str] = Field(default_factory=lambda: ["CL:0000136"],
                                      description="track ontology terms (mouse adipocyte CL:0000136; 3T3-L1 "
                                                  "EFO:0001084)")
    outputs: list[str] = Field(default_factory=lambda: ["DNASE", "CAGE", "RNA_SEQ"])
    all_tracks: bool = Field(False, description="explicit opt-in to an empty ontology_terms: average EVERY track "
                             "of the requested outputs (pitfall P14: 305 DNase tracks are not one cell type)")
    sensitivity_ontology_terms: list[str] = Field(
        default_factory=list, description="a named sensitivity run with other tracks (e.g. K562 EFO:0002067)")
    sensitivity_organism: Literal["MUS_MUSCULUS", "HOMO_SAPIENS"] = "HOMO_SAPIENS"
    concurrency: int = Field(4, ge=1, le=64)
    # -- precomputed path
    predictions: str | None = Field(None, description="table of predictions (element or locus id -> aggregates)")
    predictions_key: str | None = Field(None, description="key column of the predictions table (auto)")
    prediction_columns: list[str] | None = Field(
        None, description="aggregate columns (default: the columns named <assay>_<aggregate>, e.g. dnase_center, "
        "or pred_<name>; agval.mpra.predictions.is_prediction_column)")
    measured_column: str | None = Field(None, description="the predictions table carries the measured activity "
                                                          "in this column (then no counts are needed)")
    input_column: str | None = Field(None, description="column naming the distinct model input (default: the key)")
    predictions_simulated: bool = Field(False, description="the predictions table came from a stand-in")
    # -- statistics
    cluster_by: Literal["auto", "locus", "input"] = Field(
        "auto", description="resampling unit of CIs and permutations (auto: locus when known, else input)")
    n_boot: int = Field(2000, ge=0)
    n_perm: int = Field(1000, ge=0)
    seed: int = 0
    warn_ratio: float = Field(DEFAULT_WARN_RATIO, gt=1, description="rows / distinct inputs that triggers the "
                                                                    "pseudo-replication warning")
    strata: list[str] = Field(default_factory=lambda: ["strand", "tf", "chromosome"])
    strata_min_size: int = Field(10, ge=1)
    primary_aggregate: str | None = Field(None, description="aggregate for strata and headline (default: "
                                                            "<first output>_center)")
    robustness_min_dna: list[float] = Field(default_factory=lambda: [0, 10, 100])
    published: str | None = Field(
        None, description="published reference set shown beside the run (agval.published): a set id, 'none', "
        "or default (GSE84888 count files: grossman2017-mpra-v2)")
    figures: Literal["all", "summary", "none"] = Field(
        "all", description="all figures; summary: scatter of the primary aggregate, ROC, heatmap, TF bars, "
        "wild type vs mutant; none")

    @field_validator("published")
    @classmethod
    def _published_set(cls, v: str | None) -> str | None:
        from agval.published import checked_set_field

        return checked_set_field(v)

    @model_validator(mode="after")
    def _check(self):
        if not self.counts and not (self.predictions and self.measured_column):
            raise ValueError("give count files, or a predictions table with measured_column")
        if not self.ontology_terms and not self.all_tracks and not self.predictions:
            raise ValueError("ontology_terms is empty: that would average every track of every biosample "
                             "(pitfall P14); name the tracks' ontology terms, or set all_tracks = true to "
                             "average all of them on purpose")
        if self.ontology_terms and self.all_tracks:
            raise ValueError("all_tracks = true contradicts a non-empty ontology_terms; give one of them")
        bad = [o for o in self.outputs if o.upper() not in OUTPUT_TYPES]
        if bad or not self.outputs:
            raise ValueError(f"outputs must be among {list(OUTPUT_TYPES)}, got {self.outputs}")
        return self


def check_study(study: MPRAStudy) -> dict[str, Any]:
    """Everything that can be refused before any service is contacted: the input length
    (:class:`~agval.errors.UnsupportedSequenceError`), the centre window, the element source."""
    plan: dict[str, Any] = {"precomputed": bool(study.predictions)}
    for role, paths in (("counts", study.counts), ("sequences", [study.sequences]),
                        ("reference_fasta", [study.reference_fasta]), ("predictions", [study.predictions])):
        for p in paths:
            if p and not Path(p).is_file():
                raise ConfigError(f"{role} file not found: {p} (relative paths are taken from the working "
                                  f"folder {Path.cwd()}; in a study file, from the file's folder)")
    if study.predictions:
        return plan
    check_length(study.sequence_length)
    center_bounds(study.sequence_length, study.center_window)
    source = study.element_source
    if source == "auto":
        source = "sequences" if study.sequences else ("seq16" if study.count_format == "gse84888" else None)
        if source is None:
            raise ConfigError("a count table needs element sequences (sequences=...) or a predictions table")
    if source == "sequences" and not study.sequences:
        raise ConfigError("element_source='sequences' needs sequences (a FASTA or table)")
    if source in ("seq16", "reference") and study.count_format != "gse84888":
        raise ConfigError(f"element_source={source!r} needs GSE84888 construct names (coordinates, 16-mer)")
    if (source == "reference" or study.backbone == "reference") and not study.reference_fasta:
        raise ConfigError("genomic flanks / reference elements need reference_fasta")
    plan.update(source=source, bin_size=choose_bin_size(study.sequence_length, study.center_window),
                outputs=[o.upper() for o in dict.fromkeys(study.outputs)])
    return plan



def cluster_column(study: MPRAStudy, frame: pl.DataFrame) -> str:
    """The resampling unit of intervals and permutations: ``locus_id`` or ``input_id``.

    Raises:
        ConfigError: ``cluster_by = "locus"`` without a locus column."""
    if study.cluster_by == "input" or (study.cluster_by == "auto" and "locus_id" not in frame.columns):
        return "input_id"
    if "locus_id" not in frame.columns:
        raise ConfigError("cluster_by='locus' needs a locus (GSE84888 names or a locus_id column)")
    return "locus_id"


def study_inputs(study: MPRAStudy) -> dict[str, str | None]:
    """Every input file of the study by role (``counts:<i>``, ``sequences``, ``predictions``,
    ``reference_fasta`` when used), hashed into the run manifest."""
    inputs: dict[str, str | None] = {f"counts:{i}": p for i, p in enumerate(study.counts)}
    inputs.update(sequences=study.sequences, predictions=study.predictions)
    if study.backbone == "reference" or study.element_source == "reference":
        inputs["reference_fasta"] = study.reference_fasta
    return inputs
