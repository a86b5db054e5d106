"""The ``[study]`` section of a TWAS study file (:class:`TWASStudy`) and the notes every
TWAS report carries. Plain pydantic, no Prefect; ``flows/twas.py`` runs it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agval.stats.twas import DEFAULT_TWAS_P_THRESHOLD as DEFAULT_TWAS_P
from agval.twas.figures import DEFAULT_LOCI, DEFAULT_SCATTER_TISSUES
from agval.twas.inputs import DEFAULT_PIP_THRESHOLD, expand_paths
from agval.twas.triplets import assay_label, output_type_of

__all__ = ["TWASStudy", "DEFAULT_TWAS_P", "SELF_INCLUSION_NOTE", "study_inputs"]

SELF_INCLUSION_NOTE = (
    "Q1 reads sign(z_ALT * TWAS.Z) as the mediation-predicted direction, but TWAS.Z = w'z / sqrt(w'Rw) "
    "contains the variant's own eQTL weight times its own z: for a variant that dominates the weights, "
    "sign(z_ALT * TWAS.Z) follows the sign of its eQTL effect even without mediation. A model that predicts "
    "eQTL directions then 'concords' in a world without mediation, and the within-gene permutation (which "
    "breaks the score-weight link) does not remove it. Read Q1 as agreement with the TWAS-weighted eQTL "
    "direction, not as evidence of mediation.")


class TWASStudy(BaseModel):
    """The ``[study]`` section of a TWAS study file (paths relative to the file)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("twas", description="study name (run folder and report title)")
    # -- inputs
    gwas: str = Field(..., description="GWAS summary statistics (GWAS-SSF or common layouts; plain or gzip)")
    gwas_build: str = Field("hg38", description="build of the GWAS positions (rsIDs are looked up on hg38)")
    gwas_columns: dict[str, str] | None = Field(None, description="header overrides, e.g. {z = 'Zscore'}")
    gwas_strict: bool = Field(True, description="a malformed number in the GWAS is an error (else a counted drop)")
    susie: str | list[str] = Field(..., description="SuSiE files: a file, a folder, a glob, or a list")
    twas: str | list[str] = Field(..., description="FUSION .dat files: a file, a folder, a glob, or a list")
    tissue_map: str | None = Field(None, description="tissue -> ontology override (TOML or CSV) on the defaults")
    unmapped_tissues: Literal["error", "drop"] = Field("error", description="tissues missing from the map")
    tissues: list[str] | None = Field(None, description="only these tissues (default: every tissue of the TWAS)")
    reference_fasta: str = Field(..., description="hg38 FASTA (REF check of every harmonized variant)")
    # -- triplets and scores
    assays: list[str] = Field(default_factory=lambda: ["RNA_SEQ", "ATAC", "DNASE", "CAGE"])
    pip_threshold: float = Field(DEFAULT_PIP_THRESHOLD, ge=0, le=1, description="retain pip > this (or cs >= 0)")
    keep_credible_sets: bool = Field(True, description="retain every 95 % credible-set member (cs >= 0)")
    twas_p_threshold: float = Field(DEFAULT_TWAS_P, gt=0, le=1, description="significant pairs: TWAS.P < this")
    score_column: Literal["raw_score", "quantile_score"] = Field(
        "raw_score", description="raw scores (default; the seed's scale) or per-track quantiles")
    predictions: str | None = Field(None, description="precomputed long score table (tidy_scores-like); "
                                                      "no model is called")
    predictions_simulated: bool = Field(False, description="the predictions table came from a stand-in")
    eqtl: str | list[str] | None = Field(
        None, description="GTEx v8 <Tissue>.v8.signif_variant_gene_pairs files (file, folder, glob or list): the "
                          "marginal eQTL slopes (ALT) of Q1's primary estimand; without them only the seed's Q1")
    twas_weights: str | list[str] | None = Field(
        None, description="eQTL weights of the TWAS models (gene_id, tissue, SNP, A1, A2, weight; agval.twas.loo): "
                          "with [study] ld, Q1 also against the leave-one-variant-out TWAS.Z")
    ld: str | list[str] | None = Field(
        None, description="LD reference for twas_weights (SNP_A, allele_a, SNP_B, allele_b, R: correlation of the "
                          "named alleles' dosages; pairs not listed are uncorrelated)")
    # -- statistics
    n_permutations: int = Field(1000, ge=0, description="permutations (Q1-Q4, original and corrected mode)")
    n_boot: int = Field(1000, ge=0, description="locus-bootstrap replicates (intervals, corrected mode)")
    primary_cell: str = Field("Heart_Atrial_Appendage/DNASE",
                              description="pre-specified 'tissue/assay' cell, reported apart and unadjusted")
    seed: int = 0
    published: str | None = Field(
        None, description="published reference set shown beside the run (agval.published): a set id, 'none', "
                          "or unset for the AF TWAS write-up's numbers")
    heart_tissues: list[str] = Field(default_factory=lambda: ["Heart_Atrial_Appendage", "Heart_Left_Ventricle"])
    q3_min_tissues: int = Field(2, ge=2)
    q3_min_tissues_kendall: int = Field(3, ge=2)
    q3_deviation: Literal["mean_abs", "sd", "max_abs"] = "mean_abs"
    q4_min_genes: int = Field(3, ge=3)
    # -- figures
    loci: list[str] = Field(default_factory=lambda: list(DEFAULT_LOCI), description="PIP 'Manhattan' genes")
    scatter_tissues: list[str] = Field(default_factory=lambda: list(DEFAULT_SCATTER_TISSUES))
    null_cell: list[str] = Field(default_factory=lambda: ["Heart_Atrial_Appendage", "DNASE"],
                                 description="[tissue, assay] whose permutation null is drawn")
    plots: bool = True

    @field_validator("assays")
    @classmethod
    def _assays(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one assay")
        return list(dict.fromkeys(output_type_of(a) for a in v))

    @field_validator("primary_cell")
    @classmethod
    def _primary_cell(cls, v: str) -> str:
        from agval.twas.analysis import parse_primary_cell

        t, a = parse_primary_cell(v)
        return f"{t}/{a}"

    @field_validator("published")
    @classmethod
    def _published_set(cls, v: str | None) -> str | None:
        from agval.published import checked_set_field

        return checked_set_field(v)

    @model_validator(mode="after")
    def _weights_with_ld(self) -> "TWASStudy":
        if bool(self.twas_weights) != bool(self.ld):
            raise ValueError("twas_weights and ld go together (the leave-one-variant-out TWAS.Z needs both)")
        return self

    @field_validator("null_cell")
    @classmethod
    def _null_cell(cls, v: list[str]) -> list[str]:
        if len(v) != 2:
            raise ValueError("null_cell is [tissue, assay]")
        return [v[0], assay_label(v[1])]



def study_inputs(study: TWASStudy) -> dict[str, Any]:
    """Every input file of the study by role (``gwas``, ``susie:<i>``, ``twas:<i>``,
    ``eqtl:<i>``, ...), hashed into the run manifest.

    Raises:
        InputError: a SuSiE / FUSION / eQTL path names no file.
    """
    inputs: dict[str, Any] = {"gwas": study.gwas, "reference_fasta": study.reference_fasta,
                              "tissue_map": study.tissue_map, "predictions": study.predictions}
    for role, spec_paths in (("eqtl", study.eqtl), ("twas_weights", study.twas_weights), ("ld", study.ld)):
        if spec_paths:
            for i, f in enumerate(expand_paths(spec_paths, what=role)):
                inputs[f"{role}:{i}"] = f
    for role, spec_paths in (("susie", study.susie), ("twas", study.twas)):
        for i, f in enumerate(expand_paths(spec_paths, what=role)):
            inputs[f"{role}:{i}"] = f
    return inputs
