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

__all__ = ["QuestionSeeds", "run_q1", "run_q2", "run_q3", "run_q4", "data_summary", "build_metrics",
           "headline", "table_records"]


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

    def to_dict(self) -> dict[str, int]:
        return {"study": int(self.seed), "q1": self.q1, "q4": self.q4}


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


def headline(q1: dict[str, Any], q2: pl.DataFrame, q3: dict[str, pl.DataFrame], q4: dict[str, Any],
             assays: Sequence[str]) -> dict[str, Any]:
    """Per assay: pooled Q1 accuracy with its permutation and binomial P, Q2 fold and MWU P,
    Q3 Spearman rho, and the Q4 tissue with the largest rho; plus one sentence."""
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
        out[a] = h
        if r1.height and h["q1_n"]:
            sentences.append(f"{a}: sign accuracy {100 * h['q1_accuracy']:.1f}% of {h['q1_n']} "
                             f"(permutation P {_fmt_p(h['q1_perm_p'])})")
    out["summary"] = "; ".join(sentences) if sentences else "no scored triplets"
    return out


def build_metrics(*, data: dict[str, Any], q1: dict[str, Any], q2: pl.DataFrame, q3: dict[str, pl.DataFrame],
                  q4: dict[str, Any], settings: dict[str, Any], coverage: pl.DataFrame,
                  funnel: pl.DataFrame, assays: Sequence[str], notes: Sequence[str] = ()) -> dict[str, Any]:
    """``metrics.json`` content (keys documented in ``docs/metrics-twas.md``)."""
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
        "headline": headline(q1, q2, q3, q4, assays),
        "drop_funnel": table_records(funnel),
        "notes": list(notes),
    }
