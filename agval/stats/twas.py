"""TWAS / fine-mapping concordance statistics, Q1-Q4 (STUDIES.md section 2.4-2.7).

Input: the **triplet table**, a polars DataFrame in long format, one row per
(variant, gene, tissue, assay):

==============  =======  =================================================================
column          type     meaning
==============  =======  =================================================================
``variant_key`` str      ``Variant.key`` of the retained SuSiE variant (``chr1:123:A>G``)
``gene_id``     str      Ensembl gene id (version stripped)
``tissue``      str      GTEx tissue name (``Heart_Atrial_Appendage``, ...)
``assay``       str      AlphaGenome feature: ``RNA``, ``ATAC``, ``DNASE``, ``CAGE`` ...
``pip``         float    SuSiE PIP of the variant for this gene-tissue, in [0, 1]
``cs``          int      SuSiE credible set index, ``-1`` = in no credible set (Q2 only)
``z_alt``       float    GWAS z oriented to the scored ALT allele
``twas_z``      float    FUSION ``TWAS.Z`` of the gene-tissue (constant within it)
``score``       float    AlphaGenome raw score for (variant[, gene], tissue, assay);
                         null when the tissue has no track for the assay
``twas_p``      float    optional FUSION ``TWAS.P``; when present, only gene-tissue pairs
                         with ``twas_p < twas_p_threshold`` (default 4.7e-6) are used
==============  =======  =================================================================

Rows are not independent (shared variants across genes and tissues, LD; pitfalls P22, P31):
the binomial P and the within-gene permutation P are the seed's tests, reported for
comparison only (both anti-conservative where one unit feeds several rows); the corrected
functions (``*_corrected``, :func:`q1_direction_agreement`) permute and bootstrap the true
unit within loci and are the tests to read. Randomness: an explicit ``seed`` (int or ``numpy.random.Generator``).
Permutations are vectorised: one argsort of random keys ordered by group permutes every
gene-tissue group at once for a block of replicates (no loop over permutations; see
:func:`agval.stats.resampling.within_group_permutation_indices`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Iterator

import numpy as np
import polars as pl
from scipy import special, stats

from agval.errors import InputError, MissingColumnError
from agval.stats.concordance import binomial_p
from agval.stats.correlation import spearman
from agval.stats.resampling import (
    SeedLike,
    UnitPermuter,
    connected_loci,
    locus_bootstrap_weights,
    _block_sizes,
    _rng,
    _seed_value,
    _within_group_sorted_perm,
    permutation_p,
    weighted_pearson,
    weighted_spearman,
)

__all__ = [
    "TRIPLET_COLUMNS",
    "MIN_LOCI_FOR_INTERVALS",
    "DEFAULT_TWAS_P_THRESHOLD",
    "heart_tissue_set",
    "two_proportion_ztest",
    "q1_sign_concordance",
    "q2_credible_set_enrichment",
    "gene_level_scores",
    "q3_tissue_specificity",
    "q4_synthetic_twas",
    "add_loci",
    "bh_adjust",
    "dedupe_scores",
    "q1_direction_agreement",
    "q2_credible_set_enrichment_corrected",
    "q3_tissue_specificity_corrected",
    "q4_synthetic_twas_corrected",
    "loo_twas_z",
]

TRIPLET_COLUMNS = ("variant_key", "gene_id", "tissue", "assay", "pip", "cs", "z_alt", "twas_z", "score")
DEFAULT_TWAS_P_THRESHOLD = 4.7e-6
POOLED = "pooled"


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def _require(frame: pl.DataFrame, columns: Iterable[str]) -> None:
    for c in columns:
        if c not in frame.columns:
            raise MissingColumnError(c, available=list(frame.columns))


def _prepare(triplets: pl.DataFrame, columns: Iterable[str], twas_p_threshold: float | None) -> pl.DataFrame:
    """Check columns, PIP range, cast numerics, apply the TWAS significance filter."""
    columns = list(columns)
    _require(triplets, columns)
    casts = [pl.col(c).cast(pl.Float64) for c in ("pip", "z_alt", "twas_z", "score", "twas_p")
             if c in triplets.columns and c in columns + ["twas_p"]]
    casts += [pl.col(c).cast(pl.Utf8) for c in ("gene_id", "tissue", "assay") if c in columns]
    df = triplets.with_columns(casts)
    if "pip" in columns:
        bad = df.filter((pl.col("pip") < 0) | (pl.col("pip") > 1))
        if bad.height:
            raise InputError(f"{bad.height} PIP value(s) outside [0, 1], e.g. {bad['pip'][0]}", column="pip")
    if twas_p_threshold is not None and "twas_p" in df.columns:
        df = df.filter(pl.col("twas_p") < twas_p_threshold)
    return df


def _np(df: pl.DataFrame, col: str) -> np.ndarray:
    return df[col].cast(pl.Float64).to_numpy()


def _dense_codes(series: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Codes 0..K-1 in sorted order of the values, and the sorted labels."""
    labels = series.unique().sort().to_list()
    codes = (series.rank("dense") - 1).cast(pl.Int64).to_numpy() if series.len() else np.zeros(0, np.int64)
    return codes, labels


def heart_tissue_set(tissues: Iterable[str], heart_tissues: Iterable[str] | None = None) -> set[str]:
    """The heart tissues among ``tissues``: ``heart_tissues`` if given, else every tissue
    whose name starts with ``heart`` (case-insensitive), i.e. Heart_Atrial_Appendage and
    Heart_Left_Ventricle."""
    tissues = list(tissues)
    if heart_tissues is not None:
        return set(heart_tissues)
    return {t for t in tissues if t.lower().startswith("heart")}


def two_proportion_ztest(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Two-sided z-test of ``k1/n1 == k2/n2`` with the pooled variance (statsmodels'
    ``proportions_ztest``). Returns ``(z, p)``; NaN when a group is empty or the pooled
    proportion is 0 or 1."""
    if n1 <= 0 or n2 <= 0:
        return (math.nan, math.nan)
    p = (k1 + k2) / (n1 + n2)
    var = p * (1 - p) * (1 / n1 + 1 / n2)
    if var <= 0:
        return (math.nan, math.nan)
    z = (k1 / n1 - k2 / n2) / math.sqrt(var)
    return (z, float(2 * special.ndtr(-abs(z))))


def _mwu(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if a.size == 0 or b.size == 0:
        return (math.nan, math.nan)
    r = stats.mannwhitneyu(a, b, alternative="two-sided")
    return (float(r.statistic), float(r.pvalue))


# --------------------------------------------------------------------------------------
# Q1
# --------------------------------------------------------------------------------------

_Q1_SCHEMA = {
    "assay": pl.Utf8, "tissue": pl.Utf8, "pooled": pl.Boolean, "n": pl.Int64, "k": pl.Int64,
    "accuracy": pl.Float64, "sum_pip": pl.Float64, "accuracy_weighted": pl.Float64,
    "binom_p_greater": pl.Float64, "perm_p": pl.Float64, "perm_p_weighted": pl.Float64,
    "perm_null_mean": pl.Float64, "n_groups": pl.Int64, "n_excluded_missing": pl.Int64,
    "n_excluded_zero": pl.Int64, "n_permutations": pl.Int64,
}

_HVN_SCHEMA = {
    "assay": pl.Utf8, "n_heart": pl.Int64, "k_heart": pl.Int64, "accuracy_heart": pl.Float64,
    "n_nonheart": pl.Int64, "k_nonheart": pl.Int64, "accuracy_nonheart": pl.Float64,
    "difference": pl.Float64, "z": pl.Float64, "z_p": pl.Float64, "fisher_odds_ratio": pl.Float64,
    "fisher_p": pl.Float64, "n_abs_heart": pl.Int64, "n_abs_nonheart": pl.Int64,
    "mean_abs_heart": pl.Float64, "mean_abs_nonheart": pl.Float64, "mwu_u": pl.Float64,
    "mwu_p": pl.Float64,
}


def q1_sign_concordance(triplets: pl.DataFrame, *, n_permutations: int = 1000, seed: SeedLike,
                        heart_tissues: Iterable[str] | None = None,
                        twas_p_threshold: float | None = DEFAULT_TWAS_P_THRESHOLD,
                        return_null: bool = False) -> dict[str, Any]:
    """Q1, sign concordance under mediation, per tissue x assay and pooled over tissues.

    For each row: ``e = sign(z_alt * twas_z)``, ``c = 1[sign(score) == e]``. Rows with a
    missing ``score``/``z_alt``/``twas_z``/``pip`` are excluded (``n_excluded_missing``),
    rows where any of ``score``, ``z_alt``, ``twas_z`` is 0 too (``n_excluded_zero``).
    Accuracy ``k/n``; PIP-weighted ``sum(pip*c)/sum(pip)``; one-sided exact binomial
    ``binomtest(k, n, 0.5, alternative="greater")``; within-gene permutation: the
    ``score`` values are permuted among the valid rows of each (gene_id, tissue),
    ``perm_p = (1 + #{A* >= A})/(B + 1)`` for the accuracy and ``perm_p_weighted`` for the
    weighted accuracy (the same permutations). The pooled row per assay uses the same
    permutations summed over tissues.

    Required columns: ``gene_id, tissue, assay, pip, z_alt, twas_z, score``.

    Returns a dict:

    * ``"table"``: one row per (assay, tissue) plus a ``tissue == "pooled"`` row
      (``pooled=True``) per assay; columns ``assay, tissue, pooled, n, k, accuracy,
      sum_pip, accuracy_weighted, binom_p_greater, perm_p, perm_p_weighted,
      perm_null_mean, n_groups`` (gene-tissue groups), ``n_excluded_missing,
      n_excluded_zero, n_permutations``.
    * ``"heart_vs_nonheart"``: per assay, pooled heart tissues vs the rest: ``n_heart,
      k_heart, accuracy_heart, n_nonheart, k_nonheart, accuracy_nonheart, difference, z,
      z_p`` (two-sided 2-proportion z-test), ``fisher_odds_ratio, fisher_p`` (two-sided
      Fisher exact on ``[[k_h, n_h-k_h], [k_o, n_o-k_o]]``), ``n_abs_heart, n_abs_nonheart,
      mean_abs_heart, mean_abs_nonheart, mwu_u, mwu_p`` (two-sided Mann-Whitney of
      ``|score|`` over rows with a finite score, heart first).
    * ``"null"`` (only with ``return_null=True``): long DataFrame ``assay, tissue,
      replicate, accuracy, accuracy_weighted`` of the permutation null.
    * ``"seed"``, ``"n_permutations"``, ``"heart_tissues"`` (sorted list).
    """
    df = _prepare(triplets, ("gene_id", "tissue", "assay", "pip", "z_alt", "twas_z", "score"),
                  twas_p_threshold)
    rng = _rng(seed)
    all_tissues = sorted(df["tissue"].drop_nulls().unique().to_list())
    hearts = heart_tissue_set(all_tissues, heart_tissues)
    rows: list[dict[str, Any]] = []
    hvn_rows: list[dict[str, Any]] = []
    null_parts: list[pl.DataFrame] = []
    B = int(n_permutations)
    for assay in sorted(df["assay"].drop_nulls().unique().to_list()):
        sub = df.filter(pl.col("assay") == assay)
        score, z, tz, pip = _np(sub, "score"), _np(sub, "z_alt"), _np(sub, "twas_z"), _np(sub, "pip")
        tissue_codes_all = np.searchsorted(np.array(all_tissues, dtype=object),
                                           sub["tissue"].fill_null("").to_numpy().astype(object))
        missing = ~(np.isfinite(score) & np.isfinite(z) & np.isfinite(tz) & np.isfinite(pip)) \
            | sub["tissue"].is_null().to_numpy() | sub["gene_id"].is_null().to_numpy()
        zero = ~missing & ((score == 0) | (z == 0) | (tz == 0))
        valid = ~missing & ~zero
        T = len(all_tissues)
        miss_t = np.bincount(tissue_codes_all[missing & sub["tissue"].is_not_null().to_numpy()], minlength=T)
        zero_t = np.bincount(tissue_codes_all[zero], minlength=T)

        v = sub.filter(pl.Series(valid))
        t_codes = tissue_codes_all[valid]
        g_codes, _ = _dense_codes(v["gene_id"])
        order = np.lexsort((g_codes, t_codes))
        t_s = t_codes[order]
        grp = t_s.astype(np.int64) * (int(g_codes.max()) + 1 if g_codes.size else 1) + g_codes[order]
        _, grp_codes = np.unique(grp, return_inverse=True)
        grp_codes = grp_codes.reshape(-1)
        s_s = np.sign(score[valid][order]).astype(np.int8)
        e_s = np.sign(z[valid][order] * tz[valid][order]).astype(np.int8)
        pip_s = pip[valid][order]
        nv = s_s.size

        c_obs = (s_s == e_s)
        n_t = np.bincount(t_s, minlength=T)
        k_t = np.bincount(t_s, weights=c_obs, minlength=T).astype(np.int64)
        sp_t = np.bincount(t_s, weights=pip_s, minlength=T)
        wk_t = np.bincount(t_s, weights=pip_s * c_obs, minlength=T)
        groups_t = np.bincount(t_s[np.r_[True, grp_codes[1:] != grp_codes[:-1]]] if nv else t_s,
                               minlength=T)
        present = np.flatnonzero(n_t > 0)
        starts = np.searchsorted(t_s, present)

        null_k = np.zeros((B, T))
        null_w = np.zeros((B, T))
        if nv and B > 0:
            done = 0
            for b in _block_sizes(B, nv):
                perm = _within_group_sorted_perm(grp_codes, b, rng)
                cp = s_s[perm] == e_s
                null_k[done:done + b, present] = np.add.reduceat(cp, starts, axis=1, dtype=np.int64)
                null_w[done:done + b, present] = np.add.reduceat(cp * pip_s, starts, axis=1)
                done += b

        def cell(label: str, pooled: bool, n: int, k: int, spip: float, wk: float,
                 nk: np.ndarray, nw: np.ndarray, n_groups: int, nmiss: int, nzero: int) -> dict[str, Any]:
            acc = k / n if n else math.nan
            accw = wk / spip if spip > 0 else math.nan
            with np.errstate(divide="ignore", invalid="ignore"):
                null_acc = nk / n if n else np.full(B, np.nan)
                null_accw = nw / spip if spip > 0 else np.full(B, np.nan)
            if return_null and B > 0:
                null_parts.append(pl.DataFrame({
                    "assay": [assay] * B, "tissue": [label] * B, "replicate": np.arange(B),
                    "accuracy": null_acc, "accuracy_weighted": null_accw}))
            return {"assay": assay, "tissue": label, "pooled": pooled, "n": int(n), "k": int(k),
                    "accuracy": acc, "sum_pip": float(spip), "accuracy_weighted": accw,
                    "binom_p_greater": binomial_p(k, n, alternative="greater"),
                    "perm_p": permutation_p(acc, null_acc, alternative="greater") if n and B else math.nan,
                    "perm_p_weighted": (permutation_p(accw, null_accw, alternative="greater")
                                        if spip > 0 and B else math.nan),
                    "perm_null_mean": float(np.mean(null_acc)) if n and B else math.nan,
                    "n_groups": int(n_groups), "n_excluded_missing": int(nmiss),
                    "n_excluded_zero": int(nzero), "n_permutations": B}

        for ti, tissue in enumerate(all_tissues):
            rows.append(cell(tissue, False, n_t[ti], k_t[ti], sp_t[ti], wk_t[ti], null_k[:, ti],
                             null_w[:, ti], groups_t[ti], miss_t[ti], zero_t[ti]))
        rows.append(cell(POOLED, True, n_t.sum(), k_t.sum(), sp_t.sum(), wk_t.sum(), null_k.sum(axis=1),
                         null_w.sum(axis=1), groups_t.sum(), int(missing.sum()), int(zero.sum())))

        # heart vs non-heart
        is_heart_t = np.array([t in hearts for t in all_tissues], dtype=bool)
        n_h, k_h = int(n_t[is_heart_t].sum()), int(k_t[is_heart_t].sum())
        n_o, k_o = int(n_t[~is_heart_t].sum()), int(k_t[~is_heart_t].sum())
        zst, zp = two_proportion_ztest(k_h, n_h, k_o, n_o)
        if n_h and n_o:
            fr = stats.fisher_exact([[k_h, n_h - k_h], [k_o, n_o - k_o]], alternative="two-sided")
            f_or, f_p = float(fr.statistic), float(fr.pvalue)
        else:
            f_or, f_p = math.nan, math.nan
        fin = np.isfinite(score) & sub["tissue"].is_not_null().to_numpy()
        row_heart = np.isin(tissue_codes_all, np.flatnonzero(is_heart_t))
        a_h = np.abs(score[fin & row_heart])
        a_o = np.abs(score[fin & ~row_heart])
        u, up = _mwu(a_h, a_o)
        hvn_rows.append({
            "assay": assay, "n_heart": n_h, "k_heart": k_h, "accuracy_heart": k_h / n_h if n_h else math.nan,
            "n_nonheart": n_o, "k_nonheart": k_o, "accuracy_nonheart": k_o / n_o if n_o else math.nan,
            "difference": (k_h / n_h - k_o / n_o) if n_h and n_o else math.nan, "z": zst, "z_p": zp,
            "fisher_odds_ratio": f_or, "fisher_p": f_p, "n_abs_heart": int(a_h.size),
            "n_abs_nonheart": int(a_o.size),
            "mean_abs_heart": float(a_h.mean()) if a_h.size else math.nan,
            "mean_abs_nonheart": float(a_o.mean()) if a_o.size else math.nan, "mwu_u": u, "mwu_p": up})

    out: dict[str, Any] = {
        "table": pl.DataFrame(rows, schema=_Q1_SCHEMA),
        "heart_vs_nonheart": pl.DataFrame(hvn_rows, schema=_HVN_SCHEMA),
        "seed": _seed_value(seed), "n_permutations": B, "heart_tissues": sorted(hearts),
    }
    if return_null:
        out["null"] = (pl.concat(null_parts) if null_parts else pl.DataFrame(
            schema={"assay": pl.Utf8, "tissue": pl.Utf8, "replicate": pl.Int64,
                    "accuracy": pl.Float64, "accuracy_weighted": pl.Float64}))
    return out


# --------------------------------------------------------------------------------------
# Q2
# --------------------------------------------------------------------------------------

_Q2_SCHEMA = {
    "assay": pl.Utf8, "n": pl.Int64, "n_cs": pl.Int64, "n_noncs": pl.Int64,
    "mean_abs_cs": pl.Float64, "mean_abs_noncs": pl.Float64, "fold": pl.Float64,
    "mwu_u": pl.Float64, "mwu_p": pl.Float64, "spearman_n": pl.Int64,
    "spearman_rho": pl.Float64, "spearman_p": pl.Float64, "n_excluded_missing": pl.Int64,
}


def q2_credible_set_enrichment(triplets: pl.DataFrame, *,
                               twas_p_threshold: float | None = DEFAULT_TWAS_P_THRESHOLD) -> pl.DataFrame:
    """Q2, fine-mapping enrichment of ``|score|``, per assay.

    Rows with a finite ``score`` and a non-null ``cs`` are used (the others are
    ``n_excluded_missing``); ``in_cs = cs >= 0``. Returns one row per assay with columns
    ``assay, n, n_cs, n_noncs, mean_abs_cs, mean_abs_noncs, fold`` (= cs / non-cs),
    ``mwu_u, mwu_p`` (``scipy.stats.mannwhitneyu(|score|_cs, |score|_noncs,
    alternative="two-sided")``, U of the CS sample), ``spearman_n, spearman_rho,
    spearman_p`` (Spearman of ``pip`` with ``|score|`` over rows with both finite),
    ``n_excluded_missing``.

    Required columns: ``assay, pip, cs, score``.
    """
    df = _prepare(triplets, ("assay", "pip", "cs", "score"), twas_p_threshold)
    rows = []
    for assay in sorted(df["assay"].drop_nulls().unique().to_list()):
        sub = df.filter(pl.col("assay") == assay)
        score, pip = _np(sub, "score"), _np(sub, "pip")
        cs_null = sub["cs"].is_null().to_numpy()
        cs = sub["cs"].fill_null(-1).cast(pl.Int64).to_numpy()
        ok = np.isfinite(score) & ~cs_null
        a = np.abs(score)
        in_cs = ok & (cs >= 0)
        out_cs = ok & (cs < 0)
        m1 = float(a[in_cs].mean()) if in_cs.any() else math.nan
        m0 = float(a[out_cs].mean()) if out_cs.any() else math.nan
        u, up = _mwu(a[in_cs], a[out_cs])
        sp = spearman(pip[ok], a[ok])  # the same rows as the Mann-Whitney test
        rows.append({"assay": assay, "n": int(ok.sum()), "n_cs": int(in_cs.sum()), "n_noncs": int(out_cs.sum()),
                     "mean_abs_cs": m1, "mean_abs_noncs": m0,
                     "fold": m1 / m0 if m0 and np.isfinite(m0) else math.nan,
                     "mwu_u": u, "mwu_p": up, "spearman_n": sp["n"], "spearman_rho": sp["rho"],
                     "spearman_p": sp["p"], "n_excluded_missing": int((~ok).sum())})
    return pl.DataFrame(rows, schema=_Q2_SCHEMA)


# --------------------------------------------------------------------------------------
# gene-level AG_G, Q3, Q4
# --------------------------------------------------------------------------------------

def _valid_gene_rows(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("score").is_finite() & pl.col("pip").is_finite() & pl.col("z_alt").is_finite()
                     & pl.col("twas_z").is_finite() & pl.col("gene_id").is_not_null()
                     & pl.col("tissue").is_not_null())


def _check_twas_z_constant(df: pl.DataFrame) -> None:
    bad = (df.group_by("gene_id", "tissue").agg(pl.col("twas_z").n_unique().alias("k"))
           .filter(pl.col("k") > 1))
    if bad.height:
        g, t = bad["gene_id"][0], bad["tissue"][0]
        raise InputError(f"twas_z differs between rows of one gene-tissue ({bad.height} pairs, "
                         f"e.g. {g} / {t})", column="twas_z")


def gene_level_scores(triplets: pl.DataFrame, *,
                      twas_p_threshold: float | None = DEFAULT_TWAS_P_THRESHOLD) -> pl.DataFrame:
    """The "synthetic TWAS" gene score ``AG_G(g, t) = sum_i pip_i * score_i * z_alt_i``
    per (assay, gene_id, tissue) over rows with finite ``score, pip, z_alt, twas_z``.

    Required columns: ``gene_id, tissue, assay, pip, z_alt, twas_z, score``. ``twas_z`` must
    be constant within a gene-tissue (``InputError`` otherwise).

    Returns columns ``assay, gene_id, tissue, ag_g, twas_z, sum_pip_z`` (``sum pip*z_alt``,
    the part of AG_G shared with TWAS.Z, pitfall P21), ``n_variants``, and ``twas_p`` when
    the input has it; sorted by assay, tissue, gene_id. Gene-tissues without a valid row
    for an assay have no row.
    """
    df = _prepare(triplets, ("gene_id", "tissue", "assay", "pip", "z_alt", "twas_z", "score"),
                  twas_p_threshold)
    df = _valid_gene_rows(df)
    _check_twas_z_constant(df)
    aggs = [(pl.col("pip") * pl.col("score") * pl.col("z_alt")).sum().alias("ag_g"),
            pl.col("twas_z").first().alias("twas_z"),
            (pl.col("pip") * pl.col("z_alt")).sum().alias("sum_pip_z"),
            pl.len().cast(pl.Int64).alias("n_variants")]
    if "twas_p" in df.columns:
        aggs.append(pl.col("twas_p").first().alias("twas_p"))
    return df.group_by("assay", "gene_id", "tissue").agg(aggs).sort("assay", "tissue", "gene_id")


_Q3_SUMMARY = {
    "assay": pl.Utf8, "n_genes": pl.Int64, "spearman_rho": pl.Float64, "spearman_p": pl.Float64,
    "n_genes_kendall": pl.Int64, "n_tau_valid": pl.Int64, "mean_tau": pl.Float64,
    "n_tau_p_lt_0_05": pl.Int64,
}
_Q3_GENES = {"assay": pl.Utf8, "gene_id": pl.Utf8, "n_tissues": pl.Int64, "s_ag": pl.Float64,
             "s_twas": pl.Float64}
_Q3_KENDALL = {"assay": pl.Utf8, "gene_id": pl.Utf8, "n_tissues": pl.Int64, "tau": pl.Float64,
               "p": pl.Float64}


def _specificity(x: pl.Expr, deviation: str) -> pl.Expr:
    d = x - x.mean()
    if deviation == "mean_abs":
        return d.abs().mean()
    if deviation == "sd":
        return (d * d).mean().sqrt()
    if deviation == "max_abs":
        return d.abs().max()
    raise ValueError(f"deviation must be 'mean_abs', 'sd' or 'max_abs', got {deviation!r}")


def q3_tissue_specificity(gene_scores: pl.DataFrame, *, min_tissues: int = 2, min_tissues_kendall: int = 3,
                          deviation: str = "mean_abs",
                          twas_p_threshold: float | None = DEFAULT_TWAS_P_THRESHOLD) -> dict[str, pl.DataFrame]:
    """Q3, tissue specificity of AG vs TWAS across the tissues where a gene is significant.

    ``gene_scores``: the output of :func:`gene_level_scores` (columns ``assay, gene_id,
    tissue, ag_g, twas_z``, optional ``twas_p``; ``X_AG = ag_g``, ``X_TWAS = twas_z``). Per
    assay the genes with finite values in ``>= min_tissues`` tissues are used. Deviation
    ``d_X(g,t) = X(g,t) - mean_t' X(g,t')``; specificity ``S_X(g) = mean_t |d_X(g,t)|``
    (``deviation="mean_abs"``; ``"sd"`` = sqrt(mean d^2), ``"max_abs"`` = max |d|).

    Assays without any valid gene have no row. Returns ``{"summary", "genes", "kendall"}``:

    * ``summary``: per assay ``n_genes, spearman_rho, spearman_p`` (Spearman of S_AG with
      S_TWAS across genes), ``n_genes_kendall`` (genes with ``>= min_tissues_kendall``
      tissues), ``n_tau_valid`` (finite tau), ``mean_tau``, ``n_tau_p_lt_0_05``;
    * ``genes``: ``assay, gene_id, n_tissues, s_ag, s_twas``;
    * ``kendall``: ``assay, gene_id, n_tissues, tau, p`` (``scipy.stats.kendalltau`` of the
      gene's AG and TWAS values across its tissues, tau-b, two-sided).
    """
    _require(gene_scores, ("assay", "gene_id", "tissue", "ag_g", "twas_z"))
    df = gene_scores
    if twas_p_threshold is not None and "twas_p" in df.columns:
        df = df.filter(pl.col("twas_p") < twas_p_threshold)
    df = df.filter(pl.col("ag_g").is_finite() & pl.col("twas_z").is_finite())
    summary, genes_parts, kendall_rows = [], [], []
    for assay in sorted(df["assay"].unique().to_list()):
        sub = df.filter(pl.col("assay") == assay)
        g = (sub.group_by("gene_id")
             .agg(pl.len().cast(pl.Int64).alias("n_tissues"),
                  _specificity(pl.col("ag_g"), deviation).alias("s_ag"),
                  _specificity(pl.col("twas_z"), deviation).alias("s_twas"))
             .filter(pl.col("n_tissues") >= min_tissues).sort("gene_id"))
        genes_parts.append(g.select(pl.lit(assay).alias("assay"), "gene_id", "n_tissues", "s_ag", "s_twas"))
        sp = spearman(g["s_ag"], g["s_twas"])
        taus = []
        kg = (sub.join(g.filter(pl.col("n_tissues") >= min_tissues_kendall).select("gene_id", "n_tissues"),
                       on="gene_id", how="inner").sort("gene_id", "tissue"))
        for (gene,), part in kg.group_by(["gene_id"], maintain_order=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kt = stats.kendalltau(part["ag_g"].to_numpy(), part["twas_z"].to_numpy())
            tau, p = float(kt.statistic), float(kt.pvalue)
            taus.append((tau, p))
            kendall_rows.append({"assay": assay, "gene_id": gene, "n_tissues": part.height, "tau": tau, "p": p})
        tv = np.array([t for t, _ in taus], dtype=float)
        pv = np.array([p for _, p in taus], dtype=float)
        fin = np.isfinite(tv)
        summary.append({"assay": assay, "n_genes": g.height, "spearman_rho": sp["rho"], "spearman_p": sp["p"],
                        "n_genes_kendall": len(taus), "n_tau_valid": int(fin.sum()),
                        "mean_tau": float(tv[fin].mean()) if fin.any() else math.nan,
                        "n_tau_p_lt_0_05": int((np.isfinite(pv) & (pv < 0.05)).sum())})
    genes = pl.concat(genes_parts) if genes_parts else pl.DataFrame(schema=_Q3_GENES)
    return {"summary": pl.DataFrame(summary, schema=_Q3_SUMMARY),
            "genes": genes.cast(_Q3_GENES),  # type: ignore[arg-type]
            "kendall": pl.DataFrame(kendall_rows, schema=_Q3_KENDALL)}


_Q4_SCHEMA = {
    "assay": pl.Utf8, "tissue": pl.Utf8, "n_genes": pl.Int64, "spearman_rho": pl.Float64,
    "spearman_p": pl.Float64, "perm_p_greater": pl.Float64, "perm_p_two_sided": pl.Float64,
    "null_mean": pl.Float64, "null_sd": pl.Float64, "rho_sum_pip_z": pl.Float64,
    "p_sum_pip_z": pl.Float64, "n_permutations": pl.Int64,
}


def q4_synthetic_twas(triplets: pl.DataFrame, *, n_permutations: int = 1000, seed: SeedLike,
                      min_genes: int = 3, twas_p_threshold: float | None = DEFAULT_TWAS_P_THRESHOLD,
                      return_null: bool = False) -> dict[str, Any]:
    """Q4, Spearman of ``AG_G`` (:func:`gene_level_scores`) with ``TWAS.Z`` across the genes
    of each tissue, per assay, plus the within-gene score-permutation null (pitfall P21).

    The null permutes ``score`` among the valid variants of each gene-tissue (pip and
    z_alt stay), recomputes ``AG_G`` and the per-tissue Spearman. A mean bias of the
    scores makes AG_G track ``sum pip*z_alt`` and hence TWAS.Z; the permutation keeps that
    bias, so ``perm_p`` tests the variant-level assignment of scores beyond it.

    Required columns: ``gene_id, tissue, assay, pip, z_alt, twas_z, score``.

    Returns ``{"table", "gene_scores", "seed", "n_permutations"}`` (+ ``"null"``: long
    DataFrame ``assay, tissue, replicate, rho`` with ``return_null=True``). ``table`` has
    one row per (assay, tissue) with ``>= min_genes`` genes: ``n_genes, spearman_rho,
    spearman_p`` (two-sided, t-approximation), ``perm_p_greater`` ((1 + #{rho* >= rho}) /
    (B + 1)), ``perm_p_two_sided`` (twice the smaller one-sided tail, capped at 1, as
    :func:`agval.stats.resampling.permutation_p`), ``null_mean, null_sd`` of rho*,
    ``rho_sum_pip_z, p_sum_pip_z`` (Spearman of ``sum pip*z_alt`` with TWAS.Z, the
    confound's own strength), ``n_permutations``.
    """
    df = _prepare(triplets, ("gene_id", "tissue", "assay", "pip", "z_alt", "twas_z", "score"),
                  twas_p_threshold)
    df = _valid_gene_rows(df)
    _check_twas_z_constant(df)
    rng = _rng(seed)
    B = int(n_permutations)
    rows, null_parts = [], []
    gene_scores = gene_level_scores(df, twas_p_threshold=None)
    for assay in sorted(df["assay"].unique().to_list()):
        sub = df.filter(pl.col("assay") == assay).sort("tissue", "gene_id")
        t_codes, tissues = _dense_codes(sub["tissue"])
        g_codes, _ = _dense_codes(sub["gene_id"])
        grp = t_codes * (int(g_codes.max()) + 1) + g_codes
        new = np.r_[True, grp[1:] != grp[:-1]]
        gstart = np.flatnonzero(new)
        grp_codes = np.cumsum(new) - 1
        score, pip, z, tz = _np(sub, "score"), _np(sub, "pip"), _np(sub, "z_alt"), _np(sub, "twas_z")
        pz = pip * z
        ag = np.add.reduceat(pz * score, gstart)
        spz = np.add.reduceat(pz, gstart)
        g_tz = tz[gstart]
        g_t = t_codes[gstart]
        null = np.full((B, gstart.size), np.nan)
        if B > 0:
            done = 0
            for b in _block_sizes(B, score.size):
                perm = _within_group_sorted_perm(grp_codes, b, rng)
                null[done:done + b] = np.add.reduceat(pz * score[perm], gstart, axis=1)
                done += b
        for ti, tissue in enumerate(tissues):
            sel = np.flatnonzero(g_t == ti)
            if sel.size < min_genes:
                continue
            obs = spearman(ag[sel], g_tz[sel])
            conf = spearman(spz[sel], g_tz[sel])
            if B > 0:
                rho_null = np.asarray(weighted_spearman(null[:, sel], g_tz[sel], None), dtype=float)
            else:
                rho_null = np.full(0, np.nan)
            fin = rho_null[np.isfinite(rho_null)]
            rows.append({"assay": assay, "tissue": tissue, "n_genes": int(sel.size),
                         "spearman_rho": obs["rho"], "spearman_p": obs["p"],
                         "perm_p_greater": permutation_p(obs["rho"], rho_null, alternative="greater"),
                         "perm_p_two_sided": permutation_p(obs["rho"], rho_null, alternative="two-sided"),
                         "null_mean": float(fin.mean()) if fin.size else math.nan,
                         "null_sd": float(fin.std(ddof=1)) if fin.size > 1 else math.nan,
                         "rho_sum_pip_z": conf["rho"], "p_sum_pip_z": conf["p"], "n_permutations": B})
            if return_null and B > 0:
                null_parts.append(pl.DataFrame({"assay": [assay] * B, "tissue": [tissue] * B,
                                                "replicate": np.arange(B), "rho": rho_null}))
    out: dict[str, Any] = {"table": pl.DataFrame(rows, schema=_Q4_SCHEMA), "gene_scores": gene_scores,
                           "seed": _seed_value(seed), "n_permutations": B}
    if return_null:
        out["null"] = pl.concat(null_parts) if null_parts else pl.DataFrame(
            schema={"assay": pl.Utf8, "tissue": pl.Utf8, "replicate": pl.Int64, "rho": pl.Float64})
    return out


# ======================================================================================
# CORRECTED mode: resampling at the true unit (pitfalls P30, P31, P32)
# ======================================================================================
#
# The functions above are the seed's statistics ("original" mode: within-(gene, tissue)
# permutation, row-level tests). They reproduce the published numbers and are kept for
# that. The functions below are the corrected mode:
#
# * locus = connected component of genes sharing a retained variant
#   (:func:`agval.stats.resampling.connected_loci`); every P value permutes, and every
#   interval resamples, at that level;
# * a permutation moves a **unit's** score once for every row of that unit: the unit is
#   the variant for gene-independent scores (ATAC, DNASE, CAGE: one score per variant and
#   tissue, shared by every gene near it) and the (variant, gene) for RNA (one gene's
#   score, near-identical across tissues); the whole tissue vector of a unit moves
#   (:class:`agval.stats.resampling.UnitPermuter`), to a unit of the same locus that has
#   scores in the same tissues (an exact conditional permutation test);
# * enrichment tests count a gene-independent score once (Q2).
#
# Shared conventions: ``seed`` as above; ``n_permutations`` permutations (P values
# ``(1 + #{null >= obs}) / (B + 1)``), ``n_boot`` locus-bootstrap replicates (percentile
# interval at ``confidence``).

GENE_INDEPENDENT_ASSAYS = ("ATAC", "DNASE", "CAGE")


def is_gene_independent(assay: str) -> bool:
    """True for assays whose score is one per (variant, tissue) (centre-mask chromatin)."""
    return str(assay).upper() in GENE_INDEPENDENT_ASSAYS


def add_loci(triplets: pl.DataFrame) -> pl.DataFrame:
    """``triplets`` with an Int64 ``locus`` column: connected components of genes that
    share a variant among the table's rows (rows with a null gene or variant get null)."""
    _require(triplets, ("variant_key", "gene_id"))
    pairs = triplets.select("gene_id", "variant_key").drop_nulls().unique()
    if pairs.height == 0:
        return triplets.with_columns(pl.lit(None, dtype=pl.Int64).alias("locus"))
    loc = connected_loci(pairs["gene_id"].to_numpy(), pairs["variant_key"].to_numpy())
    gl = pairs.select("gene_id").with_columns(pl.Series("locus", loc, dtype=pl.Int64)).unique("gene_id")
    return triplets.drop("locus", strict=False).join(gl, on="gene_id", how="left")


def _unit_expr(assay: str) -> pl.Expr:
    if is_gene_independent(assay):
        return pl.col("variant_key")
    return pl.concat_str([pl.col("variant_key"), pl.col("gene_id")], separator="|")


def _group_sum(codes_sorted: np.ndarray, k: int, x: np.ndarray) -> np.ndarray:
    """Sums of ``x`` ((b, n) or (n,)) over the contiguous groups of ``codes_sorted`` ->
    (b, k) / (k,) with 0 for absent groups."""
    x2 = np.atleast_2d(x)
    out = np.zeros((x2.shape[0], k))
    if codes_sorted.size:
        present, starts = np.unique(codes_sorted, return_index=True)
        out[:, present] = np.add.reduceat(x2, starts, axis=1)
    return out if np.ndim(x) == 2 else out[0]


#: below this many loci the percentile locus-bootstrap intervals under-cover (coverage of a
#: nominal 95 % interval 0.91-0.94 at ~45 loci, 0.95-0.96 at 181 loci in the structured null
#: worlds); every corrected record carries ``n_loci`` and the headline warns below it
MIN_LOCI_FOR_INTERVALS = 80


def _pct_ci(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the locus-bootstrap replicates (not BCa: it under-covers at
    few loci, see :data:`MIN_LOCI_FOR_INTERVALS`)."""
    v = reps[np.isfinite(reps)]
    if v.size < 2:
        return (math.nan, math.nan)
    a = (1 - confidence) / 2
    lo, hi = np.quantile(v, [a, 1 - a])
    return float(lo), float(hi)


def _boot_p_two_sided(observed: float, reps: np.ndarray, null_value: float = 0.0) -> float:
    """Bootstrap test of ``statistic == null_value``: the replicates re-centred on the
    null, ``(1 + #{|rep - obs| >= |obs - null|}) / (B + 1)``."""
    r = reps[np.isfinite(reps)]
    if not np.isfinite(observed) or r.size == 0:
        return math.nan
    d = abs(observed - null_value)
    return float((1 + np.sum(np.abs(r - observed) >= d - 1e-12)) / (r.size + 1))


def _jackknife_mean_diff_p(a: np.ndarray, grp: np.ndarray, codes: np.ndarray) -> float:
    """Two-sided P of ``mean(a[grp]) - mean(a[~grp]) == 0`` with the delete-one-locus
    jackknife standard error and a t reference with ``L - 1`` df (``L`` = loci, ``codes`` =
    0-based locus code per element). The re-centred locus bootstrap is anti-conservative here
    at ~50 loci (type-I 0.066-0.09 in the null worlds of ``bench/_calibration_twas.py``)."""
    L = int(codes.max()) + 1 if codes.size else 0
    if L < 3 or not grp.any() or grp.all():
        return math.nan
    s1, n1 = np.bincount(codes, a * grp, L), np.bincount(codes, grp.astype(float), L)
    s0, n0 = np.bincount(codes, a * ~grp, L), np.bincount(codes, (~grp).astype(float), L)
    obs = s1.sum() / n1.sum() - s0.sum() / n0.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = (s1.sum() - s1) / (n1.sum() - n1) - (s0.sum() - s0) / (n0.sum() - n0)
    loo = loo[np.isfinite(loo)]
    if loo.size < 3:
        return math.nan
    se = math.sqrt((loo.size - 1) / loo.size * np.sum((loo - loo.mean()) ** 2))
    if se <= 0:
        return math.nan
    return float(2 * stats.t.sf(abs(obs) / se, loo.size - 1))


def bh_adjust(p: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted P values (``scipy.stats.false_discovery_control``);
    NaN entries stay NaN and do not count towards the number of tests."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    fin = np.isfinite(p)
    if fin.any():
        out[fin] = stats.false_discovery_control(p[fin], method="bh")
    return out


def _prepare_corrected(triplets: pl.DataFrame, columns: Iterable[str],
                       twas_p_threshold: float | None) -> pl.DataFrame:
    df = _prepare(triplets, list(columns) + ["variant_key"], twas_p_threshold)
    df = df.filter(pl.col("gene_id").is_not_null() & pl.col("tissue").is_not_null()
                   & pl.col("variant_key").is_not_null())
    return add_loci(df)


_Q1C_SCHEMA = {
    "direction": pl.Utf8, "assay": pl.Utf8, "tissue": pl.Utf8, "pooled": pl.Boolean, "n": pl.Int64,
    "k": pl.Int64, "accuracy": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "perm_p": pl.Float64,
    "perm_null_mean": pl.Float64, "bh_q": pl.Float64, "n_loci": pl.Int64, "n_units": pl.Int64,
    "n_permutations": pl.Int64, "n_boot": pl.Int64,
}
_HVNC_SCHEMA = {
    "direction": pl.Utf8, "assay": pl.Utf8, "accuracy_heart": pl.Float64, "accuracy_nonheart": pl.Float64,
    "difference": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "boot_p": pl.Float64,
    "n_abs_heart": pl.Int64, "n_abs_nonheart": pl.Int64, "mean_abs_difference": pl.Float64,
    "mean_abs_ci_low": pl.Float64, "mean_abs_ci_high": pl.Float64, "mean_abs_boot_p": pl.Float64, "mean_abs_p": pl.Float64,
    "n_loci": pl.Int64,
}

Q1_DIRECTIONS = {
    "twas": "agreement with the TWAS-weighted eQTL direction sign(z_ALT * TWAS.Z) (seed replication)",
    "eqtl": "agreement with the variant's marginal eQTL effect (ALT-oriented slope) in that tissue (primary)",
    "twas_loo": "agreement with sign(z_ALT * leave-one-variant-out TWAS.Z) (LD-conditioned; own weight x z removed)",
}


def _gene_level_rows(triplets: pl.DataFrame, twas_p_threshold: float | None) -> pl.DataFrame:
    """The rows gene-level statistics (Q3, Q4 corrected) read: corrected-mode filter, rows
    with finite score, PIP, z and TWAS.Z, one TWAS.Z per gene-tissue (checked)."""
    df = _prepare_corrected(triplets, ("gene_id", "tissue", "assay", "pip", "z_alt", "twas_z", "score"),
                            twas_p_threshold)
    df = _valid_gene_rows(df)
    _check_twas_z_constant(df)
    return df


def q1_direction_agreement(triplets: pl.DataFrame, *, direction: str = "twas", n_permutations: int = 1000,
                           n_boot: int = 1000, seed: SeedLike, heart_tissues: Iterable[str] | None = None,
                           assays: Iterable[str] | None = None, confidence: float = 0.95,
                           twas_p_threshold: float | None = DEFAULT_TWAS_P_THRESHOLD,
                           return_null: bool = False) -> dict[str, Any]:
    """Q1, corrected mode: sign agreement of the model score with a direction, per tissue x
    assay and pooled over tissues, with a locus-level permutation P and a locus-bootstrap
    interval.

    ``direction="twas"``: ``e = sign(z_alt * twas_z)`` - the seed's statistic, which is
    agreement with the TWAS-weighted eQTL direction (TWAS.Z contains the variant's own
    eQTL weight x its own z, and genes are selected on TWAS from the same GWAS; P30); it
    is **not** evidence of mediation. ``direction="eqtl"``: ``e = sign(eqtl_slope)``, the
    variant's marginal eQTL effect for ALT in that tissue (GTEx slope) - the primary
    estimand; by default only the ``RNA`` assay. ``direction="twas_loo"``:
    ``e = sign(z_alt * twas_z_loo)``, the LD-conditioned leave-one-variant-out TWAS.Z
    (:func:`loo_twas_z`, :mod:`agval.twas.loo`): the variant's own weight x z removed, the
    dependence from selecting genes on the same GWAS not.

    Rows: ``score`` finite and non-zero and ``e`` non-zero. Accuracy ``k/n``. P value
    (one-sided, agreement above the null; statistic = ``k`` with ties broken by the
    PIP-weighted accuracy, as the count alone is discrete): every unit's score vector (variant for
    ATAC/DNASE/CAGE, variant-gene for RNA; all its tissues together) is permuted among the
    units of its locus that have scores in the same tissues
    (:class:`agval.stats.resampling.UnitPermuter`) for the pooled rows, and among the units
    of its locus scored in that tissue for a tissue's cell. Interval: percentile locus
    bootstrap. ``bh_q``: Benjamini-Hochberg over the tissue cells of the table (pooled rows
    excluded), across assays.

    Required columns: ``variant_key, gene_id, tissue, assay, score`` and ``z_alt, twas_z``
    (twas) or ``eqtl_slope`` (eqtl).

    Returns ``{"table", "heart_vs_nonheart", "direction", "label", "seed",
    "n_permutations", "n_boot", "heart_tissues"}`` (+ ``"null"`` long ``assay, tissue,
    replicate, accuracy``). ``table`` columns: :data:`_Q1C_SCHEMA`. ``heart_vs_nonheart``
    (one row per assay): the accuracy difference heart - non-heart with a locus-bootstrap
    interval and re-centred bootstrap P (two-sided), and the difference of mean ``|score|``
    over de-duplicated scores (one per unit and tissue) with the same.
    """
    if direction not in Q1_DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(Q1_DIRECTIONS)}, got {direction!r}")
    need = ["gene_id", "tissue", "assay", "score"] + {"twas": ["z_alt", "twas_z"], "eqtl": ["eqtl_slope"],
                                                      "twas_loo": ["z_alt", "twas_z_loo"]}[direction]
    df = _prepare_corrected(triplets, need, twas_p_threshold)
    if direction == "eqtl":
        df = df.with_columns(pl.col("eqtl_slope").cast(pl.Float64))
        e_expr = pl.col("eqtl_slope").sign()
        assays = ["RNA"] if assays is None else list(assays)
    elif direction == "twas_loo":
        e_expr = (pl.col("z_alt") * pl.col("twas_z_loo").cast(pl.Float64)).sign()
    else:
        e_expr = (pl.col("z_alt") * pl.col("twas_z")).sign()
    df = df.with_columns(e_expr.fill_nan(0).fill_null(0).alias("_e"))
    rng = _rng(seed)
    B, NB = int(n_permutations), int(n_boot)
    all_tissues = sorted(df["tissue"].unique().to_list())
    T = len(all_tissues)
    hearts = heart_tissue_set(all_tissues, heart_tissues)
    is_heart = np.array([t in hearts for t in all_tissues], dtype=bool)
    assay_list = sorted(df["assay"].drop_nulls().unique().to_list()) if assays is None else \
        [a for a in assays if a in set(df["assay"].to_list())]
    rows, hvn, nulls = [], [], []
    for assay in assay_list:
        sub = (df.filter((pl.col("assay") == assay) & pl.col("score").is_finite() & (pl.col("score") != 0))
               .with_columns(_unit_expr(assay).alias("_unit"),
                             pl.col("tissue").replace_strict(all_tissues, list(range(T))).alias("_t"))
               .sort("_t", "locus", "_unit"))
        n_all = sub.height
        t_codes = sub["_t"].to_numpy().astype(np.int64)
        score = _np(sub, "score")
        e = sub["_e"].to_numpy().astype(np.int8)
        ev = e != 0
        loc = sub["locus"].to_numpy().astype(np.int64)
        loc_codes = np.unique(loc, return_inverse=True)[1].reshape(-1) if n_all else loc
        c_obs = (np.sign(score) == e) & ev
        k_t = _group_sum(t_codes, T, c_obs.astype(float))
        n_t = _group_sum(t_codes, T, ev.astype(float))
        # the P value's statistic is the count k with ties broken by the PIP-weighted
        # accuracy (in [0, 1), so k + it orders like (k, weighted accuracy)): the count alone
        # is discrete and its permutation P conservative in small cells
        pipw = np.nan_to_num(_np(sub, "pip")) if "pip" in sub.columns else np.zeros(n_all)
        wk_t = _group_sum(t_codes, T, pipw * c_obs)
        ws_t = _group_sum(t_codes, T, pipw * ev)
        # pooled over tissues: units exchanged within (locus, tissue pattern); one tissue:
        # units with a score in that tissue exchanged within the locus (the strata each
        # statistic needs: finer strata would only make the null more discrete)
        null_k, null_n, null_wk, null_ws = (np.zeros((B, T)) for _ in range(4))
        cell_k, cell_n, cell_wk, cell_ws = (np.zeros((B, T)) for _ in range(4))
        units = sub["_unit"].to_numpy()
        if n_all and B:
            jobs = [(np.arange(n_all), (null_k, null_n, null_wk, null_ws))]
            jobs += [(np.flatnonzero(t_codes == ti), (cell_k, cell_n, cell_wk, cell_ws))
                     for ti in range(T) if n_t[ti] > 0]
            for idx, (kk, nn, wk, ws) in jobs:
                perm = UnitPermuter(units[idx], t_codes[idx], loc[idx], score[idx])
                tc, pw = t_codes[idx], pipw[idx]
                done = 0
                for b in _block_sizes(B, idx.size):
                    v = perm.draw(b, rng)
                    ok = np.isfinite(v) & (v != 0) & ev[idx]
                    c = ok & (np.sign(v) == e[idx])
                    kk[done:done + b] += _group_sum(tc, T, c.astype(float))
                    nn[done:done + b] += _group_sum(tc, T, ok.astype(float))
                    wk[done:done + b] += _group_sum(tc, T, c * pw)
                    ws[done:done + b] += _group_sum(tc, T, ok * pw)
                    done += b
        boot_k = np.zeros((NB, T))
        boot_n = np.zeros((NB, T))
        if n_all and NB:
            done = 0
            for b in _block_sizes(NB, n_all):
                w = locus_bootstrap_weights(loc_codes, b, rng)
                boot_k[done:done + b] = _group_sum(t_codes, T, w * c_obs)
                boot_n[done:done + b] = _group_sum(t_codes, T, w * ev)
                done += b

        def cell(label: str, pooled: bool, mask: np.ndarray) -> dict[str, Any]:
            n = int(n_t[mask].sum())
            k = int(k_t[mask].sum())
            acc = k / n if n else math.nan
            nk, nn, nwk, nws = ((null_k, null_n, null_wk, null_ws) if pooled
                                else (cell_k, cell_n, cell_wk, cell_ws))
            with np.errstate(divide="ignore", invalid="ignore"):
                nacc = nk[:, mask].sum(axis=1) / nn[:, mask].sum(axis=1)
                ws_obs = ws_t[mask].sum()
                t_obs = k + (wk_t[mask].sum() / ws_obs if ws_obs > 0 else 0.0)
                nws_m = nws[:, mask].sum(axis=1)
                t_null = nk[:, mask].sum(axis=1) + np.where(nws_m > 0, nwk[:, mask].sum(axis=1) / nws_m, 0.0)
                bacc = boot_k[:, mask].sum(axis=1) / boot_n[:, mask].sum(axis=1)
            lo, hi = _pct_ci(bacc, confidence) if n else (math.nan, math.nan)
            rm = np.isin(t_codes, np.flatnonzero(mask)) & ev
            if return_null and B:
                nulls.append(pl.DataFrame({"assay": [assay] * B, "tissue": [label] * B,
                                           "replicate": np.arange(B), "accuracy": nacc}))
            return {"direction": direction, "assay": assay, "tissue": label, "pooled": pooled, "n": n, "k": k,
                    "accuracy": acc, "ci_low": lo, "ci_high": hi,
                    "perm_p": permutation_p(t_obs, t_null, alternative="greater") if n and B else math.nan,
                    "perm_null_mean": float(np.nanmean(nacc)) if n and B else math.nan, "bh_q": math.nan,
                    "n_loci": int(np.unique(loc[rm]).size), "n_units": int(sub.filter(pl.Series(rm))["_unit"]
                                                                             .n_unique()) if n else 0,
                    "n_permutations": B, "n_boot": NB}

        for ti, tissue in enumerate(all_tissues):
            m = np.zeros(T, dtype=bool)
            m[ti] = True
            if n_t[ti] > 0:
                rows.append(cell(tissue, False, m))
        rows.append(cell(POOLED, True, n_t > 0))

        # heart vs non-heart: accuracy difference and mean |score| difference (one per unit x tissue)
        with np.errstate(divide="ignore", invalid="ignore"):
            def acc_of(kk, nn, m):
                return kk[..., m].sum(axis=-1) / nn[..., m].sum(axis=-1)
            d_obs = float(acc_of(k_t, n_t, is_heart) - acc_of(k_t, n_t, ~is_heart))
            d_boot = acc_of(boot_k, boot_n, is_heart) - acc_of(boot_k, boot_n, ~is_heart)
        dd = sub.unique(["_unit", "_t"], keep="first", maintain_order=True)
        a = np.abs(_np(dd, "score"))
        th = is_heart[dd["_t"].to_numpy().astype(np.int64)] if dd.height else np.zeros(0, bool)
        dloc = dd["locus"].to_numpy().astype(np.int64)
        dcodes = np.unique(dloc, return_inverse=True)[1].reshape(-1) if dd.height else dloc
        m_obs = (float(a[th].mean() - a[~th].mean()) if th.any() and (~th).any() else math.nan)
        m_boot = np.full(NB, np.nan)
        if dd.height and NB and np.isfinite(m_obs):
            done = 0
            for b in _block_sizes(NB, dd.height):
                w = locus_bootstrap_weights(dcodes, b, rng)
                with np.errstate(divide="ignore", invalid="ignore"):
                    m_boot[done:done + b] = ((w * a * th).sum(1) / (w * th).sum(1)
                                             - (w * a * ~th).sum(1) / (w * ~th).sum(1))
                done += b
        lo, hi = _pct_ci(d_boot, confidence) if np.isfinite(d_obs) else (math.nan, math.nan)
        mlo, mhi = _pct_ci(m_boot, confidence) if np.isfinite(m_obs) else (math.nan, math.nan)
        hvn.append({"direction": direction, "assay": assay,
                    "accuracy_heart": float(acc_of(k_t, n_t, is_heart)) if n_t[is_heart].sum() else math.nan,
                    "accuracy_nonheart": float(acc_of(k_t, n_t, ~is_heart)) if n_t[~is_heart].sum() else math.nan,
                    "difference": d_obs, "ci_low": lo, "ci_high": hi,
                    "boot_p": _boot_p_two_sided(d_obs, d_boot) if NB else math.nan,
                    "n_abs_heart": int(th.sum()), "n_abs_nonheart": int((~th).sum()),
                    "mean_abs_difference": m_obs, "mean_abs_ci_low": mlo, "mean_abs_ci_high": mhi,
                    "mean_abs_boot_p": _boot_p_two_sided(m_obs, m_boot) if NB else math.nan,
                    "mean_abs_p": _jackknife_mean_diff_p(a, th, dcodes) if np.isfinite(m_obs) else math.nan,
                    "n_loci": int(np.unique(dloc).size)})
    table = pl.DataFrame(rows, schema=_Q1C_SCHEMA)
    if table.height:
        cells = ~table["pooled"].to_numpy()
        q = np.full(table.height, np.nan)
        q[cells] = bh_adjust(table["perm_p"].to_numpy()[cells])
        table = table.with_columns(pl.Series("bh_q", q, dtype=pl.Float64))
    out: dict[str, Any] = {"table": table, "heart_vs_nonheart": pl.DataFrame(hvn, schema=_HVNC_SCHEMA),
                           "direction": direction, "label": Q1_DIRECTIONS[direction], "seed": _seed_value(seed),
                           "n_permutations": B, "n_boot": NB, "heart_tissues": sorted(hearts)}
    if return_null:
        out["null"] = pl.concat(nulls) if nulls else pl.DataFrame(
            schema={"assay": pl.Utf8, "tissue": pl.Utf8, "replicate": pl.Int64, "accuracy": pl.Float64})
    return out


_Q2C_SCHEMA = {
    "assay": pl.Utf8, "n_scores": pl.Int64, "n_rows": pl.Int64, "n_cs": pl.Int64, "n_noncs": pl.Int64,
    "mean_abs_cs": pl.Float64, "mean_abs_noncs": pl.Float64, "fold": pl.Float64, "fold_ci_low": pl.Float64,
    "fold_ci_high": pl.Float64, "auroc": pl.Float64, "mwu_u": pl.Float64, "mwu_p_rows": pl.Float64,
    "mwu_perm_p": pl.Float64, "spearman_rho": pl.Float64, "spearman_perm_p": pl.Float64, "n_loci": pl.Int64,
    "n_permutations": pl.Int64, "n_boot": pl.Int64,
}


def dedupe_scores(triplets: pl.DataFrame, assay: str) -> pl.DataFrame:
    """One row per distinct score of ``assay``: per (variant, tissue) for gene-independent
    assays, per (variant, gene, tissue) for RNA. ``in_cs`` = in any gene's credible set
    (``cs >= 0``), ``pip`` = the largest PIP, ``score`` and ``locus`` the first (equal
    within a unit). Needs ``locus`` (:func:`add_loci`). Columns: ``_unit, tissue, locus,
    score, pip, in_cs, n_rows``."""
    return (triplets.filter(pl.col("assay") == assay)
            .with_columns(_unit_expr(assay).alias("_unit"))
            .group_by("_unit", "tissue")
            .agg(pl.col("locus").first(), pl.col("score").first(), pl.col("pip").max(),
                 (pl.col("cs") >= 0).any().alias("in_cs"), pl.len().cast(pl.Int64).alias("n_rows"))
            .sort("locus", "_unit", "tissue"))


def q2_credible_set_enrichment_corrected(triplets: pl.DataFrame, *, n_permutations: int = 1000,
                                         n_boot: int = 1000, seed: SeedLike, confidence: float = 0.95,
                                         twas_p_threshold: float | None = DEFAULT_TWAS_P_THRESHOLD
                                         ) -> pl.DataFrame:
    """Q2, corrected mode: |score| in vs out of credible sets on **one row per distinct
    score** (:func:`dedupe_scores`), with locus-level resampling.

    Per assay: ``fold`` = mean |score| in CS / out of CS with a percentile locus-bootstrap
    interval; ``auroc`` = ``U / (n_cs n_noncs)`` and ``mwu_u`` (``scipy.stats.mannwhitneyu``
    U of the CS sample) with ``mwu_p_rows`` (scipy's P, which treats de-duplicated scores as
    independent - for comparison only) and ``mwu_perm_p`` (two-sided, unit scores permuted
    within loci, :class:`agval.stats.resampling.UnitPermuter`; the permuted statistic is the
    difference of mean |score| ranks in vs out of CS, a monotone function of U); ``spearman_rho``
    of (max) PIP with |score| and its ``spearman_perm_p`` (two-sided, the same permutations,
    Pearson of the ranks). Ranks are those of the observed de-duplicated scores (computed
    once).

    Required columns: ``variant_key, gene_id, tissue, assay, pip, cs, score``.
    """
    df = _prepare_corrected(triplets, ("gene_id", "tissue", "assay", "pip", "cs", "score"), twas_p_threshold)
    df = df.filter(pl.col("score").is_finite() & pl.col("cs").is_not_null() & pl.col("pip").is_finite())
    rng = _rng(seed)
    B, NB = int(n_permutations), int(n_boot)
    rows = []
    for assay in sorted(df["assay"].drop_nulls().unique().to_list()):
        d = dedupe_scores(df, assay)
        a = np.abs(_np(d, "score"))
        cs = d["in_cs"].to_numpy().astype(bool)
        pip = _np(d, "pip")
        loc = d["locus"].to_numpy().astype(np.int64)
        n = d.height
        m1 = float(a[cs].mean()) if cs.any() else math.nan
        m0 = float(a[~cs].mean()) if (~cs).any() else math.nan
        fold = m1 / m0 if np.isfinite(m0) and m0 > 0 else math.nan
        u, up = _mwu(a[cs], a[~cs])
        auc = u / (cs.sum() * (~cs).sum()) if np.isfinite(u) else math.nan
        rho = spearman(pip, a)["rho"]
        # permutation statistics on the observed ranks of |score| (a fixed monotone transform,
        # so no re-sorting per replicate): the rank-mean difference in vs out of CS (= a
        # monotone function of U when the permuted values are the observed ones) and the
        # Pearson correlation of PIP ranks with them (= Spearman likewise)
        ra = stats.rankdata(a) if n else a
        rp = stats.rankdata(pip) if n else pip
        csf = cs.astype(float)

        def _rank_diff(v: np.ndarray, w: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return (v * w * csf).sum(-1) / (w * csf).sum(-1) - (v * w * (1 - csf)).sum(-1) / \
                    (w * (1 - csf)).sum(-1)

        t_obs = float(_rank_diff(ra, np.ones(n))) if n else math.nan
        null_t, null_rho = np.full(B, np.nan), np.full(B, np.nan)
        if n and B:
            perm = UnitPermuter(d["_unit"].to_numpy(), d["tissue"].to_numpy(), loc, ra)
            done = 0
            for b in _block_sizes(B, n):
                v = perm.draw(b, rng)
                w = np.isfinite(v).astype(float)
                v = np.nan_to_num(v)
                null_t[done:done + b] = _rank_diff(v, w)
                null_rho[done:done + b] = weighted_pearson(v, rp, w)
                done += b
        boot = np.full(NB, np.nan)
        if n and NB and np.isfinite(fold):
            codes = np.unique(loc, return_inverse=True)[1].reshape(-1)
            done = 0
            for b in _block_sizes(NB, n):
                w = locus_bootstrap_weights(codes, b, rng)
                with np.errstate(divide="ignore", invalid="ignore"):
                    boot[done:done + b] = ((w * a * cs).sum(1) / (w * cs).sum(1)) / \
                        ((w * a * ~cs).sum(1) / (w * ~cs).sum(1))
                done += b
        lo, hi = _pct_ci(boot, confidence)
        rows.append({"assay": assay, "n_scores": n, "n_rows": int(d["n_rows"].sum()), "n_cs": int(cs.sum()),
                     "n_noncs": int((~cs).sum()), "mean_abs_cs": m1, "mean_abs_noncs": m0, "fold": fold,
                     "fold_ci_low": lo, "fold_ci_high": hi, "auroc": auc, "mwu_u": u, "mwu_p_rows": up,
                     "mwu_perm_p": permutation_p(t_obs, null_t, alternative="two-sided") if B else math.nan,
                     "spearman_rho": rho,
                     "spearman_perm_p": permutation_p(rho, null_rho, alternative="two-sided") if B else math.nan,
                     "n_loci": int(np.unique(loc).size), "n_permutations": B, "n_boot": NB})
    return pl.DataFrame(rows, schema=_Q2C_SCHEMA)


class _AGModel:
    """AG_G = sum pip * score * z_alt per (gene, tissue) of one assay, observed and under
    unit permutations (rows sorted by gene, tissue)."""

    def __init__(self, sub: pl.DataFrame, assay: str):
        sub = sub.with_columns(_unit_expr(assay).alias("_unit")).sort("gene_id", "tissue", "variant_key")
        self.sub = sub
        g = sub.select("gene_id", "tissue")
        key = g["gene_id"] + "\x00" + g["tissue"]
        new = np.r_[True, (key[1:] != key[:-1]).to_numpy()] if sub.height else np.zeros(0, bool)
        self.gt_code = np.cumsum(new) - 1
        self.gstart = np.flatnonzero(new)
        self.n_gt = int(self.gstart.size)
        self.pz = _np(sub, "pip") * _np(sub, "z_alt")
        self.score = _np(sub, "score")
        self.loc_row = sub["locus"].to_numpy().astype(np.int64)
        self.gt = sub[self.gstart].select("gene_id", "tissue", "twas_z", "locus") if sub.height else \
            sub.select("gene_id", "tissue", "twas_z", "locus")
        self.perm = UnitPermuter(sub["_unit"].to_numpy(), sub["tissue"].to_numpy(), self.loc_row, self.score) \
            if sub.height else None

    def ag(self, scores: np.ndarray) -> np.ndarray:
        x = np.nan_to_num(scores) * self.pz
        return np.add.reduceat(x, self.gstart, axis=-1) if self.n_gt else np.zeros(x.shape[:-1] + (0,))

    def null_blocks(self, B: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
        for b in _block_sizes(B, max(1, self.sub.height)):
            yield self.ag(self.perm.draw(b, rng))


def _tau_b_rows(x: np.ndarray, y: np.ndarray, gene_code: np.ndarray) -> np.ndarray:
    """Kendall tau-b of ``x`` (b, m) with ``y`` (m,) within each gene (contiguous codes)
    -> (b, G); equals ``scipy.stats.kendalltau`` (variant "b") per gene."""
    G = int(gene_code.max()) + 1 if gene_code.size else 0
    ii, jj = [], []
    starts = np.flatnonzero(np.r_[True, gene_code[1:] != gene_code[:-1]])
    ends = np.r_[starts[1:], gene_code.size]
    for s, e in zip(starts, ends):
        i, j = np.triu_indices(e - s, 1)
        ii.append(i + s)
        jj.append(j + s)
    ii = np.concatenate(ii) if ii else np.zeros(0, np.int64)
    jj = np.concatenate(jj) if jj else np.zeros(0, np.int64)
    pg = gene_code[ii]
    x2 = np.atleast_2d(x)
    sx = np.sign(x2[:, ii] - x2[:, jj])
    sy = np.sign(y[ii] - y[jj])
    from scipy.sparse import csr_matrix

    onehot = csr_matrix((np.ones(pg.size), (np.arange(pg.size), pg)), shape=(pg.size, G))
    num = np.asarray((onehot.T @ (sx * sy).T).T)
    nx = np.asarray((onehot.T @ np.abs(sx).T).T)
    ny = np.bincount(pg, weights=np.abs(sy), minlength=G)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / np.sqrt(nx * ny[None, :])


_Q3C_SCHEMA = {
    "assay": pl.Utf8, "n_genes": pl.Int64, "spearman_rho": pl.Float64, "rho_ci_low": pl.Float64,
    "rho_ci_high": pl.Float64, "rho_perm_p": pl.Float64, "rho_null_mean": pl.Float64,
    "n_genes_kendall": pl.Int64, "mean_tau": pl.Float64, "mean_tau_perm_p": pl.Float64,
    "tau_null_mean": pl.Float64, "n_tau_p_lt_0_05": pl.Int64, "n_loci": pl.Int64, "n_permutations": pl.Int64,
    "n_boot": pl.Int64,
}


def _spec_np(ag: np.ndarray, gene_of_gt: np.ndarray, n_genes: int, deviation: str) -> np.ndarray:
    """Specificity per gene from gene-tissue values ``ag`` (b, n_gt) -> (b, n_genes)."""
    cnt = np.bincount(gene_of_gt, minlength=n_genes).astype(float)
    sums = np.stack([np.bincount(gene_of_gt, weights=r, minlength=n_genes) for r in ag])
    d = ag - (sums / cnt)[:, gene_of_gt]
    if deviation == "mean_abs":
        return np.stack([np.bincount(gene_of_gt, weights=r, minlength=n_genes) for r in np.abs(d)]) / cnt
    if deviation == "sd":
        return np.sqrt(np.stack([np.bincount(gene_of_gt, weights=r, minlength=n_genes) for r in d * d]) / cnt)
    if deviation == "max_abs":
        out = np.full((ag.shape[0], n_genes), -np.inf)
        np.maximum.at(out, (slice(None), gene_of_gt), np.abs(d))
        return out
    raise ValueError(f"deviation must be 'mean_abs', 'sd' or 'max_abs', got {deviation!r}")


def q3_tissue_specificity_corrected(triplets: pl.DataFrame, *, n_permutations: int = 1000, n_boot: int = 1000,
                                    seed: SeedLike, min_tissues: int = 2, min_tissues_kendall: int = 3,
                                    deviation: str = "mean_abs", confidence: float = 0.95,
                                    twas_p_threshold: float | None = DEFAULT_TWAS_P_THRESHOLD) -> pl.DataFrame:
    """Q3, corrected mode: ``rho = Spearman(S_AG, S_TWAS)`` across genes and the mean
    within-gene Kendall tau of AG_G with TWAS.Z across tissues, each with a null.

    S_AG and S_TWAS both grow with a gene's GWAS strength (AG_G contains ``pip * z_alt``),
    so rho is positive with pure-noise scores (P32). The null keeps that: unit scores are
    permuted within loci (:class:`agval.stats.resampling.UnitPermuter`), AG_G, S_AG, rho and
    the taus recomputed; ``rho_perm_p`` and ``mean_tau_perm_p`` are one-sided (greater).
    ``rho_ci_*``: percentile locus bootstrap of rho (genes weighted by their locus's
    draw count). ``n_tau_p_lt_0_05`` (scipy's per-gene Kendall P < 0.05) is shown beside
    only: with 3 tissues no gene can reach it.

    Takes the triplet table (not gene scores): required ``variant_key, gene_id, tissue,
    assay, pip, z_alt, twas_z, score``.
    """
    df = _gene_level_rows(triplets, twas_p_threshold)
    rng = _rng(seed)
    B, NB = int(n_permutations), int(n_boot)
    rows = []
    for assay in sorted(df["assay"].unique().to_list()):
        m = _AGModel(df.filter(pl.col("assay") == assay), assay)
        gt = m.gt
        ntis = gt.group_by("gene_id").len()
        keep_g = set(ntis.filter(pl.col("len") >= min_tissues)["gene_id"].to_list())
        sel = np.flatnonzero(gt["gene_id"].is_in(list(keep_g)).to_numpy())
        if sel.size == 0:
            continue
        gsel = gt[sel]
        g_codes, genes = _dense_codes(gsel["gene_id"])
        G = len(genes)
        tz = _np(gsel, "twas_z")
        s_tw = _spec_np(tz[None, :], g_codes, G, deviation)[0]
        ag_obs = m.ag(m.score)[sel]
        s_ag = _spec_np(ag_obs[None, :], g_codes, G, deviation)[0]
        rho = spearman(s_ag, s_tw)["rho"]
        # Kendall: genes with >= min_tissues_kendall tissues
        cnt = np.bincount(g_codes, minlength=G)
        ksel = np.flatnonzero(cnt[g_codes] >= min_tissues_kendall)
        kg = np.unique(g_codes[ksel], return_inverse=True)[1].reshape(-1) if ksel.size else ksel
        tau_obs = _tau_b_rows(ag_obs[ksel][None, :], tz[ksel], kg)[0] if ksel.size else np.zeros(0)
        mean_tau = float(np.nanmean(tau_obs)) if np.isfinite(tau_obs).any() else math.nan
        n_sig = 0
        for gi in range(int(kg.max()) + 1 if ksel.size else 0):
            idx = ksel[kg == gi]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kp = stats.kendalltau(ag_obs[idx], tz[idx]).pvalue
            n_sig += bool(np.isfinite(kp) and kp < 0.05)
        null_rho, null_tau = np.full(B, np.nan), np.full(B, np.nan)
        if B:
            done = 0
            for agb in m.null_blocks(B, rng):
                b = agb.shape[0]
                agb = agb[:, sel]
                null_rho[done:done + b] = weighted_spearman(_spec_np(agb, g_codes, G, deviation), s_tw, None)
                if ksel.size:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        null_tau[done:done + b] = np.nanmean(_tau_b_rows(agb[:, ksel], tz[ksel], kg), axis=1)
                done += b
        boot = np.full(NB, np.nan)
        gene_loc = np.zeros(G, dtype=np.int64)
        gene_loc[g_codes] = gsel["locus"].to_numpy().astype(np.int64)
        if NB and G > 2:
            lc = np.unique(gene_loc, return_inverse=True)[1].reshape(-1)
            w = locus_bootstrap_weights(lc, NB, rng)
            boot = np.asarray(weighted_spearman(s_ag, s_tw, w), dtype=float)
        lo, hi = _pct_ci(boot, confidence)
        rows.append({"assay": assay, "n_genes": G, "spearman_rho": rho, "rho_ci_low": lo, "rho_ci_high": hi,
                     "rho_perm_p": permutation_p(rho, null_rho, alternative="greater") if B else math.nan,
                     "rho_null_mean": float(np.nanmean(null_rho)) if B and np.isfinite(null_rho).any()
                     else math.nan,
                     "n_genes_kendall": int(kg.max()) + 1 if ksel.size else 0, "mean_tau": mean_tau,
                     "mean_tau_perm_p": permutation_p(mean_tau, null_tau, alternative="greater") if B
                     else math.nan,
                     "tau_null_mean": float(np.nanmean(null_tau)) if B and np.isfinite(null_tau).any()
                     else math.nan,
                     "n_tau_p_lt_0_05": int(n_sig), "n_loci": int(np.unique(gene_loc).size),
                     "n_permutations": B, "n_boot": NB})
    return pl.DataFrame(rows, schema=_Q3C_SCHEMA)


_Q4C_SCHEMA = {
    "assay": pl.Utf8, "tissue": pl.Utf8, "n_genes": pl.Int64, "spearman_rho": pl.Float64,
    "rho_ci_low": pl.Float64, "rho_ci_high": pl.Float64, "perm_p_greater": pl.Float64,
    "null_mean": pl.Float64, "bh_q": pl.Float64, "n_loci": pl.Int64, "n_permutations": pl.Int64,
    "n_boot": pl.Int64,
}


def q4_synthetic_twas_corrected(triplets: pl.DataFrame, *, n_permutations: int = 1000, n_boot: int = 1000,
                                seed: SeedLike, min_genes: int = 3, confidence: float = 0.95,
                                twas_p_threshold: float | None = DEFAULT_TWAS_P_THRESHOLD,
                                return_null: bool = False) -> dict[str, Any]:
    """Q4, corrected mode: Spearman of AG_G with TWAS.Z across the genes of each tissue,
    per assay, with the unit-score permutation within loci among the units scored in that
    tissue (P21 and P31: the null keeps the scores' mean bias and every shared score
    shared), one-sided ``perm_p_greater``, a percentile locus-bootstrap interval, and
    ``bh_q`` (Benjamini-Hochberg over the whole tissue x assay grid).

    Required columns: ``variant_key, gene_id, tissue, assay, pip, z_alt, twas_z, score``.
    Returns ``{"table", "seed", "n_permutations", "n_boot"}`` (+ ``"null"``: ``assay,
    tissue, replicate, rho``).
    """
    df = _gene_level_rows(triplets, twas_p_threshold)
    rng = _rng(seed)
    B, NB = int(n_permutations), int(n_boot)
    rows, nulls = [], []
    for assay in sorted(df["assay"].unique().to_list()):
        m = _AGModel(df.filter(pl.col("assay") == assay), assay)
        gt = m.gt
        if gt.height == 0:
            continue
        ag = m.ag(m.score)
        tz = _np(gt, "twas_z")
        t_codes, tissues = _dense_codes(gt["tissue"])
        cells = [(ti, t, np.flatnonzero(t_codes == ti)) for ti, t in enumerate(tissues)]
        cells = [c for c in cells if c[2].size >= min_genes]
        if not cells:
            continue
        null = np.full((B, len(cells)), np.nan)
        if B:
            asub = df.filter(pl.col("assay") == assay)
            for ci, (_, tissue, sel) in enumerate(cells):
                # one tissue: its units exchanged within loci (AG_G of this tissue only)
                mt = _AGModel(asub.filter(pl.col("tissue") == tissue), assay)
                order = np.searchsorted(mt.gt["gene_id"].to_numpy(), gt["gene_id"].to_numpy()[sel])
                done = 0
                for agb in mt.null_blocks(B, rng):
                    b = agb.shape[0]
                    null[done:done + b, ci] = weighted_spearman(agb[:, order], tz[sel], None)
                    done += b
        gl = gt["locus"].to_numpy().astype(np.int64)
        for ci, (_, tissue, sel) in enumerate(cells):
            rho = spearman(ag[sel], tz[sel])["rho"]
            lo = hi = math.nan
            if NB:
                lc = np.unique(gl[sel], return_inverse=True)[1].reshape(-1)
                w = locus_bootstrap_weights(lc, NB, rng)
                lo, hi = _pct_ci(np.asarray(weighted_spearman(ag[sel], tz[sel], w), dtype=float), confidence)
            rows.append({"assay": assay, "tissue": tissue, "n_genes": int(sel.size), "spearman_rho": rho,
                         "rho_ci_low": lo, "rho_ci_high": hi,
                         "perm_p_greater": permutation_p(rho, null[:, ci], alternative="greater") if B
                         else math.nan,
                         "null_mean": float(np.nanmean(null[:, ci])) if B and np.isfinite(null[:, ci]).any()
                         else math.nan, "bh_q": math.nan, "n_loci": int(np.unique(gl[sel]).size),
                         "n_permutations": B, "n_boot": NB})
            if return_null and B:
                nulls.append(pl.DataFrame({"assay": [assay] * B, "tissue": [tissue] * B,
                                           "replicate": np.arange(B), "rho": null[:, ci]}))
    table = pl.DataFrame(rows, schema=_Q4C_SCHEMA)
    if table.height:
        table = table.with_columns(pl.Series("bh_q", bh_adjust(table["perm_p_greater"].to_numpy()),
                                             dtype=pl.Float64))
    out: dict[str, Any] = {"table": table, "seed": _seed_value(seed), "n_permutations": B, "n_boot": NB}
    if return_null:
        out["null"] = pl.concat(nulls) if nulls else pl.DataFrame(
            schema={"assay": pl.Utf8, "tissue": pl.Utf8, "replicate": pl.Int64, "rho": pl.Float64})
    return out


# --------------------------------------------------------------------------------------
# leave-one-variant-out TWAS.Z (P30)
# --------------------------------------------------------------------------------------

def loo_twas_z(weights: Any, z: Any, ld: Any) -> np.ndarray:
    """LD-conditioned leave-one-variant-out TWAS.Z of one gene-tissue, per variant.

    ``weights`` (..., m) eQTL weights, ``z`` (..., m) GWAS z (the same alleles), ``ld``
    (..., m, m) LD correlation (unit diagonal); leading dimensions broadcast (a batch of
    gene-tissues). For variant ``i`` the other variants' z are conditioned on ``z_i``
    (``z_c = z_-i - R_-i,i z_i``, covariance ``R_-i,-i - R_-i,i R_i,-i``) and
    ``TWAS_-i = w_-i' z_c / sqrt(w_-i' Sigma_c w_-i)``. Under a null GWAS (``z ~ N(0, R)``)
    ``TWAS_-i`` is independent of ``z_i``, so ``sign(z_i * TWAS_-i)`` no longer contains the
    variant's own eQTL weight x its own z (P30). Selecting genes on TWAS significance from
    the same GWAS brings dependence back; mediation itself needs colocalisation or
    Mendelian randomisation, not sign agreement.

    Closed form, O(m^2) per gene-tissue: with ``u = R w`` and ``o_i = u_i - w_i``, the
    numerator is ``w'z - w_i z_i - z_i o_i`` and the variance
    ``w'Rw - 2 w_i u_i + w_i^2 - o_i^2``. Flipping the counted allele of variant ``i``
    (``w_i, z_i, R_i.`` negated) leaves ``TWAS_-i`` unchanged. Returns (..., m) (NaN where
    the conditioned variance is ~0, e.g. only one variant).
    """
    w = np.asarray(weights, dtype=float)
    zz = np.asarray(z, dtype=float)
    R = np.asarray(ld, dtype=float)
    m = w.shape[-1]
    if zz.shape[-1] != m or R.shape[-2:] != (m, m):
        raise ValueError(f"weights {w.shape}, z {zz.shape} and ld {R.shape} do not match")
    u = np.einsum("...ij,...j->...i", R, w)
    wz = np.einsum("...i,...i->...", w, zz)[..., None]
    wRw = np.einsum("...i,...i->...", w, u)[..., None]
    o = u - w
    num = wz - w * zz - zz * o
    var = wRw - 2.0 * w * u + w ** 2 - o ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 1e-12 * np.maximum(1.0, wRw), num / np.sqrt(np.maximum(var, 1e-300)), np.nan)
