"""The QTL study description: a pydantic model (the flow's typed parameter and the
``[study]`` section of a study file).

A study file (TOML; paths are relative to the file)::

    [study]
    name = "hqtl-lcl"
    kind = "hqtl"                      # caqtl | hqtl | eqtl | generic
    table = "Pelikan_et_al_hQTL_summary.csv"
    format = "gse116193"               # gse86886 | gse116193 | gtex | generic (default by kind)
    reference_fasta = "GRCh38.fa"      # hg38 FASTA for the reference-allele check
    biosample = "EFO:0002784"          # corrected mode (default by kind)
    original_biosample = "CL:0000236"  # the seed's biosample (default by kind)
    sensitivity_biosamples = ["CL:0000236"]
    effect_allele = "column:ref"       # declared a priori: alt | ref | unknown | column:<name>
    other_allele = "alt"
    modes = ["original", "corrected"]

Defaults that depend on ``kind`` are filled in when the model is built (so the run's
manifest records what was used):

========= ========= =============== ======================= =============== ===============
kind      format    biosample       original_biosample      sensitivity     seed negation
========= ========= =============== ======================= =============== ===============
caqtl     gse86886  CL:0000624      CL:0000624              []              no
hqtl      gse116193 EFO:0002784     CL:0000236              [CL:0000236]    yes (P4)
eqtl      gtex      (required)      = biosample             []              no
generic   generic   (required)      = biosample             []              no
========= ========= =============== ======================= =============== ===============
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agval.alleles.harmonize import EffectConvention
from agval.errors import ConfigError
from agval.qtl.causality import CausalitySettings
from agval.stats.qtl import DEFAULT_UNIT_WINDOW

__all__ = ["QTLStudy", "KIND_DEFAULTS", "DEFAULT_INTERVAL_WIDTH", "MODES"]

DEFAULT_INTERVAL_WIDTH = 1_048_576
MODES = ("original", "corrected")

#: kind -> (format, corrected biosample, original biosample, sensitivity biosamples, negate beta)
KIND_DEFAULTS: dict[str, tuple[str, str | None, str | None, list[str], bool]] = {
    "caqtl": ("gse86886", "CL:0000624", "CL:0000624", [], False),
    "hqtl": ("gse116193", "EFO:0002784", "CL:0000236", ["CL:0000236"], True),
    "eqtl": ("gtex", None, None, [], False),
    "generic": ("generic", None, None, [], False),
}


class QTLStudy(BaseModel):
    """One QTL study: what to load, how to orient it, what to score and how to test it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="study name (run folder and artifact keys)")
    kind: Literal["caqtl", "hqtl", "eqtl", "generic"] = Field(
        ..., description="caqtl: chromatin accessibility; hqtl: histone marks; eqtl: expression; generic")
    table: str = Field(..., description="the QTL table (path)")
    format: Literal["gse86886", "gse116193", "gtex", "generic", "causality"] | None = Field(
        None, description="table layout; default by kind (gse86886, gse116193, gtex, generic); 'causality' "
        "(chrom, pos, ref, alt, label, effect[, p, score_<model>...]) for benchmark = 'causality'")
    reference_fasta: str | None = Field(None, description="hg38 FASTA (+ .fai) for the reference-allele check; "
                                        "default: the stand-in world's genome.fa when the backend is a stand-in")
    build: str | None = Field(None, description="generic tables: genome build of chrom/pos when the file has no "
                              "build column (hg38 only is scored; hg19 coordinates need an rsID or a liftover)")
    columns: dict[str, str] | None = Field(None, description="generic tables: canonical name -> exact header")
    dataset: str | None = Field(None, description="row-id prefix (default: caQTL / hQTL / the file name)")
    biosample: str | None = Field(None, description="ontology CURIE of the corrected mode's tracks "
                                  "(caqtl CL:0000624, hqtl EFO:0002784 GM12878; required for eqtl/generic)")
    original_biosample: str | None = Field(None, description="the seed's biosample (hqtl: CL:0000236 primary "
                                           "B cell); default = biosample")
    sensitivity_biosamples: list[str] | None = Field(None, description="corrected-mode re-runs on other "
                                                     "biosamples (hqtl default: CL:0000236)")
    gtex_tissue: str | None = Field(None, description="eqtl: select RNA_SEQ tracks by GTEx tissue name "
                                    "instead of the biosample CURIE")
    output_types: list[str] | None = Field(None, description="override the corrected mode's output types "
                                           "(generic default: ATAC, DNASE)")
    marks: list[str] | None = Field(None, description="hqtl: marks to analyse (default: every mark in the table)")
    effect_allele: str | None = Field(None, description="allele of a positive beta, declared a priori: 'alt', "
                               "'ref', 'unknown' or 'column:<name>' (a column of the loaded table, e.g. "
                               "column:ref for the hQTL file's Ref Allele). 'alt'/'ref' are the table's own "
                               "allele columns (allele_columns, ordered ref, alt) when it has them, else dbSNP's. "
                               "Default: 'alt' for GTEx tables (their slope is for the ALT of "
                               "chr_pos_ref_alt_b38), 'unknown' otherwise")
    other_allele: str | None = Field(None, description="with effect_allele column:<name>: the other allele's column")
    allele_columns: list[str] | None = Field(None, description="with alt/ref/unknown: the study's allele columns "
                                             "in the order ref, alt, used to pick and verify the dbSNP record "
                                             "(hqtl default: ref, alt)")
    allele_route: Literal["auto", "lookup", "coordinates"] = Field(
        "auto", description="lookup: rsID -> hg38 alleles (myvariant/VCF); coordinates: the table's own hg38 "
        "chrom/pos/ref/alt (GTEx); auto: coordinates for gtex, lookup otherwise")
    seed_negate_beta: bool | None = Field(None, description="original mode: negate beta as the seed did "
                                          "(default: hqtl yes, others no)")
    modes: list[Literal["original", "corrected"]] = Field(default_factory=lambda: list(MODES))
    interval_width: int = Field(DEFAULT_INTERVAL_WIDTH, gt=0, description="scoring interval (bp), 1 Mb default")
    n_boot: int = Field(2000, ge=0, description="bootstrap replicates (resampling the true unit: connected "
                        "components of {peak, SNP}; the SNP for hQTL)")
    n_perm: int = Field(1000, ge=0, description="cluster permutations of every headline P value (0: none)")
    unit_window: int = Field(DEFAULT_UNIT_WINDOW, ge=0, description="LD window (bp) of the resampling unit: "
                             "variants within this distance on one chromosome (single linkage) are one "
                             "unit, with the SNPs and peaks they share; 0: ids only (docs/metrics-qtl.md)")
    primary_cell: str | None = Field(
        None, description="the pre-specified primary cell of the corrected analysis, reported apart and "
        "unadjusted (others are Benjamini-Hochberg adjusted): an output type (caqtl default ATAC; DNASE is "
        "secondary, the ATAC+DNASE pool a sensitivity row), a histone mark (hqtl default H3K27ac, or the "
        "first of 'marks'), 'per_snp', or 'pooled' (eqtl/generic default)")
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = Field(0, description="seed of every random draw (recorded in the manifest)")
    predictions: str | None = Field(None, description="precomputed path: a table row_id -> score column(s); "
                                    "no lookup and no scoring")
    prediction_columns: dict[str, str] | None = Field(
        None, description="precomputed path: analysis name (original/corrected/...) -> score column; default: "
        "corrected -> the first numeric column")
    planted_spearman: float | None = Field(None, ge=-1, le=1, description="SIMULATED studies: the planted "
                                           "population Spearman correlation (reported against the CI)")
    planted_statistic: Literal["spearman_rho", "magnitude_spearman_rho"] | None = Field(
        None, description="which statistic planted_spearman refers to")
    benchmark: Literal["correlation", "causality"] = Field(
        "correlation", description="correlation: scores vs effect sizes among QTLs (the seed analyses); "
        "causality: QTL variants vs matched controls (auPRC of |score|) and direction (Pearson over the "
        "positives) per split, agval.qtl.causality")
    causality: CausalitySettings = Field(default_factory=CausalitySettings,
                                         description="[study.causality]: the causality benchmark's settings")
    published: str | None = Field(
        None, description="published reference set shown beside the run (agval.published): a set id, "
        "'none', or default (caqtl/hqtl in the seed's own format: the seed study's published numbers)")
    description: str = ""

    @field_validator("effect_allele")
    @classmethod
    def _convention(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return str(EffectConvention.parse(v))
        except ConfigError as e:
            raise ValueError(str(e)) from None

    @field_validator("published")
    @classmethod
    def _published_set(cls, v: str | None) -> str | None:
        from agval.published import checked_set_field

        return checked_set_field(v)

    @field_validator("modes")
    @classmethod
    def _modes(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one mode (original, corrected)")
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _defaults(self) -> "QTLStudy":
        fmt, bios, orig, sens, negate = KIND_DEFAULTS[self.kind]
        if self.format is None:
            self.format = "causality" if self.benchmark == "causality" else fmt  # type: ignore[assignment]
        if (self.benchmark == "causality") != (self.format == "causality"):
            raise ValueError("benchmark = 'causality' reads the causality layout (format 'causality') and only it")
        if self.benchmark == "causality" and self.predictions:
            raise ValueError("benchmark = 'causality' reads baseline scores from the table's score_<model> "
                             "columns, not from 'predictions'")
        if self.effect_allele is None:
            # GTEx v8 slopes are for the ALT allele of chr_pos_ref_alt_b38 (STUDIES.md P1)
            self.effect_allele = "alt" if self.format == "gtex" else "unknown"
        if self.biosample is None:
            self.biosample = bios
        if self.original_biosample is None:
            self.original_biosample = orig or self.biosample
        if self.sensitivity_biosamples is None:
            self.sensitivity_biosamples = list(sens)
        if self.seed_negate_beta is None:
            self.seed_negate_beta = negate
        if self.allele_columns is None and self.kind == "hqtl" and not self.effect_allele.startswith("column:"):
            self.allele_columns = ["ref", "alt"]
        if self.biosample is None and not self.gtex_tissue and not (
                self.benchmark == "causality" and not self.causality.live_model):
            raise ValueError(f"kind {self.kind!r} needs 'biosample' (an ontology CURIE) or 'gtex_tissue'")
        if self.primary_cell is None:
            if self.kind == "caqtl":
                self.primary_cell = "ATAC"
            elif self.kind == "hqtl":
                marks = [m for m in (self.marks or [])]
                self.primary_cell = ("H3K27ac" if not marks or "h3k27ac" in [m.lower() for m in marks]
                                     else marks[0])
            elif self.kind == "generic":
                self.primary_cell = self.output_types[0].upper() if self.output_types else "ATAC"
            else:
                self.primary_cell = "pooled"
        if self.planted_spearman is not None and self.planted_statistic is None:
            self.planted_statistic = "spearman_rho"
        return self

    # -- derived -----------------------------------------------------------------------
    @property
    def convention(self) -> EffectConvention:
        return EffectConvention.parse(self.effect_allele)

    @property
    def route(self) -> str:
        """``lookup`` / ``coordinates`` / ``precomputed`` (see ``allele_route``)."""
        if self.predictions:
            return "precomputed"
        if self.allele_route != "auto":
            return self.allele_route
        return "coordinates" if self.format == "gtex" else "lookup"
