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

Rows are not independent (shared variants across genes and tissues, LD; pitfall P22):
the binomial P is reported for comparison with the seed, the within-gene permutation P is
the primary test. Randomness: an explicit ``seed`` (int or ``numpy.random.Generator``).
Permutations are vectorised: one argsort of random keys ordered by group permutes every
gene-tissue group at once for a block of replicates (no loop over permutations; see
:func:`agval.stats.resampling.within_group_permutation_indices`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterable

import numpy as np
import polars as pl
from scipy import special, stats

from agval.errors import InputError, MissingColumnError
from agval.stats.concordance import binomial_p
from agval.stats.correlation import spearman
from agval.stats.resampling import (
    SeedLike,
    _block_sizes,
    _rng,
    _seed_value,
    _within_group_sorted_perm,
    permutation_p,
    weighted_spearman,
)

__all__ = [
    "TRIPLET_COLUMNS",
    "DEFAULT_TWAS_P_THRESHOLD",
    "heart_tissue_set",
    "two_proportion_ztest",
    "q1_sign_concordance",
    "q2_credible_set_enrichment",
    "gene_level_scores",
    "q3_tissue_specificity",
    "q4_synthetic_twas",
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
