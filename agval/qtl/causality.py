"""QTL causality and direction benchmark (the AlphaGenome paper's standard QTL benchmark).

Question: does a model's score separate **causal QTL variants** from **matched
controls** (causality), and does its sign follow the **effect direction** of the
causal variants (direction)? Prefect-free; :mod:`flows.qtl` runs it when a study says
``benchmark = "causality"``.

Input: the standardized layout used by the field, one row per variant (CSV/TSV/parquet)::

    chrom  pos       ref  alt  label  effect   p        score_<model> ...
    chr1   1234567   A    G    1      0.42     1e-12    0.03
    chr1   1240011   C    T    0                0.2      -0.001

* ``chrom, pos, ref, alt``: hg38, 1-based; ``effect`` is for the ALT allele;
* ``label``: 1 = causal QTL variant (positive), 0 = matched control (also ``true/false``);
* ``effect``: signed effect size of the positives (controls may leave it empty);
* ``p`` (optional): the variant's QTL P value. **Significance gap**: a control is kept
  only when ``-log10 p < control_max_log10p`` (3); controls with ``-log10 p`` in
  ``[control_max_log10p, gap_max_log10p)`` (3-5) are dropped (``significance_gap``:
  too close to significance to be a clean negative), controls at or above
  ``gap_max_log10p`` too (``significant_control``). Every drop is logged;
* baseline-model score columns: ``baseline_columns`` or every column named
  ``score_<model>``; the column's name is the model's name in the results.
  Baseline scores cost no scoring run.

Statistics, per split (``all``, ``odd`` / ``even`` numbered autosomes, ``heldout``: the
given held-out chromosomes) and per model (a live backend's pooled track score and each
baseline column), on the rows the model scored:

* **causality**: auPRC = average precision of ``|score|`` for ``label`` (exactly
  ``sklearn.metrics.average_precision_score``: precision at each distinct threshold,
  weighted by the recall step), beside the **random baseline** = the mean AP of the scores
  permuted among the rows (:func:`ap_null`; above the positive rate at finite n) and a
  within-locus permutation P (``auprc_perm_p``);
* **direction**: Pearson r of the signed score with ``effect`` over the positives;
* **standard errors and percentile intervals** from a **locus-level** cluster bootstrap
  (:func:`agval.stats.resampling.bootstrap_ci`): loci are single-linkage clusters of
  variants closer than ``locus_distance`` bp on a chromosome (a positive and its matched
  controls resample together);
* **paired differences** of every model against ``reference_model`` on the rows both
  scored, with the same locus draws for both (:func:`paired_bootstrap_difference`);
* with two or more models, a **rank-mean ensemble** row (:func:`rank_mean_ensemble`);
* **published reference rows**: a study naming a registry set of kind ``qtl-causality``
  (``[study] published = "<id>"``, :mod:`agval.published`) gets the set's numbers beside
  its own (``metrics.json["published"]``, a report table) with keys
  ``<split>.<model>.<statistic>`` (:func:`agval.published.causality_observed`). The
  registry holds no such set yet (none of the paper's numbers was traceable; see
  ``agval/published/benchmarks-v1.toml``).

The module never imports Prefect or the stand-ins.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agval.drops import DropLog
from agval.errors import InputError, MissingColumnError
from agval.stats.resampling import (Statistic, bootstrap_ci, paired_bootstrap_difference,
                                   within_group_permutation_indices)

__all__ = ["CausalitySettings", "load_causality_table", "apply_significance_gap", "locus_ids", "check_reference",
           "split_masks", "average_precision", "AVERAGE_PRECISION", "ap_null", "benchmark", "results_table",
           "differences_table", "REQUIRED_COLUMNS", "BASELINE_PREFIX", "rank_mean_ensemble", "ENSEMBLE"]

REQUIRED_COLUMNS = ("chrom", "pos", "ref", "alt", "label", "effect")
#: columns named ``score_<model>`` are baseline-model scores unless ``baseline_columns`` names them
BASELINE_PREFIX = "score_"


class CausalitySettings(BaseModel):
    """The ``[study.causality]`` section of a causality study (``benchmark = "causality"``)."""

    model_config = ConfigDict(extra="forbid")

    control_max_log10p: float = Field(3.0, ge=0, description="controls are kept when -log10 P is below this")
    gap_max_log10p: float = Field(5.0, ge=0, description="controls with -log10 P in [control_max_log10p, this) "
                                  "are dropped (the significance gap); at or above it too (significant control)")
    locus_distance: int = Field(100_000, ge=0, description="variants closer than this (bp) on a chromosome form "
                                "one locus, the bootstrap's resampling unit (single linkage)")
    heldout_chromosomes: list[str] = Field(default_factory=list, description="the 'heldout' split (e.g. the "
                                           "model's held-out test chromosomes)")
    splits: list[str] = Field(default_factory=lambda: ["all", "odd", "even", "heldout"],
                              description="splits to report: all, odd, even, heldout")
    live_model: bool = Field(True, description="score the variants with the study's backend (model 'model_name'); "
                             "false: baseline columns only, no scoring")
    model_name: str = Field("alphagenome", description="name of the live backend's model in the results")
    baseline_columns: list[str] | None = Field(None, description="baseline-model score columns of the table "
                                               "(default: every column named score_<model>)")
    reference_model: str | None = Field(None, description="paired differences are taken against this model "
                                        "(default: the first model)")
    ensemble: bool = Field(True, description="with two or more models, add the rank-mean ensemble row "
                           "('ensemble': mean over models of sign(score) x rank(|score|) / n)")
    planted: dict[str, dict[str, float]] | None = Field(
        None, description="SIMULATED studies: model -> {auprc, direction_r} expected in the population "
        "(reported against the bootstrap interval of the 'all' split)")

    @model_validator(mode="after")
    def _check(self) -> "CausalitySettings":
        if self.gap_max_log10p < self.control_max_log10p:
            raise ValueError("gap_max_log10p must be >= control_max_log10p")
        bad = set(self.splits) - {"all", "odd", "even", "heldout"}
        if bad:
            raise ValueError(f"unknown splits {sorted(bad)}; use all, odd, even, heldout")
        return self


# ----------------------------------------------------------------------------------
# Loading and filtering
# ----------------------------------------------------------------------------------

def _read(path: Path) -> pl.DataFrame:
    suf = "".join(path.suffixes).lower()
    if suf.endswith((".parquet", ".pq")):
        return pl.read_parquet(path)
    sep = "\t" if suf.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) else ","
    return pl.read_csv(path, separator=sep, infer_schema_length=10000, null_values=["", "NA", "NaN", "nan", "."])


def _float(df: pl.DataFrame, col: str, path: Path) -> pl.Series:
    s = df[col]
    out = s.cast(pl.Float64, strict=False)
    bad = out.is_null() & s.is_not_null()
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(f"{col} is not a number ({s[i]!r})", file=path, column=col, row=i + 1)
    return out


def load_causality_table(path: str | Path, *, baseline_columns: list[str] | None = None,
                         dataset: str = "causality") -> tuple[pl.DataFrame, list[str]]:
    """Read a table in the standardized layout; returns ``(frame, baseline_columns)``.

    ``frame``: ``row_id`` (``<dataset>:<data row>``), ``source_row``, ``chrom``
    (``chr``-prefixed), ``pos`` (Int64), ``ref``, ``alt`` (upper case), ``label`` (Int8,
    0/1), ``effect`` (Float64), ``log10p`` (``-log10 p``, null without a ``p`` column) and
    the baseline columns (Float64). Bad values raise :class:`InputError` naming the row.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("causality table not found", file=p)
    df = _read(p)
    for c in REQUIRED_COLUMNS:
        if c not in df.columns:
            raise MissingColumnError(c, file=p, available=df.columns)
    if baseline_columns is None:
        baseline_columns = [c for c in df.columns if c.startswith(BASELINE_PREFIX)]
    for c in baseline_columns:
        if c not in df.columns:
            raise MissingColumnError(c, file=p, available=df.columns)
    lab_raw = df["label"].cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    lab = lab_raw.replace_strict({"1": 1, "0": 0, "true": 1, "false": 0, "1.0": 1, "0.0": 0}, default=None,
                                 return_dtype=pl.Int8)
    if lab.is_null().any():
        i = int(lab.is_null().arg_true()[0])
        raise InputError(f"label must be 1 (causal) or 0 (control), not {df['label'][i]!r}", file=p,
                         column="label", row=i + 1)
    pos = df["pos"].cast(pl.Int64, strict=False)
    if pos.is_null().any() or (pos <= 0).any():
        i = int((pos.is_null() | (pos <= 0)).arg_true()[0])
        raise InputError(f"pos must be a positive 1-based integer, not {df['pos'][i]!r}", file=p, column="pos",
                         row=i + 1)
    chrom = df["chrom"].cast(pl.Utf8).str.strip_chars()
    chrom = pl.Series("chrom", [c if c.lower().startswith("chr") else f"chr{c}" for c in chrom.to_list()])
    cols = [pl.Series("row_id", [f"{dataset}:{i}" for i in range(1, df.height + 1)]),
            pl.Series("source_row", np.arange(1, df.height + 1), dtype=pl.Int64), chrom, pos.alias("pos"),
            df["ref"].cast(pl.Utf8).str.to_uppercase().alias("ref"),
            df["alt"].cast(pl.Utf8).str.to_uppercase().alias("alt"), lab.alias("label"),
            _float(df, "effect", p).alias("effect")]
    if "p" in df.columns:
        pv = _float(df, "p", p)
        bad_p = ((pv < 0) | (pv > 1) | pv.is_nan()).fill_null(False)
        if bad_p.any():
            i = int(bad_p.arg_true()[0])
            raise InputError(f"p must lie in [0, 1], not {pv[i]}", file=p, column="p", row=i + 1)
        # p = 0 (an underflowed P value) is -log10 p = inf: as significant as it gets
        cols.append((-pv.log10()).alias("log10p"))
    else:
        cols.append(pl.Series("log10p", [None] * df.height, dtype=pl.Float64))
    cols += [_float(df, c, p).alias(c) for c in baseline_columns]
    out = pl.DataFrame(cols)
    bad = ~(out["ref"].str.contains(r"^[ACGT]+$") & out["alt"].str.contains(r"^[ACGT]+$")).fill_null(False)
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(f"alleles must be A/C/G/T, not {out['ref'][i]!r}>{out['alt'][i]!r}", file=p, row=i + 1)
    return out, list(baseline_columns)


def apply_significance_gap(frame: pl.DataFrame, settings: CausalitySettings, *,
                           drops: DropLog | None = None, source_file: str | None = None) -> pl.DataFrame:
    """Keep positives and the controls with ``-log10 p < control_max_log10p``; drop controls
    in the gap (``significance_gap``) and above it (``significant_control``). Without P
    values (``log10p`` all null) nothing is dropped."""
    if frame["log10p"].is_null().all():
        return frame
    ctrl = pl.col("label") == 0
    lp = pl.col("log10p")
    gap = ctrl & (lp >= settings.control_max_log10p) & (lp < settings.gap_max_log10p)
    sig = ctrl & (lp >= settings.gap_max_log10p)
    for expr, reason in ((gap, "significance_gap"), (sig, "significant_control")):
        gone = frame.filter(expr)
        if drops is not None and gone.height:
            drops.add_frame(gone.select("row_id", "source_row", pl.format(
                "control with -log10 P = {} (kept below {}, gap up to {})", pl.col("log10p").round(3),
                pl.lit(settings.control_max_log10p), pl.lit(settings.gap_max_log10p)).alias("detail")),
                stage="causality", reason=reason, source_file=source_file)
    return frame.filter(~(gap | sig).fill_null(False))


def check_reference(frame: pl.DataFrame, genome, *, drops: DropLog | None = None,
                    source_file: str | None = None) -> pl.DataFrame:
    """Drop rows whose REF is not the genome's (``ref_mismatch``) or whose chromosome the
    genome lacks (``chrom_not_in_reference``); ``genome``: :class:`agval.genome.ReferenceGenome`."""
    keep, reasons = [], []
    for rid, c, p, r in frame.select("row_id", "chrom", "pos", "ref").iter_rows():
        try:
            ok = genome.ref_matches(c, int(p), r)
            reasons.append(None if ok else ("ref_mismatch", f"{c}:{p} REF {r} is not the reference's"))
        except InputError:
            ok = False
            reasons.append(("chrom_not_in_reference", f"{c} is not in the reference"))
        keep.append(ok)
    mask = pl.Series(keep, dtype=pl.Boolean)
    if drops is not None:
        for reason in ("ref_mismatch", "chrom_not_in_reference"):
            idx = [i for i, x in enumerate(reasons) if x is not None and x[0] == reason]
            if idx:
                drops.add_frame(frame[idx].select("row_id", "source_row").with_columns(
                    pl.Series("detail", [reasons[i][1] for i in idx])), stage="causality", reason=reason,
                    source_file=source_file)
    return frame.filter(mask)


def locus_ids(frame: pl.DataFrame, distance: int) -> pl.Series:
    """Single-linkage loci: on each chromosome, sorted by position, a new locus starts where
    the gap to the previous variant exceeds ``distance`` bp. Ids ``chr1:L1``... in row order."""
    order = frame.select("chrom", "pos").with_row_index("_i").sort("chrom", "pos")
    out = [""] * frame.height
    prev_c, prev_p, k = None, None, 0
    for i, c, p in order.iter_rows():
        if c != prev_c:
            k = 1
        elif p - prev_p > distance:
            k += 1
        out[i] = f"{c}:L{k}"
        prev_c, prev_p = c, p
    return pl.Series("locus_id", out, dtype=pl.Utf8)


def _chrom_number(c: str) -> int | None:
    m = re.fullmatch(r"(?:chr)?(\d+)", c, flags=re.IGNORECASE)
    return int(m.group(1)) if m else None


def split_masks(chroms: pl.Series, settings: CausalitySettings) -> dict[str, np.ndarray]:
    """Row masks of the requested splits: ``all``; ``odd`` / ``even`` numbered chromosomes
    (X, Y, M belong to neither); ``heldout`` = ``heldout_chromosomes`` (only when given)."""
    vals = chroms.to_list()
    num = [_chrom_number(c) for c in vals]
    held = {c if c.lower().startswith("chr") else f"chr{c}" for c in settings.heldout_chromosomes}
    masks = {"all": np.ones(len(vals), dtype=bool),
             "odd": np.array([n is not None and n % 2 == 1 for n in num], dtype=bool),
             "even": np.array([n is not None and n % 2 == 0 for n in num], dtype=bool),
             "heldout": np.array([c in held for c in vals], dtype=bool)}
    out = {}
    for s in settings.splits:
        if s == "heldout" and not held:
            continue
        out[s] = masks[s]
    return out


# ----------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------

def average_precision(score: np.ndarray, labels: np.ndarray, w: np.ndarray | None = None) -> float | np.ndarray:
    """Average precision of ``score`` for binary ``labels`` (1 = positive), optionally with
    row weights ``w`` (``(n,)`` or ``(B, n)``; integer weights = rows repeated, as the
    cluster bootstrap draws them).

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds in decreasing
    order (tied scores enter together), as ``sklearn.metrics.average_precision_score``.
    NaN when there is no positive weight. Returns a float for 1-D input, ``(B,)`` else.
    """
    s = np.asarray(score, dtype=np.float64)
    y = (np.asarray(labels, dtype=np.float64) > 0.5).astype(np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # last index of each group of tied scores
    ends = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.array([], dtype=np.int64)
    scalar = w is None or np.ndim(w) == 1
    W = np.ones((1, s.size)) if w is None else np.atleast_2d(np.asarray(w, dtype=np.float64))[:, order]
    tp = np.cumsum(W * y, axis=1)[:, ends]
    fp = np.cumsum(W * (1.0 - y), axis=1)[:, ends]
    total = tp[:, -1] if s.size else np.zeros(W.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 0.0)
        dtp = np.diff(np.concatenate([np.zeros((tp.shape[0], 1)), tp], axis=1), axis=1)
        ap = np.where(total > 0, (dtp * prec).sum(axis=1) / np.where(total > 0, total, 1.0), np.nan)
    return float(ap[0]) if scalar else ap


#: the causality statistic for :mod:`agval.stats.resampling` (x = |score|, y = label)
AVERAGE_PRECISION = Statistic("average_precision", average_precision, math.nan)


def _permuted_ap(score: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``(B,)`` average precision of ``score`` for ``labels[idx[b]]`` (``idx``: ``(B, n)``
    row permutations); ties handled as :func:`average_precision`."""
    s = np.asarray(score, dtype=np.float64)
    y = (np.asarray(labels, dtype=np.float64) > 0.5).astype(np.float64)
    order = np.argsort(-s, kind="mergesort")
    ends = np.r_[np.nonzero(np.diff(s[order]))[0], s.size - 1]
    Y = y[idx][:, order]
    tp = np.cumsum(Y, axis=1)[:, ends]
    prec = tp / (ends + 1.0)
    dtp = np.diff(np.concatenate([np.zeros((tp.shape[0], 1)), tp], axis=1), axis=1)
    return (dtp * prec).sum(axis=1) / y.sum()


def ap_null(score: np.ndarray, labels: np.ndarray, loci: np.ndarray, *, n_perm: int, seed: int) -> dict[str, float]:
    """The chance level of the average precision and a permutation P for it.

    ``random_auprc``: the mean AP over ``n_perm`` permutations of the scores among all rows -
    the expected AP of a random ranking, which at finite ``n`` lies **above** the positive
    rate (about 0.12 at 20 loci x 10 variants, 0.10 at 200, for prevalence 0.1), because
    AP is biased upward when there are few positives. ``auprc_perm_p``: one-sided P
    ``(1 + #{AP_perm >= AP}) / (n_perm + 1)`` with the scores permuted **within loci**
    (a model that only ranks loci, not variants inside them, gets no credit; loci with one
    variant never move). ``score``: ``(n,)`` (use ``|score|``), ``labels`` 0/1, ``loci`` ids.
    """
    if n_perm <= 0 or not 0 < int((np.asarray(labels) > 0.5).sum()) < np.size(score):
        return {"random_auprc": math.nan, "auprc_perm_p": math.nan}
    rng = np.random.default_rng(seed)
    n = np.size(score)
    groups = np.asarray(loci).astype(str)
    obs = average_precision(score, labels)
    total, hits, done = 0.0, 0, 0
    block = max(1, min(n_perm, 2_000_000 // max(n, 1)))      # bounded memory: ~16 MB per index block
    while done < n_perm:
        b = min(block, n_perm - done)
        total += float(_permuted_ap(score, labels, np.argsort(rng.random((b, n)), axis=1)).sum())
        perm = _permuted_ap(score, labels, within_group_permutation_indices(groups, n_perm=b, seed=rng))
        hits += int(np.sum(perm >= obs - 1e-12))
        done += b
    return {"random_auprc": total / n_perm, "auprc_perm_p": (1 + hits) / (n_perm + 1)}


def _boot(x: np.ndarray, y: np.ndarray, stat: Any, loci: np.ndarray, *, n_boot: int, seed: int,
          confidence: float) -> dict[str, Any]:
    return bootstrap_ci(x, y, stat, clusters=loci, n_boot=n_boot, seed=seed, confidence=confidence)


def _model_stats(score: np.ndarray, label: np.ndarray, effect: np.ndarray, loci: np.ndarray, *, n_boot: int,
                 seed: int, confidence: float, n_perm: int = 1000) -> dict[str, Any]:
    ok = np.isfinite(score)
    s, lab, eff, loc = score[ok], label[ok], effect[ok], loci[ok]
    n_pos = int((lab == 1).sum())
    out: dict[str, Any] = {"n_scored": int(ok.sum()), "n_positive": n_pos, "n_control": int((lab == 0).sum()),
                           "n_loci": int(np.unique(loc).size),
                           "positive_rate": n_pos / s.size if s.size else math.nan}
    out.update(ap_null(np.abs(s), lab, loc, n_perm=n_perm, seed=seed))
    if n_pos and n_pos < s.size:
        b = _boot(np.abs(s), lab.astype(np.float64), AVERAGE_PRECISION, loc, n_boot=n_boot, seed=seed,
                  confidence=confidence)
        out.update(auprc=b["estimate"], auprc_se=b["se"], auprc_ci_low=b["ci_low"], auprc_ci_high=b["ci_high"])
    else:
        out.update(auprc=math.nan, auprc_se=math.nan, auprc_ci_low=math.nan, auprc_ci_high=math.nan)
    pos = (lab == 1) & np.isfinite(eff)
    out["direction_n"] = int(pos.sum())
    if pos.sum() >= 3:
        b = _boot(s[pos], eff[pos], "pearson", loc[pos], n_boot=n_boot, seed=seed, confidence=confidence)
        out.update(direction_r=b["estimate"], direction_se=b["se"], direction_ci_low=b["ci_low"],
                   direction_ci_high=b["ci_high"], direction_n_loci=b["n_clusters"])
    else:
        out.update(direction_r=math.nan, direction_se=math.nan, direction_ci_low=math.nan,
                   direction_ci_high=math.nan, direction_n_loci=0)
    return out


def _difference(a: np.ndarray, b: np.ndarray, label: np.ndarray, effect: np.ndarray, loci: np.ndarray, *,
                n_boot: int, seed: int, confidence: float) -> dict[str, Any]:
    both = np.isfinite(a) & np.isfinite(b)
    out: dict[str, Any] = {"n_common": int(both.sum())}
    a, b, lab, eff, loc = a[both], b[both], label[both], effect[both], loci[both]
    if 0 < (lab == 1).sum() < lab.size:
        d = paired_bootstrap_difference(np.abs(a), np.abs(b), lab.astype(np.float64), AVERAGE_PRECISION,
                                        clusters=loc, n_boot=n_boot, seed=seed, confidence=confidence)
        out.update(auprc_difference=d["difference"], auprc_difference_ci_low=d["ci_low"],
                   auprc_difference_ci_high=d["ci_high"], auprc_difference_p=d["p_two_sided"])
    pos = (lab == 1) & np.isfinite(eff)
    if pos.sum() >= 3:
        d = paired_bootstrap_difference(a[pos], b[pos], eff[pos], "pearson", clusters=loc[pos], n_boot=n_boot,
                                        seed=seed, confidence=confidence)
        out.update(direction_difference=d["difference"], direction_difference_ci_low=d["ci_low"],
                   direction_difference_ci_high=d["ci_high"], direction_difference_p=d["p_two_sided"])
    return out


def benchmark(frame: pl.DataFrame, models: list[str], settings: CausalitySettings, *, n_boot: int = 2000,
              seed: int = 0, confidence: float = 0.95, n_perm: int = 1000) -> dict[str, Any]:
    """Causality and direction statistics of every model (a score column of ``frame``) per
    split, with paired differences against the reference model.

    ``frame``: ``chrom, label, effect, locus_id`` and one Float64 column per model (null or
    NaN = not scored). Returns ``{"models", "reference_model", "splits": {split: {"n",
    "n_positive", "n_control", "positive_rate", "n_loci", "models": {model: {...}},
    "differences": {model: {...}}}}, "planted": {...}}`` (keys in ``docs/metrics-qtl.md``).
    """
    if not models:
        raise ValueError("no model to benchmark (no live model and no baseline column)")
    ref = settings.reference_model or models[0]
    if ref not in models:
        raise InputError(f"reference_model {ref!r} is not one of the models {models}")
    label = frame["label"].cast(pl.Float64).to_numpy()
    effect = frame["effect"].cast(pl.Float64).fill_null(math.nan).to_numpy()
    loci = frame["locus_id"].to_numpy()
    scores = {m: frame[m].cast(pl.Float64).fill_null(math.nan).to_numpy() for m in models}
    if settings.ensemble and len(models) >= 2:
        if ENSEMBLE in models:
            raise InputError(f"a model may not be called {ENSEMBLE!r} (the ensemble row's name)")
        scores[ENSEMBLE] = rank_mean_ensemble([scores[m] for m in models])
        models = [*models, ENSEMBLE]
    out: dict[str, Any] = {"models": list(models), "reference_model": ref, "n_boot": n_boot, "seed": seed,
                           "confidence": confidence, "splits": {}}
    for split, mask in split_masks(frame["chrom"], settings).items():
        lab = label[mask]
        entry: dict[str, Any] = {"n": int(mask.sum()), "n_positive": int((lab == 1).sum()),
                                 "n_control": int((lab == 0).sum()),
                                 "positive_rate": float(lab.mean()) if lab.size else math.nan,
                                 "n_loci": int(np.unique(loci[mask]).size), "models": {}, "differences": {}}
        for m in models:
            entry["models"][m] = _model_stats(scores[m][mask], lab, effect[mask], loci[mask], n_boot=n_boot,
                                              seed=seed, confidence=confidence, n_perm=n_perm)
        for m in models:
            if m == ref:
                continue
            entry["differences"][m] = {"reference": ref, **_difference(
                scores[m][mask], scores[ref][mask], lab, effect[mask], loci[mask], n_boot=n_boot, seed=seed,
                confidence=confidence)}
        out["splits"][split] = entry
    if settings.planted:
        out["planted"] = _planted(out, settings.planted, ref)
    return out


#: the name of the rank-mean ensemble row
ENSEMBLE = "ensemble"


def rank_mean_ensemble(scores: list[np.ndarray]) -> np.ndarray:
    """The rank-mean ensemble of several models' signed scores, per row:
    ``mean_m sign(s_m) * rank(|s_m|) / n`` (average ranks over the rows every model scored;
    NaN elsewhere). ``|ensemble|`` is the mean magnitude rank when the models agree in sign,
    so it serves causality (``|.|``) and direction (signed) alike, on one scale for models
    whose scores are not comparable."""
    from scipy.stats import rankdata

    S = np.vstack([np.asarray(x, dtype=np.float64) for x in scores])
    ok = np.isfinite(S).all(axis=0)
    out = np.full(S.shape[1], np.nan)
    if ok.any():
        sub = S[:, ok]
        r = np.vstack([rankdata(np.abs(row)) / row.size for row in sub])
        out[ok] = (np.sign(sub) * r).mean(axis=0)
    return out


def _inside(v: float, lo: Any, hi: Any) -> bool | None:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return bool(lo <= v <= hi)


def _planted(res: dict[str, Any], planted: dict[str, dict[str, float]], ref: str) -> dict[str, Any]:
    """Planted values against the 'all' split's intervals (and planted differences against
    the paired-difference intervals when both models are planted)."""
    allsplit = res["splits"].get("all")
    out: dict[str, Any] = {}
    if allsplit is None:
        return out
    for m, vals in planted.items():
        st = allsplit["models"].get(m)
        if st is None:
            continue
        row: dict[str, Any] = {}
        for key, pre in (("auprc", "auprc"), ("direction_r", "direction")):
            if key in vals:
                row[key] = {"planted": vals[key], "recovered": st[key],
                            "in_ci": _inside(vals[key], st[f"{pre}_ci_low"], st[f"{pre}_ci_high"])}
        d = allsplit["differences"].get(m)
        if d is not None and ref in planted:
            for key, dk in (("auprc", "auprc_difference"), ("direction_r", "direction_difference")):
                if key in vals and key in planted[ref] and dk in d:
                    pv = vals[key] - planted[ref][key]
                    row[f"{key}_difference"] = {"planted": pv, "recovered": d[dk],
                                                "in_ci": _inside(pv, d[f"{dk}_ci_low"], d[f"{dk}_ci_high"])}
        out[m] = row
    return out


def results_table(res: dict[str, Any]) -> pl.DataFrame:
    """The leaderboard: one row per (split, model): auPRC with its SE and interval beside the
    random baseline (mean AP of permuted scores), its permutation P, direction r with its SE and interval, counts."""
    rows = []
    for split, e in res["splits"].items():
        for m, st in e["models"].items():
            rows.append({"split": split, "model": m, "auprc": st["auprc"], "auprc_se": st["auprc_se"],
                         "auprc_ci_low": st["auprc_ci_low"], "auprc_ci_high": st["auprc_ci_high"],
                         "random_auprc": st["random_auprc"], "auprc_perm_p": st["auprc_perm_p"],
                         "positive_rate": st["positive_rate"], "direction_r": st["direction_r"],
                         "direction_se": st["direction_se"], "direction_ci_low": st["direction_ci_low"],
                         "direction_ci_high": st["direction_ci_high"], "n_positive": st["n_positive"],
                         "n_control": st["n_control"], "n_loci": st["n_loci"], "direction_n": st["direction_n"]})
    schema = {"split": pl.Utf8, "model": pl.Utf8, **{k: pl.Float64 for k in (
        "auprc", "auprc_se", "auprc_ci_low", "auprc_ci_high", "random_auprc", "auprc_perm_p", "positive_rate",
        "direction_r", "direction_se",
        "direction_ci_low", "direction_ci_high")}, "n_positive": pl.Int64, "n_control": pl.Int64, "n_loci": pl.Int64,
        "direction_n": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def differences_table(res: dict[str, Any]) -> pl.DataFrame:
    """Paired differences (model - reference) per split: auPRC and direction r, intervals, P."""
    keys = ("auprc_difference", "auprc_difference_ci_low", "auprc_difference_ci_high", "auprc_difference_p",
            "direction_difference", "direction_difference_ci_low", "direction_difference_ci_high",
            "direction_difference_p")
    rows = [{"split": split, "model": m, "reference": d["reference"], "n_common": d["n_common"],
             **{k: d.get(k) for k in keys}}
            for split, e in res["splits"].items() for m, d in e["differences"].items()]
    schema = {"split": pl.Utf8, "model": pl.Utf8, "reference": pl.Utf8, "n_common": pl.Int64,
              **{k: pl.Float64 for k in keys}}
    return pl.DataFrame(rows, schema=schema)


# ----------------------------------------------------------------------------------
# The benchmark as a QTL study (benchmark = "causality"): used by flows.qtl and run_plain
# ----------------------------------------------------------------------------------

def published_set_id(study) -> str | None:
    """The registry set a causality study is compared with: its ``published`` field (no
    default: the registry holds no causality set it could default to). A set of another
    kind (a seed study's correlations) is a :class:`agval.errors.ConfigError`."""
    from agval.errors import ConfigError
    from agval.published import CAUSALITY_KIND, published_set, resolve_set_id

    set_id = resolve_set_id(study.published, CAUSALITY_KIND, None)
    if set_id is not None and published_set(set_id).kind != CAUSALITY_KIND:
        raise ConfigError(f"{study.name}: published set {set_id!r} is a {published_set(set_id).kind!r} set; a "
                          f"causality benchmark compares with sets of kind {CAUSALITY_KIND!r} only")
    return set_id


def published_for(study, res: dict[str, Any], *, simulated: bool) -> dict[str, Any] | None:
    """The run's ``metrics.json["published"]`` block (None when the study names no set)."""
    from agval.published import causality_observed, published_block

    return published_block(published_set_id(study), causality_observed(res), simulated=simulated)


def prepare(study, *, genome_path: str | None = None, drops: DropLog | None = None) -> tuple[pl.DataFrame, list[str]]:
    """Load ``study.table``, apply the significance gap, check REF against ``genome_path``
    (when given) and add ``locus_id``. Returns ``(frame, baseline_columns)``. A wrong
    ``published`` set fails here, before any scoring."""
    published_set_id(study)
    settings: CausalitySettings = study.causality
    frame, baselines = load_causality_table(study.table, baseline_columns=settings.baseline_columns,
                                            dataset=study.dataset or "causality")
    frame = apply_significance_gap(frame, settings, drops=drops, source_file=study.table)
    if genome_path:
        from agval.genome import ReferenceGenome

        g = ReferenceGenome(genome_path)
        try:
            frame = check_reference(frame, g, drops=drops, source_file=study.table)
        finally:
            g.close()
    if frame.height == 0 or frame["label"].sum() == 0 or (frame["label"] == 0).sum() == 0:
        from agval.errors import GuardError

        raise GuardError(f"{study.name}: after the significance gap and the REF check the table has "
                         f"{int(frame['label'].sum())} positives and {int((frame['label'] == 0).sum())} controls; "
                         "the benchmark needs both")
    return frame.with_columns(locus_ids(frame, settings.locus_distance)), baselines


def live_analysis(study):
    """The track selection of the live model: the study's output types (default ATAC, DNASE)
    on its biosample (or GTEx tissue), raw scores pooled by their mean per variant."""
    from agval.qtl.modality import plan_analyses

    s = study.model_copy(update={"modes": ["corrected"], "sensitivity_biosamples": [], "predictions": None})
    return next(a for a in plan_analyses(s) if a.name == "corrected")


def attach_live_scores(frame: pl.DataFrame, scores: pl.DataFrame, study) -> pl.DataFrame:
    """``frame`` + a Float64 column ``study.causality.model_name``: the variant's pooled raw
    score over the live analysis' tracks (null when it was not scored)."""
    from agval.qtl.analysis import select_tracks

    a = live_analysis(study)
    _, pooled = select_tracks(scores, frame, a)
    name = study.causality.model_name
    return frame.join(pooled.select(pl.col("row_id").cast(pl.Utf8), pl.col("raw_score").cast(pl.Float64).alias(name)),
                      on="row_id", how="left", validate="1:1")


def models_of(study, baselines: list[str]) -> list[str]:
    """Model names in result order: the live model first (when scored), then the baselines."""
    live = [study.causality.model_name] if study.causality.live_model else []
    return live + [b for b in baselines if b not in live]


def build_metrics(study, res: dict[str, Any], *, counts: dict[str, Any], simulated: bool,
                  scoring: dict[str, Any] | None = None) -> dict[str, Any]:
    """``metrics.json`` of a causality run (``docs/metrics-qtl.md``, causality section)."""
    ref = res["reference_model"]
    allsplit = res["splits"].get("all") or next(iter(res["splits"].values()))
    head = allsplit["models"][ref]
    headline = {"benchmark": "causality", "model": ref, "split": "all" if "all" in res["splits"] else None,
                "auprc": head["auprc"], "auprc_se": head["auprc_se"], "auprc_ci_low": head["auprc_ci_low"],
                "auprc_ci_high": head["auprc_ci_high"], "random_auprc": head["random_auprc"],
                "auprc_perm_p": head["auprc_perm_p"],
                "direction_r": head["direction_r"], "direction_se": head["direction_se"],
                "n_positive": head["n_positive"], "n_control": head["n_control"], "n_loci": head["n_loci"]}
    m: dict[str, Any] = {"study": study.name, "kind": study.kind, "benchmark": "causality", "format": study.format,
                         "seed": study.seed, "n_boot": study.n_boot, "confidence": study.confidence,
                         "simulated": simulated, "settings": study.causality.model_dump(mode="json"),
                         "headline": headline, "counts": counts, "causality": res}
    if study.causality.live_model:
        m["live_analysis"] = live_analysis(study).to_dict()
    if scoring:
        m["scoring"] = scoring
    pub = published_for(study, res, simulated=simulated)
    if pub is not None:
        m["published"] = pub
    return m


def report_parts(study, res: dict[str, Any], *, counts: dict[str, Any],
                 simulated: bool) -> tuple[list[tuple[str, str]], list[str], dict[str, pl.DataFrame]]:
    """``(sections, warnings, tables)`` of a causality run's report."""
    s = study.causality
    f = lambda v: "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"  # noqa: E731
    ref = res["reference_model"]
    summary = [f"{study.name}: {counts.get('input_rows')} variants in the table, {counts.get('analysed_rows')} "
               f"after the significance gap and the REF check ({counts.get('positives')} causal, "
               f"{counts.get('controls')} controls, {counts.get('loci')} loci)."]
    for split, e in res["splits"].items():
        parts = []
        for m, st in e["models"].items():
            parts.append(f"{m}: auPRC {f(st['auprc'])} (SE {f(st['auprc_se'])}; random {f(st['random_auprc'])}, "
                         f"within-locus permutation P {f(st['auprc_perm_p'])}), "
                         f"direction r {f(st['direction_r'])} (SE {f(st['direction_se'])})")
        summary.append(f"Split {split} ({e['n_positive']} causal / {e['n_control']} controls, {e['n_loci']} loci): "
                       + "; ".join(parts) + ".")
    if res.get("planted"):
        for m, row in res["planted"].items():
            txt = ", ".join(f"{k} planted {f(v['planted'])} recovered {f(v['recovered'])} (inside the interval: "
                            f"{v['in_ci']})" for k, v in row.items())
            summary.append(f"SIMULATED study, {m}: {txt}.")
    methods = [
        "Causality: average precision (auPRC) of |score| for causal (1) vs control (0), identical to "
        "sklearn's average_precision_score; the random baseline beside it is the mean AP of the scores "
        "permuted among the rows (above the positive rate at finite n: AP is biased upward when positives "
        "are few), and its P permutes the scores within loci (one-sided). Direction: "
        "Pearson r of the signed score with the positives' effect (oriented to the ALT allele).",
        f"Controls: kept when -log10 P < {s.control_max_log10p}; controls with -log10 P in "
        f"[{s.control_max_log10p}, {s.gap_max_log10p}) are dropped (significance gap), at or above "
        f"{s.gap_max_log10p} too (dropped.parquet).",
        f"Uncertainty: {study.n_boot} locus-level cluster bootstrap replicates (seed {study.seed}); loci are "
        f"variants closer than {s.locus_distance} bp on a chromosome (single linkage). SE = replicate SD; "
        f"intervals are {study.confidence:.0%} percentile intervals. Paired differences against {ref} draw the "
        "same loci for both models.",
        "Splits: all; odd / even numbered chromosomes (X, Y in neither)"
        + (f"; heldout = {', '.join(s.heldout_chromosomes)}" if s.heldout_chromosomes else "") + "."]
    if s.live_model:
        methods.append(f"Live model {s.model_name}: {live_analysis(study).description}.")
    sections = [("Summary", "\n\n".join(summary)), ("Methods", "\n\n".join(methods))]
    warnings = []
    if simulated:
        warnings.append("SIMULATED data: the causal variants, controls and effects were planted in a synthetic "
                        "world; the numbers say nothing about the real model.")
    tables = {"Causality and direction per split and model": results_table(res)}
    d = differences_table(res)
    if d.height:
        tables[f"Paired differences against {ref}"] = d
    pub = published_for(study, res, simulated=simulated)
    if pub is not None:
        from agval.published import published_table, published_title

        tables[published_title(pub)] = published_table(pub)
        summary_pub = (f"Published reference ({pub['title']}): {pub['n_reproduced']} of {pub['n_compared']} "
                       "statistics reproduced within their tolerance")
        sections[0] = (sections[0][0], sections[0][1] + "\n\n" + summary_pub
                       + (f" ({pub['label']})." if pub["label"] else "."))
    return sections, warnings, tables


def run_plain(study, *, backend=None, drops: DropLog | None = None, cache: Any = None, genome_path: str | None = None,
              simulated: bool = False) -> dict[str, Any]:
    """The causality benchmark with plain functions (no Prefect): prepare, score with
    ``backend`` (when the live model is on), benchmark. Returns ``{"frame", "result",
    "metrics", "sections", "warnings", "tables"}``."""
    drops = drops if drops is not None else DropLog()
    frame, baselines = prepare(study, genome_path=genome_path, drops=drops)
    n_input = load_causality_table(study.table, baseline_columns=baselines)[0].height
    scoring = None
    if study.causality.live_model:
        from agval.qtl.modality import scorers_for
        from agval.scoring import score

        if backend is None:
            raise ValueError("the live model needs a backend (or set causality.live_model = false)")
        run = score(frame.select("row_id", "chrom", "pos", "ref", "alt"), scorers_for([live_analysis(study)]),
                    backend=backend, cache=cache, interval_width=study.interval_width, progress=False)
        frame = attach_live_scores(frame, run.scores, study)
        scoring = {"scorers": run.scorers, "interval_width": run.interval_width, "summary": run.summary}
    models = models_of(study, baselines)
    res = benchmark(frame, models, study.causality, n_boot=study.n_boot, seed=study.seed,
                    confidence=study.confidence)
    counts = causality_counts(frame, n_input)
    metrics = build_metrics(study, res, counts=counts, simulated=simulated, scoring=scoring)
    sections, warnings, tables = report_parts(study, res, counts=counts, simulated=simulated)
    return {"frame": frame, "result": res, "metrics": metrics, "sections": sections, "warnings": warnings,
            "tables": tables}


def causality_counts(frame: pl.DataFrame, n_input: int) -> dict[str, int]:
    """Row counts of a causality run."""
    return {"input_rows": n_input, "analysed_rows": frame.height, "positives": int(frame["label"].sum()),
            "controls": int((frame["label"] == 0).sum()), "loci": int(frame["locus_id"].n_unique())}
