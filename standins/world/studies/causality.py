"""Demo QTL causality benchmark generated from the synthetic world's truth (SIMULATED; not product code).

:func:`generate` writes a causality dataset in the standardized layout
(``chrom, pos, ref, alt, label, effect, p``, baseline-model columns ``score_truth`` and
``score_noisy``, ``data_source``) and its study file ``causality-cd4.toml``
(``benchmark = "causality"``, live model = the stand-in's ATAC of CD4+ T cells).

**Planting.** Candidates are SNVs in the world's planted elements (T-cell and ubiquitous
programs first); ``d`` = the true ATAC effect on CL:0000624 (mean over its tracks, the
pooled score a perfect model gives) and ``u`` = the normal score of ``|d|``. Of ``n + n_gap``
candidates the ``n_gap`` with the largest ``|d|`` become **near-significant controls**
(label 0, ``-log10 p`` in [3, 5)): the significance gap must drop them (they would pull a
good model's auPRC down). The others are causal with probability ``Phi(a + b u)``
(positives: ``-log10 p`` = 6 + Exp(mean 3); controls: ``-log10 p`` ~ U(0, 3)). Positives'
effect (for ALT) = ``r d / sd(d | positive) + sqrt(1 - r^2) e``, so Pearson(d, effect)
over the positives is ``r`` in expectation; controls carry no effect.

Baseline columns: ``score_truth`` = ``d`` (a perfect model); ``score_noisy`` = ``d`` plus
normal noise of ``noise`` x sd(d) (a weaker model). The **planted values** written into
the study file are the expected auPRC and direction r of each baseline over the label and
effect draws given these scores (Monte Carlo, 4,000 draws): what the benchmark must
recover inside its intervals, and their difference what the paired difference must cover.

**Two-model study** (``two_model``, on by default): ``causality-two-model.toml`` runs the
same table with the live stand-in AlphaGenome (``alphagenome``, the reference model) and
one precomputed baseline carried in the dataset (``score_noisy``). The stand-in's pooled
score of every kept row is computed here in-process with the stand-in's own weights
(:func:`standin_scores`: default revision 0, ``ALL_FOLDS``), so its expected auPRC and
direction r are planted like the baselines', and the planted difference
``score_noisy - alphagenome`` is what the run's paired locus-bootstrap interval (and the
leaderboard's difference row) must cover. A stand-in started with another ``--revision``
has other weights: its planted values would not apply.

Every draw is seeded; the same world and seed give byte-identical files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
from scipy import special

from standins.world.studies.qtl import (CAQTL_BIOSAMPLE, _element_snvs, _pick, _toml_str, _track_rows,
                                        normal_scores)

__all__ = ["generate", "planted_values", "standin_scores"]

DATA_SOURCE = "agval-standin (SIMULATED)"

_TOML = """\
# SIMULATED demo study (agval standins.world.studies.causality, world seed {world_seed}, study seed {seed}).
# QTL causality and direction benchmark of CD4+ T cell caQTLs in the standardized layout: chrom, pos,
# ref, alt (hg38), label (1 causal, 0 matched control), effect (for ALT), p, baseline model columns.
# Planted: causal with probability Phi({a} + {b} u), u = normal score of |true ATAC effect|;
# {n_gap} near-significant controls (-log10 P in [3, 5)) sit among the strongest true effects and must be
# dropped by the significance gap. Effects of the positives: Pearson {r} with the true effect.
# Planted values (expected over the label and effect draws given the scores, Monte Carlo):
# score_truth auPRC {ap_truth:.4f}, direction r {r_truth:.4f}; score_noisy auPRC {ap_noisy:.4f},
# direction r {r_noisy:.4f}.

[study]
name = "causality-cd4-demo"
kind = "generic"
benchmark = "causality"
table = "causality/causality.csv"
reference_fasta = {fasta}
biosample = "{biosample}"
output_types = ["ATAC"]
n_boot = {n_boot}
seed = {seed}

[study.causality]
locus_distance = 50000
heldout_chromosomes = {heldout}
reference_model = "score_truth"
planted = {{ score_truth = {{ auprc = {ap_truth:.6f}, direction_r = {r_truth:.6f} }}, score_noisy = {{ auprc = {ap_noisy:.6f}, direction_r = {r_noisy:.6f} }} }}

[backend]
kind = "standin"
standin_world = {world}
"""


_TWO_MODEL_TOML = """\
# SIMULATED demo study (agval standins.world.studies.causality, world seed {world_seed}, study seed {seed}).
# Two models on the causality table of causality-cd4.toml: the live stand-in AlphaGenome (reference)
# and a precomputed baseline carried in the dataset (score_noisy = true effect + {noise} sd of noise).
# Planted (expected over the label and effect draws given each model's scores; the stand-in's scores
# computed in-process with its default weights, revision 0, ALL_FOLDS): alphagenome auPRC {ap_live:.4f},
# direction r {r_live:.4f}; score_noisy auPRC {ap_noisy:.4f}, direction r {r_noisy:.4f}.
# Planted paired difference score_noisy - alphagenome: auPRC {d_ap:+.4f}, direction r {d_r:+.4f}.

[study]
name = "causality-two-model-demo"
kind = "generic"
benchmark = "causality"
table = "causality/causality.csv"
reference_fasta = {fasta}
biosample = "{biosample}"
output_types = ["ATAC"]
n_boot = {n_boot}
seed = {seed}

[study.causality]
locus_distance = 50000
heldout_chromosomes = {heldout}
model_name = "alphagenome"
baseline_columns = ["score_noisy"]
reference_model = "alphagenome"
ensemble = false
planted = {{ alphagenome = {{ auprc = {ap_live:.6f}, direction_r = {r_live:.6f} }}, score_noisy = {{ auprc = {ap_noisy:.6f}, direction_r = {r_noisy:.6f} }} }}

[backend]
kind = "standin"
standin_world = {world}
"""


def standin_scores(world, rows: pl.DataFrame, tracks: pl.DataFrame, *, revision: int = 0) -> np.ndarray:
    """The stand-in AlphaGenome's pooled score of each row (``chrom, pos, ref, alt``): the
    mean over ``tracks`` of its centre-mask raw score, computed in-process with the weights
    the stand-in service uses for ``ALL_FOLDS`` at ``revision`` (its default config), i.e.
    the live model's score in a causality run. float64 ``[n_rows]``."""
    from agval.coords import Variant
    from standins.alphagenome.servicer import StandinConfig, _seed
    from standins.scoring_math import LocalScorer
    from standins.seqmodel import SequenceModel
    from standins.world.truth import TruthOracle

    cfg = StandinConfig()
    params = world.truth.perturbed(_seed("agval-standin", (world.meta or {}).get("seed", 0), "rev", revision),
                                   cfg.model_scale)
    oracle = TruthOracle(world)
    oracle.model = SequenceModel(params)
    oracle.scorer = LocalScorer(oracle.model, world.genome, world.genes, world.exons)
    out = np.empty(rows.height)
    for i, (c, p, ref, alt) in enumerate(rows.select("chrom", "pos", "ref", "alt").iter_rows()):
        out[i] = float(np.mean(oracle.variant_effect(Variant(c, int(p), ref, alt), tracks)))
    return out


def _ap_sorted(y: np.ndarray) -> np.ndarray:
    """Average precision of rows already sorted by decreasing (untied) score; ``y`` (B, n)."""
    cs = np.cumsum(y, axis=1)
    k = np.arange(1, y.shape[1] + 1)
    tot = cs[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (y * cs / k).sum(axis=1) / np.where(tot > 0, tot, 1), np.nan)


def _pearson_rows(x: np.ndarray, y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Pearson r of ``x`` (n,) with each row of ``y`` (B, n) over the rows' mask ``m`` (B, n)."""
    w = m.astype(np.float64)
    n = w.sum(axis=1)
    mx = (w * x).sum(axis=1) / n
    my = (w * y).sum(axis=1) / n
    dx = (x[None, :] - mx[:, None]) * w
    dy = (y - my[:, None]) * w
    return (dx * dy).sum(axis=1) / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))


def planted_values(d: np.ndarray, scores: dict[str, np.ndarray], prob: np.ndarray, r: float, *,
                   n_draws: int = 4000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Expected auPRC of ``|score|`` and direction Pearson over the positives, for each model,
    over label draws ``Bernoulli(prob)`` and effect draws ``r d / sd(d|pos) + sqrt(1-r^2) e``."""
    rng = np.random.default_rng([seed, 17])
    out: dict[str, dict[str, float]] = {m: {"auprc": 0.0, "direction_r": 0.0} for m in scores}
    done = 0
    block = 500
    while done < n_draws:
        b = min(block, n_draws - done)
        y = (rng.random((b, d.size)) < prob[None, :]).astype(np.float64)
        e = rng.standard_normal((b, d.size))
        pos = y > 0
        sd = np.array([d[p].std(ddof=1) if p.sum() > 1 else 1.0 for p in pos])
        eff = r * d[None, :] / sd[:, None] + math.sqrt(1 - r * r) * e
        for m, s in scores.items():
            order = np.argsort(-np.abs(s), kind="mergesort")
            out[m]["auprc"] += float(np.nansum(_ap_sorted(y[:, order])))
            out[m]["direction_r"] += float(np.nansum(_pearson_rows(s, eff, pos)))
        done += b
    return {m: {k: v / n_draws for k, v in vals.items()} for m, vals in out.items()}


def generate(world_dir: str | Path, out_dir: str | Path, *, seed: int = 0, n: int = 360, n_gap: int = 24,
             a: float = -0.7, b: float = 1.3, r: float = 0.5, noise: float = 1.5, n_boot: int = 1000,
             variant_seed: int | None = None, two_model: bool = True) -> list[Path]:
    """Write ``causality-cd4.toml`` and ``causality/causality.csv`` (+ ``planted.json``) into
    ``out_dir``; returns ``[toml, table, planted]`` (+ ``causality-two-model.toml`` last
    when ``two_model``)."""
    from standins.world import World
    from standins.world.truth import TruthOracle

    world_dir = Path(world_dir).resolve()
    out = Path(out_dir)
    (out / "causality").mkdir(parents=True, exist_ok=True)
    world = World.load(world_dir)
    try:
        oracle = TruthOracle(world)
        rng = np.random.default_rng([seed, 2017])
        pick_rng = np.random.default_rng([seed if variant_seed is None else variant_seed, 2017, 1])
        tracks = _track_rows(world, "ATAC", CAQTL_BIOSAMPLE)
        picked, eff = _pick(world, oracle, _element_snvs(world), tracks, n + n_gap, pick_rng,
                            lambda e: bool(np.all(np.isfinite(e))), priority=("T", "ubiquitous"))
        seed_world = world.seed
        live_all = standin_scores(world, picked, tracks) if two_model else None
    finally:
        world.close()
    d_all = eff.mean(axis=1)
    gap_idx = np.argsort(-np.abs(d_all), kind="mergesort")[:n_gap]
    keep = np.setdiff1d(np.arange(d_all.size), gap_idx)
    d = d_all[keep]
    u = normal_scores(np.abs(d))
    prob = special.ndtr(a + b * u)
    label = rng.random(d.size) < prob
    e = rng.standard_normal(d.size)
    sd_pos = float(d[label].std(ddof=1))
    effect = np.where(label, r * d / sd_pos + math.sqrt(1 - r * r) * e, np.nan)
    sd_all = float(d_all.std(ddof=1))
    noisy_all = d_all + noise * sd_all * rng.standard_normal(d_all.size)
    log10p = np.where(label, 6.0 + rng.exponential(3.0, d.size), 3.0 * rng.random(d.size))
    gap_log10p = 3.0 + 2.0 * rng.random(n_gap) * 0.999
    planted = planted_values(d, {"score_truth": d, "score_noisy": noisy_all[keep]}, prob, r, seed=seed)

    rows = []
    sel = picked.select("chrom", "pos", "ref", "alt").rows()
    for j, i in enumerate(keep):
        c, p, ref, alt = sel[int(i)]
        rows.append({"chrom": c, "pos": int(p), "ref": ref, "alt": alt, "label": int(label[j]),
                     "effect": None if not label[j] else float(effect[j]), "p": float(10 ** -log10p[j]),
                     "score_truth": float(d_all[i]), "score_noisy": float(noisy_all[i])})
    for j, i in enumerate(gap_idx):
        c, p, ref, alt = sel[int(i)]
        rows.append({"chrom": c, "pos": int(p), "ref": ref, "alt": alt, "label": 0, "effect": None,
                     "p": float(10 ** -gap_log10p[j]), "score_truth": float(d_all[i]),
                     "score_noisy": float(noisy_all[i])})
    order = rng.permutation(len(rows))
    table = pl.DataFrame([rows[int(k)] for k in order], schema={
        "chrom": pl.Utf8, "pos": pl.Int64, "ref": pl.Utf8, "alt": pl.Utf8, "label": pl.Int64, "effect": pl.Float64,
        "p": pl.Float64, "score_truth": pl.Float64, "score_noisy": pl.Float64}).with_columns(
        pl.lit(DATA_SOURCE).alias("data_source"))
    table_path = out / "causality" / "causality.csv"
    table.write_csv(table_path)
    chroms = sorted(set(table["chrom"]), key=lambda c: (len(c), c))
    heldout = chroms[-1:]
    planted_path = out / "causality" / "planted.json"
    planted_path.write_text(json.dumps({"planted": planted, "a": a, "b": b, "r": r, "noise": noise, "n": n,
                                        "n_gap": n_gap, "heldout": heldout}, indent=2, sort_keys=True))
    toml = out / "causality-cd4.toml"
    toml.write_text(_TOML.format(
        world_seed=seed_world, seed=seed, a=a, b=b, r=r, n_gap=n_gap, fasta=_toml_str(world_dir / "genome.fa"),
        biosample=CAQTL_BIOSAMPLE, n_boot=n_boot, heldout=json.dumps(heldout), world=_toml_str(world_dir),
        ap_truth=planted["score_truth"]["auprc"], r_truth=planted["score_truth"]["direction_r"],
        ap_noisy=planted["score_noisy"]["auprc"], r_noisy=planted["score_noisy"]["direction_r"]))
    files = [toml, table_path, planted_path]
    if two_model:
        two = planted_values(d, {"alphagenome": live_all[keep], "score_noisy": noisy_all[keep]}, prob, r, seed=seed)
        toml2 = out / "causality-two-model.toml"
        toml2.write_text(_TWO_MODEL_TOML.format(
            world_seed=seed_world, seed=seed, noise=noise, fasta=_toml_str(world_dir / "genome.fa"),
            biosample=CAQTL_BIOSAMPLE, n_boot=n_boot, heldout=json.dumps(heldout), world=_toml_str(world_dir),
            ap_live=two["alphagenome"]["auprc"], r_live=two["alphagenome"]["direction_r"],
            ap_noisy=two["score_noisy"]["auprc"], r_noisy=two["score_noisy"]["direction_r"],
            d_ap=two["score_noisy"]["auprc"] - two["alphagenome"]["auprc"],
            d_r=two["score_noisy"]["direction_r"] - two["alphagenome"]["direction_r"]))
        files.append(toml2)
    return files
