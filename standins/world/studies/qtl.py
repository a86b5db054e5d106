"""Demo QTL studies generated from the synthetic world's truth model (SIMULATED; not product code).

:func:`generate` writes two study inputs in the **real** file layouts, plus a TOML study
file for each (``agval run qtl FILE`` / ``agval demo``):

* ``caqtl-cd4/ATAC-QTLs.csv`` - a caQTL table of CD4+ T cells in the GSE86886 layout
  (Gate et al. 2018): ``SNP`` = ``chr12:9436083_rs61916194`` (the world's **hg19**
  position and the rsID), ``gene`` = the ATAC peak ``chr12:9435883-9437556`` (hg19),
  ``beta``, ``t-stat``, ``p-value``, ``FDR``. As in the real table the effect allele is
  not given and **every beta is positive** (only accessibility-increasing alleles were
  reported, pitfall P3);
* ``hqtl-lcl/Pelikan_et_al_hQTL_summary.csv`` - an hQTL table of LCLs (H3K27ac and
  H3K4me1) in the GSE116193 layout (Pelikan et al. 2018), with the footnote letters glued
  onto the headers (``Ref Allelec``, ``Alt Alleled``, ``H3K27ac p-valueb``) and ``.`` for
  "not significant for this mark";
* ``caqtl-cd4.toml``, ``hqtl-lcl.toml`` - study files ([study], [backend] kind = "standin",
  [lookup] source = "myvariant") that document the planted strength and the sign
  convention;
* ``caqtl-cd4/planted.parquet``, ``hqtl-lcl/planted.parquet`` - the truth behind every row
  (keyed by the loaders' ``row_id``), usable as a *perfect-model* predictions table for
  the flow's precomputed path.

**Planting.** Variants are SNVs inside the world's planted regulatory elements
(``elements.parquet``) whose true effect (:class:`standins.world.truth.TruthOracle`,
centre-mask DIFF_LOG2_SUM of the ALT allele) is not negligible, i.e. real QTLs. With
``x`` the true driver of a row, ``z(.)`` normal scores (``Phi^-1((rank - 1/2) / n)``) and
``e ~ N(0, 1)``::

    y = r * z(driver) + sqrt(1 - r^2) * e,      r = 2 sin(pi * rho / 6)

so that the population Spearman correlation between the driver and ``y`` is the planted
``rho`` (bivariate-normal identity ``rho_S = 6/pi * asin(r/2)``). For signed effects (hQTL)
``z`` is shifted so that a zero driver maps to zero (a positive effect tends to a positive
``y``; a shift leaves the Spearman correlation unchanged).

* caQTL: driver = ``|x|``, ``x`` = true ATAC effect on CL:0000624; ``beta = 0.42 *
  exp(0.4 * y)`` (> 0, a monotone map, so Spearman(|x|, beta) = rho). Planted statistic:
  the **magnitude** Spearman ``|score|`` vs ``|beta|``.
* hQTL: driver = mean true effect over the row's significant marks (H3K27ac / H3K4me1 on
  GM12878, EFO:0002784), signed, for the ALT allele; ``log2 (effect size) = -0.5 * y``
  for the file's REF/ALT as written: **positive = the REF allele carries more signal**
  (the convention the seed assumed post hoc, declared here a priori:
  ``effect_allele = "column:ref"``). Planted statistic: Spearman(score, beta oriented to
  ALT).

Every draw is seeded (``seed``); the same world and seed give byte-identical files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import special, stats

from agval.coords import Variant, complement

__all__ = ["generate", "generate_caqtl", "generate_hqtl", "normal_scores", "planted_r",
           "CAQTL_BIOSAMPLE", "HQTL_BIOSAMPLE", "HQTL_MARKS"]

CAQTL_BIOSAMPLE = "CL:0000624"   # CD4-positive, alpha-beta T cell
HQTL_BIOSAMPLE = "EFO:0002784"   # GM12878 (LCL)
HQTL_MARKS = ("H3K27ac", "H3K4me1")
MIN_ABS_EFFECT = 0.01            # |true log2 effect| below this is not a QTL
CAQTL_BETA_MU, CAQTL_BETA_S = math.log(0.42), 0.4
HQTL_BETA_SCALE = 0.5

_EFFECT_MEMO: dict[tuple, float] = {}   # (world root, variant key, track name) -> true effect


def planted_r(rho: float) -> float:
    """Pearson r of a bivariate normal whose Spearman correlation is ``rho``."""
    if not -1.0 <= rho <= 1.0:
        raise ValueError(f"planted Spearman rho must lie in [-1, 1], not {rho}")
    return 2.0 * math.sin(math.pi * rho / 6.0)


def normal_scores(values: np.ndarray) -> np.ndarray:
    """``Phi^-1((rank - 1/2) / n)`` with average ranks for ties."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return v
    return special.ndtri((stats.rankdata(v) - 0.5) / v.size)


def _plant(driver: np.ndarray, rho: float, rng: np.random.Generator, *, keep_sign: bool = False) -> np.ndarray:
    """``y = r (z(driver) - c) + sqrt(1 - r^2) e``. With ``keep_sign`` the constant ``c``
    moves the normal score of ``driver = 0`` to 0, so a positive driver tends to give a
    positive ``y`` (a shift: the Spearman correlation is unchanged)."""
    r = planted_r(rho)
    z = normal_scores(driver)
    if keep_sign and driver.size:
        frac_neg = float(np.clip(np.mean(driver < 0) + 0.5 * np.mean(driver == 0), 0.5 / driver.size,
                                 1 - 0.5 / driver.size))
        z = z - float(special.ndtri(frac_neg))
    return r * z + math.sqrt(max(0.0, 1.0 - r * r)) * rng.standard_normal(driver.size)


# ----------------------------------------------------------------------------- candidates

def _element_snvs(world) -> pl.DataFrame:
    """Bi-allelic, non-palindromic, hg38-placed SNVs inside planted elements (one row per
    variant, the first element it falls in), in genome order."""
    v = world.variants
    n_alt = v.group_by("rsid").len(name="_n_alt")
    v = (v.join(n_alt, on="rsid", how="left")
         .filter((pl.col("status") == "ok") & (pl.col("kind") == "snv") & (pl.col("_n_alt") == 1)))
    pair = pl.col("ref") + pl.col("alt")
    v = v.filter(~pair.is_in(["AT", "TA", "CG", "GC"]))  # palindromic: strand ambiguous
    el = world.elements.select("element_id", "chrom", pl.col("start").alias("el_start"),
                               pl.col("end").alias("el_end"), "kind", "program", "gene_id")
    j = (v.join(el, on="chrom", how="inner")
         .filter((pl.col("pos") >= pl.col("el_start")) & (pl.col("pos") <= pl.col("el_end")))
         .sort(["chrom", "pos", "element_id"])
         .unique("rsid", keep="first", maintain_order=True))
    return j.drop("_n_alt")


def _effects(oracle, world, rows: pl.DataFrame, tracks: pl.DataFrame) -> np.ndarray:
    """True effects ``[n_rows, n_tracks]`` (memoised per world, variant and track)."""
    root = str(Path(world.root).resolve())
    names = tracks["name"].to_list()
    out = np.empty((rows.height, len(names)))
    for i, r in enumerate(rows.select("chrom", "pos", "ref", "alt").iter_rows()):
        v = Variant(r[0], int(r[1]), r[2], r[3])
        keys = [(root, v.key, n) for n in names]
        if all(k in _EFFECT_MEMO for k in keys):
            out[i] = [_EFFECT_MEMO[k] for k in keys]
            continue
        vals = oracle.variant_effect(v, tracks)
        for k, x in zip(keys, vals):
            _EFFECT_MEMO[k] = float(x)
        out[i] = vals
    return out


def _pick(world, oracle, pool: pl.DataFrame, tracks: pl.DataFrame, n: int, rng: np.random.Generator,
          keep, priority: tuple[str, ...] = ()) -> tuple[pl.DataFrame, np.ndarray]:
    """Seeded random candidates (elements of the ``priority`` programs first, in random
    order, then the rest), scored lazily with the truth, until ``n`` satisfy ``keep``."""
    progs = pool["program"].to_list()
    rank = {p: i for i, p in enumerate(priority)}
    perm = rng.permutation(pool.height)
    order = sorted(perm.tolist(), key=lambda i: rank.get(progs[i], len(priority)))
    order = np.array(order, dtype=np.int64)
    chosen, effects = [], []
    step = max(8, n // 2)
    for start in range(0, pool.height, step):
        idx = order[start:start + step]
        batch = pool[idx.tolist()]
        eff = _effects(oracle, world, batch, tracks)
        for i in range(batch.height):
            if keep(eff[i]):
                chosen.append(int(idx[i]))
                effects.append(eff[i])
                if len(chosen) == n:
                    return pool[chosen], np.array(effects)
    raise ValueError(f"the world has only {len(chosen)} suitable QTL variants, {n} were asked for; "
                     "build a larger world or ask for fewer rows")


def _track_rows(world, output_type: str, curie: str, marks: tuple[str, ...] | None = None) -> pl.DataFrame:
    t = world.tracks.filter((pl.col("organism").str.to_lowercase().str.contains("homo|human"))
                            if "organism" in world.tracks.columns else pl.lit(True))
    t = t.filter((pl.col("output_type") == output_type) & (pl.col("ontology_curie") == curie))
    if marks is not None:
        t = t.filter(pl.col("histone_mark").is_in(list(marks)))
        t = t.sort(pl.col("histone_mark").replace_strict({m: i for i, m in enumerate(marks)}, default=99))
    if t.height == 0:
        raise ValueError(f"the world has no {output_type} track for {curie} {marks or ''}")
    return t


def _extras(world, rng: np.random.Generator, exclude: set[str]) -> dict[str, Any]:
    """Rows that exercise the drops: absent rsIDs, a no_hg38 rsID, a merged rsID, a
    multi-allelic rsID (all SNVs)."""
    v = world.variants
    n_alt = v.group_by("rsid").len(name="n_alt")
    v = v.join(n_alt, on="rsid", how="left").filter(~pl.col("rsid").is_in(list(exclude)))
    snv = v.filter(pl.col("kind") == "snv")
    multi = snv.filter((pl.col("n_alt") > 1) & (pl.col("status") == "ok"))
    multi_rsid = multi["rsid"].unique().sort().to_list()
    pick = lambda df: df.row(int(rng.integers(df.height)), named=True) if df.height else None  # noqa: E731
    return {
        "absent": list(world.absent_rsids[:]),
        "no_hg38": pick(snv.filter(pl.col("status") == "no_hg38")),
        "merged": pick(snv.filter((pl.col("status") == "merged") & (pl.col("n_alt") == 1))),
        "multi": (multi.filter(pl.col("rsid") == multi_rsid[int(rng.integers(len(multi_rsid)))])
                  if multi_rsid else None),
    }


def _fmt(x: float, digits: int = 6) -> str:
    return f"{x:.{digits}g}"


def _fmt_p(p: float) -> str:
    return f"{max(p, 1e-300):.3e}"


def _bh(p: np.ndarray) -> np.ndarray:
    n = p.size
    order = np.argsort(p)
    q = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def _write_csv(rows: list[dict[str, str]], columns: list[str], path: Path) -> None:
    """A comma-separated file with every value written as text (quoted when needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pl.DataFrame({c: [r[c] for r in rows] for c in columns}, schema={c: pl.Utf8 for c in columns})
    df.write_csv(path)


def _toml_str(s: str) -> str:
    return json.dumps(str(s))


# ----------------------------------------------------------------------------- caQTL

def generate_caqtl(world, oracle, out_dir: Path, *, n: int = 300, rho: float = 0.6, seed: int = 0,
                   variant_seed: int | None = None, n_duplicates: int = 4) -> dict[str, Any]:
    """The GSE86886-layout caQTL table; returns paths and the planting parameters.

    ``variant_seed`` (default ``seed``) draws the variants, ``seed`` everything else."""
    rng = np.random.default_rng([seed, 86886])
    pick_rng = np.random.default_rng([seed if variant_seed is None else variant_seed, 86886, 1])
    tracks = _track_rows(world, "ATAC", CAQTL_BIOSAMPLE)
    pool = _element_snvs(world)
    picked, eff = _pick(world, oracle, pool, tracks, n, pick_rng, lambda e: abs(e[0]) >= MIN_ABS_EFFECT,
                        priority=("T", "ubiquitous"))
    x = eff[:, 0]
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(picked.iter_rows(named=True)):
        shift = int(r["hg19_pos"]) - int(r["pos"])
        rows.append({"rsid": r["rsid"], "hg19_chrom": r["hg19_chrom"], "hg19_pos": int(r["hg19_pos"]),
                     "peak": (r["hg19_chrom"], int(r["el_start"]) - 200 + shift, int(r["el_end"]) + 200 + shift),
                     "x": float(x[i]), "kind": "qtl", "chrom": r["chrom"], "pos": int(r["pos"]),
                     "ref": r["ref"], "alt": r["alt"]})
    # duplicates: the same SNP is a QTL for a second, neighbouring peak (P9)
    for i in rng.choice(len(rows), size=min(n_duplicates, len(rows)), replace=False):
        d = dict(rows[int(i)])
        c, a, b = d["peak"]
        d["peak"] = (c, b + 1500, b + 1500 + (b - a))
        d["kind"] = "duplicate"
        rows.append(d)
    driver = np.array([abs(r["x"]) for r in rows])
    y = _plant(driver, rho, rng)
    beta = np.exp(CAQTL_BETA_MU + CAQTL_BETA_S * y)
    # rows the pipeline must drop: absent rsIDs (notfound), one no_hg38, one multi-allelic
    ex = _extras(world, rng, {r["rsid"] for r in rows})
    extra_rows = []
    for k, rs in enumerate(ex["absent"][:3]):
        extra_rows.append({"rsid": rs, "hg19_chrom": "chr1", "hg19_pos": 250_000 + 7919 * k, "kind": "notfound"})
    for key in ("no_hg38", "multi", "merged"):
        rec = ex[key]
        if rec is None:
            continue
        r0 = rec.row(0, named=True) if isinstance(rec, pl.DataFrame) else rec
        extra_rows.append({"rsid": r0["rsid"], "hg19_chrom": r0["hg19_chrom"], "hg19_pos": int(r0["hg19_pos"]),
                           "kind": key})
    for e in extra_rows:
        e["peak"] = (e["hg19_chrom"], e["hg19_pos"] - 400, e["hg19_pos"] + 600)
        e["x"] = float("nan")
    extra_beta = np.exp(CAQTL_BETA_MU + CAQTL_BETA_S * rng.standard_normal(len(extra_rows)))
    all_rows = rows + extra_rows
    all_beta = np.concatenate([beta, extra_beta])
    se = 0.06 + 0.05 * rng.random(len(all_rows))
    t = all_beta / se
    p = 2.0 * stats.t.sf(np.abs(t), df=100)
    fdr = _bh(p)
    order = rng.permutation(len(all_rows))
    table_rows, planted = [], []
    for out_i, k in enumerate(order, start=1):
        r = all_rows[int(k)]
        c, a, b = r["peak"]
        table_rows.append({"SNP": f"{r['hg19_chrom']}:{r['hg19_pos']}_{r['rsid']}", "gene": f"{c}:{a}-{b}",
                           "beta": _fmt(float(all_beta[k])), "t-stat": _fmt(float(t[k])),
                           "p-value": _fmt_p(float(p[k])), "FDR": _fmt_p(float(fdr[k]))})
        planted.append({"row_id": f"caQTL:{out_i}", "rsid": r["rsid"], "row_kind": r["kind"],
                        "true_effect": r["x"], "driver": abs(r["x"]) if math.isfinite(r["x"]) else None,
                        "beta": float(all_beta[k])})
    folder = out_dir / "caqtl-cd4"
    table = folder / "ATAC-QTLs.csv"
    _write_csv(table_rows, ["SNP", "gene", "beta", "t-stat", "p-value", "FDR"], table)
    planted_path = folder / "planted.parquet"
    pl.DataFrame(planted, schema={"row_id": pl.Utf8, "rsid": pl.Utf8, "row_kind": pl.Utf8,
                                  "true_effect": pl.Float64, "driver": pl.Float64, "beta": pl.Float64}
                 ).write_parquet(planted_path)
    return {"table": table, "planted": planted_path, "rho": rho, "n_qtl": len(rows),
            "n_extra": len(extra_rows), "r": planted_r(rho)}


# ----------------------------------------------------------------------------- hQTL

def generate_hqtl(world, oracle, out_dir: Path, *, n: int = 250, rho: float = 0.6, seed: int = 0,
                  variant_seed: int | None = None, n_flip: int = 4, n_swap: int = 3) -> dict[str, Any]:
    """The GSE116193-layout hQTL table; returns paths and the planting parameters.

    ``variant_seed`` (default ``seed``) draws the variants, ``seed`` everything else.
    ``n_swap`` rows have Ref/Alt swapped in the file; the planted value refers to the
    genome's ALT, which harmonization restores (a predictions table keyed to the file's
    ALT sees those rows flipped)."""
    rng = np.random.default_rng([seed, 116193])
    pick_rng = np.random.default_rng([seed if variant_seed is None else variant_seed, 116193, 1])
    tracks = _track_rows(world, "CHIP_HISTONE", HQTL_BIOSAMPLE, HQTL_MARKS)
    pool = _element_snvs(world)
    # LCL programmes first: B-cell and ubiquitous elements carry most GM12878 histone QTLs
    picked, eff = _pick(world, oracle, pool, tracks, n, pick_rng,
                        lambda e: bool(np.max(np.abs(e)) >= MIN_ABS_EFFECT),
                        priority=("B", "ubiquitous", "epithelial", "myeloid"))
    # significant marks per SNP (the published split: 56 % both, 37 % H3K27ac, 7 % H3K4me1)
    u = rng.random(picked.height)
    sig = np.where(u < 0.56, 3, np.where(u < 0.93, 1, 2))  # bit 1 = H3K27ac, bit 2 = H3K4me1
    driver = np.array([np.mean([eff[i, j] for j in range(2) if sig[i] >> j & 1]) for i in range(picked.height)])
    y = _plant(driver, rho, rng, keep_sign=True)
    rows: list[dict[str, Any]] = []
    flip_idx = set(rng.choice(picked.height, size=min(n_flip, picked.height), replace=False).tolist())
    rest = [i for i in range(picked.height) if i not in flip_idx]
    swap_idx = set(rng.choice(rest, size=min(n_swap, len(rest)), replace=False).tolist())
    for i, r in enumerate(picked.iter_rows(named=True)):
        ref, alt, sign, how = r["ref"], r["alt"], 1.0, "as_genome"
        if i in flip_idx:                      # alleles written on the other strand
            ref, alt, how = complement(ref), complement(alt), "strand_flip"
        elif i in swap_idx:                    # the file's Ref is the genome's ALT
            ref, alt, sign, how = alt, ref, -1.0, "ref_alt_swapped"
        rows.append({"rsid": r["rsid"], "chrom": r["hg19_chrom"], "pos": int(r["hg19_pos"]), "ref": ref,
                     "alt": alt, "sig": int(sig[i]), "beta": -HQTL_BETA_SCALE * float(y[i]) * sign,
                     "driver_file_alt": float(driver[i]) * sign, "kind": how,
                     "true": {m: float(eff[i, j]) * sign for j, m in enumerate(HQTL_MARKS)}})
    # one SNP listed twice (a second row for the same SNP, as a separate QTL call)
    d = dict(rows[int(rng.integers(len(rows)))])
    d["kind"] = "duplicate"
    rows.append(d)
    # rows the pipeline must drop or resolve
    ex = _extras(world, rng, {r["rsid"] for r in rows})
    extra = []
    for k, rs in enumerate(ex["absent"][3:6]):
        extra.append({"rsid": rs, "chrom": "chr2", "pos": 310_000 + 6151 * k, "ref": "C", "alt": "T",
                      "kind": "notfound"})
    if ex["no_hg38"] is not None:
        r0 = ex["no_hg38"]
        extra.append({"rsid": r0["rsid"], "chrom": r0["hg19_chrom"], "pos": int(r0["hg19_pos"]),
                      "ref": r0["ref"], "alt": r0["alt"], "kind": "no_hg38"})
    if ex["multi"] is not None:                 # multi-allelic: the file's ALT picks one record
        m0 = ex["multi"].row(0, named=True)
        v = Variant(m0["chrom"], int(m0["pos"]), m0["ref"], m0["alt"])
        e = oracle.variant_effect(v, tracks)
        extra.append({"rsid": m0["rsid"], "chrom": m0["hg19_chrom"], "pos": int(m0["hg19_pos"]), "ref": m0["ref"],
                      "alt": m0["alt"], "kind": "multiallelic", "sig": 1,
                      "true": {mk: float(e[j]) for j, mk in enumerate(HQTL_MARKS)}})
    pal = world.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv")
                                & (((pl.col("ref") == "A") & (pl.col("alt") == "T"))
                                   | ((pl.col("ref") == "C") & (pl.col("alt") == "G"))))
    if pal.height:
        p0 = pal.row(int(rng.integers(pal.height)), named=True)
        extra.append({"rsid": p0["rsid"], "chrom": p0["hg19_chrom"], "pos": int(p0["hg19_pos"]), "ref": p0["ref"],
                      "alt": p0["alt"], "kind": "palindromic"})
    nosig = rows[int(rng.integers(len(rows) - 1))]
    extra.append({**nosig, "kind": "no_significant_mark", "sig": 0})
    for e in extra:
        e.setdefault("sig", int(rng.choice([1, 3])))
        e.setdefault("true", {m: float("nan") for m in HQTL_MARKS})
        e.setdefault("driver_file_alt", float("nan"))
        e["beta"] = -HQTL_BETA_SCALE * float(rng.standard_normal()) if e["kind"] != "no_significant_mark" else e["beta"]
    all_rows = rows + extra
    order = rng.permutation(len(all_rows))
    table_rows, planted = [], []
    for out_i, k in enumerate(order, start=1):
        r = all_rows[int(k)]
        pv = {m: (_fmt_p(10 ** -rng.uniform(3, 14)) if r["sig"] >> j & 1 else ".") for j, m in enumerate(HQTL_MARKS)}
        table_rows.append({"epiQTL rsID": r["rsid"], "Chr": r["chrom"].removeprefix("chr"), "Bp (hg19)": str(r["pos"]),
                           "Ref Allelec": r["ref"], "Alt Alleled": r["alt"],
                           "log2 (effect size)": _fmt(r["beta"]),
                           "H3K27ac p-valueb": pv["H3K27ac"], "H3K4me1 p-valueb": pv["H3K4me1"]})
        for j, m in enumerate(HQTL_MARKS):
            if r["sig"] >> j & 1:
                planted.append({"row_id": f"hQTL:{out_i}:{m}", "rsid": r["rsid"], "mark": m, "row_kind": r["kind"],
                                "true_effect": r["true"][m], "driver": r["driver_file_alt"], "beta": r["beta"]})
    folder = out_dir / "hqtl-lcl"
    table = folder / "Pelikan_et_al_hQTL_summary.csv"
    _write_csv(table_rows, ["epiQTL rsID", "Chr", "Bp (hg19)", "Ref Allelec", "Alt Alleled", "log2 (effect size)",
                            "H3K27ac p-valueb", "H3K4me1 p-valueb"], table)
    planted_path = folder / "planted.parquet"
    pl.DataFrame(planted, schema={"row_id": pl.Utf8, "rsid": pl.Utf8, "mark": pl.Utf8, "row_kind": pl.Utf8,
                                  "true_effect": pl.Float64, "driver": pl.Float64, "beta": pl.Float64}
                 ).write_parquet(planted_path)
    return {"table": table, "planted": planted_path, "rho": rho, "n_qtl": len(rows), "n_extra": len(extra),
            "r": planted_r(rho)}


# ----------------------------------------------------------------------------- study files

_CAQTL_TOML = """\
# SIMULATED demo study (agval standins.world.studies.qtl, world seed {world_seed}, study seed {seed}).
# caQTL of CD4+ T cells in the layout of GSE86886 (Gate et al. 2018, ATAC-QTLs.csv): SNP =
# chr:pos_rsID on hg19, gene = the ATAC peak (hg19), beta. Positions are hg19: alleles and hg38
# positions come from the rsID lookup, never from the file.
#
# Planted strength: Spearman(|true ATAC effect on CL:0000624|, beta) = {rho} in the population
# (beta = 0.42 * exp(0.4 * y), y = r z(|x|) + sqrt(1 - r^2) e, r = {r:.4f}; {n_qtl} QTL rows incl.
# duplicated SNPs in two peaks, plus {n_extra} rows that must be dropped: absent rsIDs, an rsID
# without an hg38 placement, a multi-allelic rsID).
# Sign convention: as in the real table every beta is > 0 (the accessibility-increasing allele);
# the study does not say which allele that is, so effect_allele = "unknown" (pitfall P3):
# only the magnitude |score| vs beta is a valid test; direction claims are excluded.
# The true effects of every row are in caqtl-cd4/planted.parquet (row_id -> true_effect).

[study]
name = "caqtl-cd4-demo"
kind = "caqtl"
format = "gse86886"
table = "caqtl-cd4/ATAC-QTLs.csv"
reference_fasta = {fasta}
biosample = "CL:0000624"
effect_allele = "unknown"
modes = ["original", "corrected"]
n_boot = {n_boot}
seed = {seed}
# the simulated genome is compressed (a few Mb) and its variants carry no LD: the unit's LD
# window is off here (real studies keep the 250 kb default, docs/metrics-qtl.md)
unit_window = 0
planted_spearman = {rho}
planted_statistic = "magnitude_spearman_rho"

[backend]
kind = "standin"
standin_world = {world}

[lookup]
source = "myvariant"
"""

_HQTL_TOML = """\
# SIMULATED demo study (agval standins.world.studies.qtl, world seed {world_seed}, study seed {seed}).
# hQTL of lymphoblastoid cell lines (H3K27ac, H3K4me1) in the layout of GSE116193 (Pelikan et
# al. 2018): epiQTL rsID, Chr, Bp (hg19), Ref Allele<c>, Alt Allele<d>, log2 (effect size),
# per-mark p-values ('.' = not significant for that mark).
#
# Sign convention, declared a priori: log2 (effect size) > 0 means the file's REF allele
# carries more signal (ALT lowers the mark), so the effect allele is the 'Ref Allele' column:
# effect_allele = "column:ref", other allele "alt". The corrected mode orients beta to the
# scored ALT from this declaration; the original mode negates beta as the seed did.
#
# Planted strength: Spearman(true mean effect of the row's marks on GM12878 EFO:0002784 for the
# ALT allele, beta oriented to ALT) = {rho} in the population (y = r z(x) + sqrt(1 - r^2) e,
# r = {r:.4f}; log2 (effect size) = -0.5 y). {n_qtl} QTL SNPs (some written on the other strand,
# some with Ref/Alt swapped, one listed twice) plus {n_extra} rows that exercise drops: absent
# rsIDs, an rsID without an hg38 placement (its hg19 position is never used), a palindromic
# site, a row without a significant mark; a multi-allelic rsID is resolved by the file's ALT.
# The truth of every row is in hqtl-lcl/planted.parquet (row_id -> true_effect, driver).

[study]
name = "hqtl-lcl-demo"
kind = "hqtl"
format = "gse116193"
table = "hqtl-lcl/Pelikan_et_al_hQTL_summary.csv"
reference_fasta = {fasta}
biosample = "EFO:0002784"
original_biosample = "CL:0000236"
sensitivity_biosamples = ["CL:0000236"]
effect_allele = "column:ref"
other_allele = "alt"
modes = ["original", "corrected"]
n_boot = {n_boot}
seed = {seed}
# the simulated genome is compressed (a few Mb) and its variants carry no LD: the unit's LD
# window is off here (real studies keep the 250 kb default, docs/metrics-qtl.md)
unit_window = 0
planted_spearman = {rho}
planted_statistic = "spearman_rho"

[backend]
kind = "standin"
standin_world = {world}

[lookup]
source = "myvariant"
"""


def generate(world_dir: str | Path, out_dir: str | Path, *, seed: int = 0, n_caqtl: int = 300,
             n_hqtl: int = 250, caqtl_rho: float = 0.6, hqtl_rho: float = 0.6, n_boot: int = 1000,
             kinds: tuple[str, ...] = ("caqtl", "hqtl"), variant_seed: int | None = None,
             hqtl_swaps: int = 3) -> list[Path]:
    """Write the demo studies (``kinds``) and their TOML files into ``out_dir``.

    Returns the study files first (``caqtl-cd4.toml``, ``hqtl-lcl.toml``), then the tables,
    then the planted-truth tables. ``variant_seed`` (default ``seed``) draws the variants;
    ``seed`` the marks, noise and row order.
    """
    from standins.world import World
    from standins.world.truth import TruthOracle

    unknown = set(kinds) - {"caqtl", "hqtl"}
    if unknown:
        raise ValueError(f"unknown demo QTL kinds {sorted(unknown)}; use caqtl, hqtl")
    world_dir = Path(world_dir).resolve()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = World.load(world_dir)
    tomls, tables, planted = [], [], []
    try:
        oracle = TruthOracle(world)
        common = {"world_seed": world.seed, "seed": seed, "fasta": _toml_str(world_dir / "genome.fa"),
                  "world": _toml_str(world_dir), "n_boot": n_boot}
        if "caqtl" in kinds:
            ca = generate_caqtl(world, oracle, out, n=n_caqtl, rho=caqtl_rho, seed=seed, variant_seed=variant_seed)
            p = out / "caqtl-cd4.toml"
            p.write_text(_CAQTL_TOML.format(**common, rho=ca["rho"], r=ca["r"], n_qtl=ca["n_qtl"],
                                            n_extra=ca["n_extra"]))
            tomls.append(p)
            tables.append(ca["table"])
            planted.append(ca["planted"])
        if "hqtl" in kinds:
            hq = generate_hqtl(world, oracle, out, n=n_hqtl, rho=hqtl_rho, seed=seed, variant_seed=variant_seed,
                               n_swap=hqtl_swaps)
            p = out / "hqtl-lcl.toml"
            p.write_text(_HQTL_TOML.format(**common, rho=hq["rho"], r=hq["r"], n_qtl=hq["n_qtl"],
                                           n_extra=hq["n_extra"]))
            tomls.append(p)
            tables.append(hq["table"])
            planted.append(hq["planted"])
    finally:
        world.close()
    return [*tomls, *tables, *planted]
