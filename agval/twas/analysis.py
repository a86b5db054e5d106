"""Q1-Q4 on the long triplet table and the run's metrics (STUDIES.md §2.4-§2.7, §2.9).

Thin wrappers over :mod:`agval.stats.twas` that fix the study's conventions (seeds per
question, the TWAS significance threshold, the heart tissues) and turn the results into
the ``metrics.json`` layout documented in ``docs/metrics-twas.md``. No Prefect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import polars as pl

from agval.stats import twas as st

__all__ = ["QuestionSeeds", "run_q1", "run_q2", "run_q3", "run_q4", "run_corrected", "primary_cell_summary",
           "parse_primary_cell", "data_summary", "build_metrics", "headline", "table_records", "MEDIATION_NOTE"]

#: Report text on what sign agreement can and cannot show (P30).
MEDIATION_NOTE = (
    "Sign agreement is not mediation. The primary Q1 estimand asks whether the RNA score's sign agrees with the "
    "variant's marginal eQTL effect (ALT-oriented GTEx slope) in that tissue: a test of the model's eQTL "
    "directions. The seed's statistic (agreement with sign(z_ALT * TWAS.Z)) is agreement with the "
    "TWAS-weighted eQTL direction; it arises without mediation (TWAS.Z contains the variant's own weight x its "
    "own z, and genes are selected on TWAS from the same GWAS). Whether expression mediates the GWAS signal "
    "needs colocalisation or Mendelian randomisation, not sign agreement.")


@dataclass(frozen=True)
class QuestionSeeds:
    """One seed per randomised question, derived from the study seed (recorded in the manifest)."""

    seed: int

    @property
    def q1(self) -> int:
        return int(self.seed)

    @property
    def q4(self) -> int:
        return int(self.seed) + 1

    @property
    def corrected(self) -> int:
        """Corrected mode (locus permutations and bootstraps of Q1-Q4)."""
        return int(self.seed) + 2

    def to_dict(self) -> dict[str, int]:
        return {"study": int(self.seed), "q1": self.q1, "q4": self.q4, "corrected": self.corrected}


def run_q1(triplets: pl.DataFrame, *, n_permutations: int, seed: int, heart_tissues: Iterable[str] | None,
           twas_p_threshold: float | None) -> dict[str, Any]:
    """:func:`agval.stats.twas.q1_sign_concordance` with the permutation null kept (figures)."""
    return st.q1_sign_concordance(triplets, n_permutations=n_permutations, seed=seed, heart_tissues=heart_tissues,
                                  twas_p_threshold=twas_p_threshold, return_null=True)


def run_q2(triplets: pl.DataFrame, *, twas_p_threshold: float | None) -> pl.DataFrame:
    return st.q2_credible_set_enrichment(triplets, twas_p_threshold=twas_p_threshold)


def run_q3(triplets: pl.DataFrame, *, twas_p_threshold: float | None, min_tissues: int = 2,
           min_tissues_kendall: int = 3, deviation: str = "mean_abs") -> dict[str, pl.DataFrame]:
    """Gene-level scores (AG_G) then :func:`agval.stats.twas.q3_tissue_specificity`; adds
    ``"gene_scores"`` to the result."""
    gs = st.gene_level_scores(triplets, twas_p_threshold=twas_p_threshold)
    out = st.q3_tissue_specificity(gs, min_tissues=min_tissues, min_tissues_kendall=min_tissues_kendall,
                                   deviation=deviation, twas_p_threshold=None)
    out["gene_scores"] = gs
    return out


def run_q4(triplets: pl.DataFrame, *, n_permutations: int, seed: int, twas_p_threshold: float | None,
           min_genes: int = 3) -> dict[str, Any]:
    return st.q4_synthetic_twas(triplets, n_permutations=n_permutations, seed=seed, min_genes=min_genes,
                                twas_p_threshold=twas_p_threshold, return_null=True)


def run_corrected(triplets: pl.DataFrame, *, n_permutations: int, n_boot: int, seed: int,
                  heart_tissues: Iterable[str] | None, twas_p_threshold: float | None, min_tissues: int = 2,
                  min_tissues_kendall: int = 3, deviation: str = "mean_abs", min_genes: int = 3
                  ) -> dict[str, Any]:
    """Every corrected-mode statistic (locus-level permutation P, locus-bootstrap interval,
    BH over grids): ``{"q1_eqtl"`` (None without an ``eqtl_slope`` column or slopes),
    ``"q1_twas", "q2", "q3", "q4", "q1_twas_loo"}`` (the last None without a
    ``twas_z_loo`` column, :mod:`agval.twas.loo`); one seed stream for all of them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    kw = {"n_permutations": n_permutations, "n_boot": n_boot, "twas_p_threshold": twas_p_threshold}
    has_eqtl = "eqtl_slope" in triplets.columns and triplets["eqtl_slope"].is_not_null().any()
    out: dict[str, Any] = {
        "q1_eqtl": (st.q1_direction_agreement(triplets, direction="eqtl", seed=rng, heart_tissues=heart_tissues,
                                              **kw) if has_eqtl else None),
        "q1_twas": st.q1_direction_agreement(triplets, direction="twas", seed=rng, heart_tissues=heart_tissues,
                                             **kw),
        "q2": st.q2_credible_set_enrichment_corrected(triplets, seed=rng, **kw),
        "q3": st.q3_tissue_specificity_corrected(triplets, seed=rng, min_tissues=min_tissues,
                                                 min_tissues_kendall=min_tissues_kendall, deviation=deviation, **kw),
        "q4": st.q4_synthetic_twas_corrected(triplets, seed=rng, min_genes=min_genes, **kw),
    }
    # drawn last, so the seed stream of the statistics above is the same with or without it
    has_loo = "twas_z_loo" in triplets.columns and triplets["twas_z_loo"].is_not_null().any()
    out["q1_twas_loo"] = (st.q1_direction_agreement(triplets, direction="twas_loo", seed=rng,
                                                    heart_tissues=heart_tissues, **kw) if has_loo else None)
    return out


def parse_primary_cell(cell: str) -> tuple[str, str]:
    """``"Heart_Atrial_Appendage/DNASE"`` -> ``(tissue, assay label)``."""
    from agval.twas.triplets import assay_label

    if "/" not in cell:
        raise ValueError(f"primary_cell is 'tissue/assay', e.g. 'Heart_Atrial_Appendage/DNASE', got {cell!r}")
    tissue, assay = cell.rsplit("/", 1)
    return tissue.strip(), assay_label(assay.strip())


def _rec(df: pl.DataFrame | None, **eq: Any) -> dict[str, Any] | None:
    if df is None:
        return None
    for k, v in eq.items():
        df = df.filter(pl.col(k) == v)
    return df.row(0, named=True) if df.height else None


def primary_cell_summary(corrected: dict[str, Any], cell: str) -> dict[str, Any]:
    """The pre-specified cell, reported apart and **unadjusted**: the corrected Q1 (seed
    replication) and Q4 rows of (tissue, assay), and the primary Q1 estimand (eQTL direction,
    RNA) in that tissue."""
    tissue, assay = parse_primary_cell(cell)
    q1e = corrected.get("q1_eqtl")
    return {"cell": f"{tissue}/{assay}", "tissue": tissue, "assay": assay, "adjustment": "none (pre-specified)",
            "q1_twas": _rec(corrected["q1_twas"]["table"], tissue=tissue, assay=assay),
            "q1_eqtl_rna": _rec(q1e["table"], tissue=tissue, assay="RNA") if q1e else None,
            "q4": _rec(corrected["q4"]["table"], tissue=tissue, assay=assay)}


def table_records(df: pl.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready records (NaN -> None happens when the run record writes them)."""
    return df.to_dicts()


def data_summary(triplets: pl.DataFrame, *, susie_rows: int, retained_rows: int, twas_rows: int,
                 significant_pairs: int, gwas_rows: int, oriented_rsids: int, variants_scored: int,
                 score_failures: int, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The data overview: the seed's "858 pairs, 418 genes, 10 tissues, 10,120 triplets,
    183 multi-tissue genes" for this run."""
    one = triplets.select("variant_key", "gene_id", "tissue").unique()
    pairs = one.select("gene_id", "tissue").unique()
    per_gene = pairs.group_by("gene_id").len()
    out = {
        "gwas_rows_matched": int(gwas_rows), "gwas_rsids_oriented": int(oriented_rsids),
        "susie_rows": int(susie_rows), "susie_rows_retained": int(retained_rows),
        "twas_rows": int(twas_rows), "twas_significant_pairs": int(significant_pairs),
        "gene_tissue_pairs": pairs.height, "genes": int(pairs["gene_id"].n_unique()),
        "tissues": int(pairs["tissue"].n_unique()), "triplets": one.height,
        "variants": int(one["variant_key"].n_unique()),
        "multi_tissue_genes": int(per_gene.filter(pl.col("len") >= 2).height),
        "variants_scored": int(variants_scored), "score_failures": int(score_failures),
    }
    out.update({k: int(v) for k, v in (counts or {}).items()})
    return out


def _fmt_p(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "NA"
    return f"{p:.2g}"


def _fmt_pct(x: Any) -> str:
    return "NA" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.1f}%"


def headline(q1: dict[str, Any], q2: pl.DataFrame, q3: dict[str, pl.DataFrame], q4: dict[str, Any],
             assays: Sequence[str], corrected: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per assay: pooled Q1 accuracy with its permutation and binomial P, Q2 fold and MWU P,
    Q3 Spearman rho, and the Q4 tissue with the largest rho (the seed's numbers); with
    ``corrected``, beside each its corrected-mode value: locus-permutation P, locus-bootstrap
    interval (``*_ci``), and the primary Q1 estimand (``q1_eqtl_*``, RNA); plus one sentence."""
    out: dict[str, Any] = {}
    pooled = q1["table"].filter(pl.col("pooled"))
    sentences = []
    for a in assays:
        r1 = pooled.filter(pl.col("assay") == a)
        r2 = q2.filter(pl.col("assay") == a)
        r3 = q3["summary"].filter(pl.col("assay") == a)
        r4 = q4["table"].filter(pl.col("assay") == a).drop_nans("spearman_rho").sort("spearman_rho", descending=True)
        h = {
            "q1_accuracy": r1["accuracy"][0] if r1.height else None,
            "q1_n": int(r1["n"][0]) if r1.height else 0,
            "q1_perm_p": r1["perm_p"][0] if r1.height else None,
            "q1_binom_p_greater": r1["binom_p_greater"][0] if r1.height else None,
            "q2_fold": r2["fold"][0] if r2.height else None,
            "q2_mwu_p": r2["mwu_p"][0] if r2.height else None,
            "q3_spearman_rho": r3["spearman_rho"][0] if r3.height else None,
            "q3_n_genes": int(r3["n_genes"][0]) if r3.height else 0,
            "q4_best_tissue": r4["tissue"][0] if r4.height else None,
            "q4_best_rho": r4["spearman_rho"][0] if r4.height else None,
            # the best of len(r4) tissues, chosen after looking: report its P unadjusted AND
            # Bonferroni-adjusted for the number of tissues compared
            "q4_best_perm_p_unadjusted": r4["perm_p_greater"][0] if r4.height else None,
            "q4_best_perm_p_bonferroni": (min(1.0, float(r4["perm_p_greater"][0]) * r4.height)
                                          if r4.height else None),
            "q4_n_tissues": int(r4.height),
        }
        if corrected is not None:
            c1 = _rec(corrected["q1_twas"]["table"], assay=a, pooled=True)
            c2 = _rec(corrected["q2"], assay=a)
            c3 = _rec(corrected["q3"], assay=a)
            c4 = _rec(corrected["q4"]["table"], assay=a, tissue=h["q4_best_tissue"]) if h["q4_best_tissue"] else None
            h.update({
                "q1_corrected_perm_p": c1["perm_p"] if c1 else None,
                # loci behind the intervals: percentile locus-bootstrap intervals under-cover
                # below st.MIN_LOCI_FOR_INTERVALS loci (about 92 % for a nominal 95 % at 45)
                "n_loci": c1["n_loci"] if c1 else None,
                "q2_n_loci": c2["n_loci"] if c2 else None,
                "q3_n_loci": c3["n_loci"] if c3 else None,
                "q4_best_n_loci": c4["n_loci"] if c4 else None,
                "q1_accuracy_ci": [c1["ci_low"], c1["ci_high"]] if c1 else None,
                "q2_dedup_fold": c2["fold"] if c2 else None,
                "q2_dedup_fold_ci": [c2["fold_ci_low"], c2["fold_ci_high"]] if c2 else None,
                "q2_corrected_mwu_perm_p": c2["mwu_perm_p"] if c2 else None,
                "q3_spearman_rho_ci": [c3["rho_ci_low"], c3["rho_ci_high"]] if c3 else None,
                "q3_rho_perm_p": c3["rho_perm_p"] if c3 else None,
                "q3_rho_null_mean": c3["rho_null_mean"] if c3 else None,
                "q3_mean_tau": c3["mean_tau"] if c3 else None,
                "q3_mean_tau_perm_p": c3["mean_tau_perm_p"] if c3 else None,
                "q4_best_rho_ci": [c4["rho_ci_low"], c4["rho_ci_high"]] if c4 else None,
                "q4_best_corrected_perm_p": c4["perm_p_greater"] if c4 else None,
                "q4_best_bh_q": c4["bh_q"] if c4 else None,
            })
            if a == "RNA" and corrected.get("q1_eqtl") is not None:
                ce = _rec(corrected["q1_eqtl"]["table"], assay="RNA", pooled=True)
                if ce:
                    h.update({"q1_eqtl_accuracy": ce["accuracy"], "q1_eqtl_n": ce["n"],
                              "q1_eqtl_ci": [ce["ci_low"], ce["ci_high"]], "q1_eqtl_perm_p": ce["perm_p"]})
        out[a] = h
        if r1.height and h["q1_n"]:
            s = f"{a}: agreement with the TWAS-weighted eQTL direction {100 * h['q1_accuracy']:.1f}% of {h['q1_n']} ("
            if h.get("q1_accuracy_ci"):
                lo, hi = h["q1_accuracy_ci"]
                s += (f"locus permutation P {_fmt_p(h['q1_corrected_perm_p'])}, 95% CI "
                      f"{_fmt_pct(lo)}-{_fmt_pct(hi)} over {h['n_loci']} loci")
                if h["n_loci"] is not None and h["n_loci"] < st.MIN_LOCI_FOR_INTERVALS:
                    s += (f", fewer than {st.MIN_LOCI_FOR_INTERVALS}: locus-bootstrap intervals are too "
                          "narrow here (about 92% coverage for a nominal 95% at 45 loci)")
                s += "; "
            s += (f"the seed's within-gene permutation P {_fmt_p(h['q1_perm_p'])}, anti-conservative "
                  "where units are shared)")
            if h.get("q1_eqtl_accuracy") is not None:
                lo, hi = h["q1_eqtl_ci"]
                s += (f"; agreement with the marginal eQTL effect {100 * h['q1_eqtl_accuracy']:.1f}% of "
                      f"{h['q1_eqtl_n']} (locus permutation P {_fmt_p(h['q1_eqtl_perm_p'])}, 95% CI "
                      f"{_fmt_pct(lo)}-{_fmt_pct(hi)})")
            sentences.append(s)
    out["summary"] = "; ".join(sentences) if sentences else "no scored triplets"
    return out


def build_metrics(*, data: dict[str, Any], q1: dict[str, Any], q2: pl.DataFrame, q3: dict[str, pl.DataFrame],
                  q4: dict[str, Any], settings: dict[str, Any], coverage: pl.DataFrame,
                  funnel: pl.DataFrame, assays: Sequence[str], notes: Sequence[str] = (),
                  corrected: dict[str, Any] | None = None, primary_cell: str | None = None) -> dict[str, Any]:
    """``metrics.json`` content (keys documented in ``docs/metrics-twas.md``). The seed's
    statistics keep their keys (``q1`` ... ``q4``, "original" mode); ``corrected`` adds the
    corrected mode under ``"corrected"`` and the pre-specified cell under ``"primary_cell"``."""
    extra: dict[str, Any] = {}
    if corrected is not None:
        q1e = corrected.get("q1_eqtl")
        extra["corrected"] = {
            "resampling": "loci = connected components of genes sharing retained variants; unit scores "
                          "(variant for ATAC/DNASE/CAGE, variant-gene for RNA) permuted within loci; "
                          "locus bootstrap; BH across the tissue x assay grids",
            "q1_eqtl": table_records(q1e["table"]) if q1e else None,
            "q1_eqtl_label": st.Q1_DIRECTIONS["eqtl"],
            "q1_eqtl_heart_vs_nonheart": table_records(q1e["heart_vs_nonheart"]) if q1e else None,
            "q1_twas": table_records(corrected["q1_twas"]["table"]),
            "q1_twas_label": st.Q1_DIRECTIONS["twas"],
            "q1_twas_heart_vs_nonheart": table_records(corrected["q1_twas"]["heart_vs_nonheart"]),
            "q1_twas_loo": (table_records(corrected["q1_twas_loo"]["table"])
                            if corrected.get("q1_twas_loo") else None),
            "q1_twas_loo_label": st.Q1_DIRECTIONS["twas_loo"],
            "q2": table_records(corrected["q2"]),
            "q3": table_records(corrected["q3"]),
            "q4": table_records(corrected["q4"]["table"]),
        }
        if primary_cell:
            extra["primary_cell"] = primary_cell_summary(corrected, primary_cell)
    return {**_metrics_core(data=data, q1=q1, q2=q2, q3=q3, q4=q4, settings=settings, coverage=coverage,
                            funnel=funnel, assays=assays, notes=notes, corrected=corrected), **extra}


def _metrics_core(*, data, q1, q2, q3, q4, settings, coverage, funnel, assays, notes, corrected):
    return {
        "study_type": "twas",
        "settings": settings,
        "data": data,
        "track_coverage": table_records(coverage),
        "q1": table_records(q1["table"]),
        "q1_heart_vs_nonheart": table_records(q1["heart_vs_nonheart"]),
        "q2": table_records(q2),
        "q3": table_records(q3["summary"]),
        "q4": table_records(q4["table"]),
        "headline": headline(q1, q2, q3, q4, assays, corrected),
        "drop_funnel": table_records(funnel),
        "notes": list(notes),
    }
