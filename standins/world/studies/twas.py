"""Demo TWAS / fine-mapping study generated from the synthetic world's truth (SIMULATED; not product code).

:func:`generate` writes, in the **real** file layouts, an AF-like TWAS study over the ten
GTEx tissues of the stand-in catalogue, plus a TOML study file (``agval run twas FILE`` /
``agval demo``):

* ``gwas/af_gwas.tsv.gz`` - GWAS summary statistics, GWAS-SSF-like, tab-separated, gzip:
  ``chromosome, base_pair_location`` (hg38), ``effect_allele, other_allele, beta,
  standard_error, effect_allele_frequency, p_value, rsid, n``. The effect allele is the ALT
  or the REF at random; some non-palindromic sites are written on the other strand; a few
  rows exercise drops (alleles matching neither REF nor ALT, a missing effect, an rsID
  absent from dbSNP); thousands of background rows of other world variants;
* ``susie/<tissue>.<gene_id>.susie.tsv`` - SuSiE results per gene-tissue (``rsid, pip, cs,
  cs_size``; ``cs = -1`` = in no credible set; gene and tissue in the file name);
* ``fusion/<tissue>.dat`` - FUSION ``.dat`` TWAS output (all 19 FUSION columns) plus
  ``tissue`` and ``gene_id`` (ENSG without version), one file per tissue; one model
  failure (``NA``) per run;
* ``eqtl/<tissue>.v8.signif_variant_gene_pairs.txt.gz`` - GTEx v8 significant eQTL pairs
  (``variant_id`` ``chr_pos_ref_alt_b38``, ``slope`` of ALT = planted eQTL z / sqrt(500)),
  the marginal eQTL effects of Q1's primary estimand;
* ``models/twas_weights.tsv.gz``, ``models/ld.tsv.gz`` - the TWAS models' eQTL weights (ALT)
  and each locus's LD (ALT dosages), for Q1's leave-one-variant-out TWAS.Z;
* ``tissue_map.tsv`` - the override (long layout ``tissue, assay, ontology_curie``; an empty
  term = no tracks) adding the three tissues the spec's default map lacks
  (Adipose_Subcutaneous, Artery_Tibial, Lung) from the catalogue's terms; not TOML, so that
  ``*.toml`` in the study folder are study files only;
* ``planted.parquet`` - the truth of every (variant, gene, tissue) written: true effect,
  standardised effect, eQTL z, GWAS z for ALT, PIP, CS, acting tissue, gene effect;
* ``<name>.toml`` - the study file ([study], [backend] kind = "standin", [lookup] source =
  "vcf" (the world's ``dbsnp.vcf.gz``; the demo switches to the myvariant stand-in), and
  ``palindromic = "af"``: A/T and C/G sites resolved by the GWAS effect-allele frequency).

**The planted model** (all draws from ``numpy.random.default_rng([seed, 2])``). For each
chosen gene ``g`` and candidate cis variant ``v`` (SNVs within ``window`` bp of the TSS),
the true expression effect ``beta[v, t]`` is the truth model's gene-mask LFC of the ALT on
the strand-matched GTEx RNA_SEQ track of tissue ``t``
(:meth:`standins.world.truth.TruthOracle.gene_effect`); ``b = beta / max|beta|`` per gene.
Variants form LD blocks (neighbours within 2 kb, ``r`` in [0.85, 0.995], random phase),
correlation ``R``, Cholesky ``L``.

* eQTL z: ``ez[:, t] = R (E_g f_t b[:, t]) + L e_t`` (``E_g ~ U(10, 20)``, ``f_t ~ U(0.6, 1.2)``);
* mediation: each mediated gene acts on the trait through its expression in 1 tissue (35 %),
  2-4 tissues (45 %) or all (20 %), heart tissues favoured; ``gamma_g = ±1``, strength
  ``M_g ~ U(6, 12)``; trait effect ``a = gamma_g M_g m / max|m|`` with ``m = mean_{t acting}
  b[:, t]``; 15 % of the genes are not mediated (``a = 0``);
* GWAS z for ALT: ``z = R a + L e`` (``null=True``: ``a = 0`` except, for half the genes, one
  random variant with a trait effect that does **not** act through expression);
* TWAS.Z as FUSION computes it with weights ``w = ez[:, t]``: ``w'z / sqrt(w' R w)``; a
  gene-tissue is tested (written) when ``max |ez| > 3.5`` (heritable);
* SuSiE: up to three single-effect regressions on ``ez[:, t]`` with residualisation through
  ``R`` (prior variance 25 in z units; an effect whose largest residual |z| is below 3.5 is
  dropped, like an estimated prior variance of 0), PIP ``1 - prod(1 - alpha_l)``, 95 %
  credible sets with purity min |r| >= 0.5.

:func:`simulate_loci` / :func:`simulated_triplets` run the same model on given (or random)
effects without a world: cheap triplet tables for tests of the statistics.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl
from scipy import special

from agval.coords import Variant, complement, is_palindromic

__all__ = ["generate", "TISSUES", "HEART", "LocusSim", "simulate_loci", "random_effects", "simulated_triplets",
           "EXTRA_TISSUE_MAP"]

TISSUES: tuple[str, ...] = ("Heart_Atrial_Appendage", "Heart_Left_Ventricle", "Whole_Blood", "Esophagus_Mucosa",
                            "Skin_Sun_Exposed_Lower_leg", "Prostate", "Muscle_Skeletal", "Adipose_Subcutaneous",
                            "Artery_Tibial", "Lung")
HEART = ("Heart_Atrial_Appendage", "Heart_Left_Ventricle")
AF_LOCI = ("PITX2", "TBX5", "SCN5A", "SCN10A", "KCNN3")
GWAS_N = 1_030_836
EQTL_N = 500
PRIOR_W = 25.0
MIN_EFFECT_Z = 3.5

#: Terms of the three GTEx tissues the spec's default map lacks, from the stand-in catalogue.
EXTRA_TISSUE_MAP: dict[str, dict[str, list[str]]] = {
    "Adipose_Subcutaneous": {"RNA_SEQ": ["UBERON:0002190"], "DNASE": [], "ATAC": ["UBERON:0002190"], "CAGE": []},
    "Artery_Tibial": {"RNA_SEQ": ["UBERON:0007610"], "DNASE": ["UBERON:0007610"], "ATAC": ["UBERON:0007610"],
                      "CAGE": []},
    "Lung": {"RNA_SEQ": ["UBERON:0008952"], "DNASE": ["UBERON:0008952"], "ATAC": ["UBERON:0008952"], "CAGE": []},
}


# ----------------------------------------------------------------------------------- the model

@dataclass
class LocusSim:
    """One gene's simulated statistics (``p`` variants x ``T`` tissues)."""

    b: np.ndarray            # [p, T] standardised true expression effects of ALT
    R: np.ndarray            # [p, p] LD correlation
    ez: np.ndarray           # [p, T] eQTL z (ALT)
    z: np.ndarray            # [p]    GWAS z (ALT)
    tested: np.ndarray       # [T] bool, FUSION model exists (heritable)
    twas_z: np.ndarray       # [T]
    twas_p: np.ndarray       # [T]
    pip: np.ndarray          # [p, T]
    cs: np.ndarray           # [p, T] int, -1 = none, else 1-based effect index
    cs_size: np.ndarray      # [p, T] int, 0 when not in a set
    acting: np.ndarray       # [T] bool
    gamma: float
    strength: float
    eqtl_strength: np.ndarray = field(default_factory=lambda: np.zeros(0))


def ld_matrix(pos: np.ndarray, rng: np.random.Generator, *, max_gap: int = 2000, max_block: int = 6) -> np.ndarray:
    """Block LD: consecutive variants within ``max_gap`` bp share a block (at most
    ``max_block``); within a block ``R_ij = s_i s_j prod r`` along the chain (AR(1)-like,
    adjacent ``r ~ U(0.85, 0.995)``, random phase ``s``)."""
    p = pos.size
    order = np.argsort(pos, kind="stable")
    R = np.eye(p)
    blocks: list[list[int]] = []
    for k, i in enumerate(order.tolist()):
        if blocks and len(blocks[-1]) < max_block and pos[i] - pos[blocks[-1][-1]] <= max_gap and rng.random() < 0.7:
            blocks[-1].append(i)
        else:
            blocks.append([i])
    for blk in blocks:
        if len(blk) == 1:
            continue
        r = rng.uniform(0.85, 0.995, len(blk) - 1)
        s = rng.choice([-1.0, 1.0], len(blk))
        cum = np.concatenate([[0.0], np.cumsum(np.log(r))])
        for a in range(len(blk)):
            for c in range(a + 1, len(blk)):
                v = s[a] * s[c] * math.exp(cum[c] - cum[a])
                R[blk[a], blk[c]] = R[blk[c], blk[a]] = v
    return R


def _chol(R: np.ndarray) -> np.ndarray:
    return np.linalg.cholesky(R + 1e-9 * np.eye(R.shape[0]))


def susie_lite(z: np.ndarray, R: np.ndarray, *, L: int = 3, W: float = PRIOR_W,
               min_z: float = MIN_EFFECT_Z, coverage: float = 0.95, purity: float = 0.5
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pip, cs, cs_size)`` from marginal z and LD ``R`` (see the module docstring)."""
    p = z.size
    resid = z.astype(float).copy()
    alphas = []
    for _ in range(L):
        if np.max(np.abs(resid)) < min_z:
            break
        lbf = 0.5 * resid ** 2 * W / (1 + W)
        a = np.exp(lbf - lbf.max())
        a /= a.sum()
        mu = resid * W / (1 + W)
        resid = resid - R @ (a * mu)
        alphas.append(a)
    pip = 1 - np.prod([1 - a for a in alphas], axis=0) if alphas else np.zeros(p)
    cs = np.full(p, -1, dtype=np.int64)
    size = np.zeros(p, dtype=np.int64)
    for li, a in enumerate(alphas, start=1):
        order = np.argsort(-a, kind="stable")
        k = int(np.searchsorted(np.cumsum(a[order]), coverage) + 1)
        members = order[:min(k, p)]
        sub = np.abs(R[np.ix_(members, members)])
        if sub.min() < purity:
            continue
        free = members[cs[members] < 0]
        cs[free] = li
        size[free] = members.size
    return np.clip(pip, 0.0, 1.0), cs, size


def simulate_loci(effects: Sequence[np.ndarray], positions: Sequence[np.ndarray], rng: np.random.Generator, *,
                  tissues: Sequence[str] = TISSUES, null: bool = False, heart: Sequence[str] = HEART
                  ) -> list[LocusSim]:
    """Simulate every locus from its standardised effects ``b`` ([p, T], |b| <= 1) and
    variant positions (the planted model of the module docstring)."""
    T = len(tissues)
    heart_idx = [i for i, t in enumerate(tissues) if t in set(heart)]
    out = []
    for b, pos in zip(effects, positions):
        p = b.shape[0]
        R = ld_matrix(np.asarray(pos), rng)
        Lc = _chol(R)
        E = rng.uniform(10, 20) * rng.uniform(0.6, 1.2, T)
        ez = R @ (b * E) + Lc @ rng.normal(size=(p, T))
        # which tissues carry the trait effect
        u = rng.random()
        if u < 0.35:
            k = 1
        elif u < 0.8:
            k = int(rng.integers(2, 5))
        else:
            k = T
        if heart_idx and rng.random() < 0.5 and k < T:
            first = [int(rng.choice(heart_idx))]
            rest = [i for i in rng.permutation(T).tolist() if i != first[0]][:k - 1]
            act_idx = first + rest
        else:
            act_idx = rng.permutation(T)[:k].tolist()
        acting = np.zeros(T, dtype=bool)
        acting[act_idx] = True
        gamma = float(rng.choice([-1.0, 1.0]))
        strength = float(rng.uniform(6, 12))
        mediated = rng.random() >= 0.15
        a = np.zeros(p)
        if null:
            acting[:] = False
            if rng.random() < 0.5:
                a[int(rng.integers(p))] = gamma * strength
        elif mediated:
            m = b[:, acting].mean(axis=1)
            a = gamma * strength * m / max(float(np.abs(m).max()), 1e-12)
        else:
            acting[:] = False
        z = R @ a + Lc @ rng.normal(size=p)
        tested = np.abs(ez).max(axis=0) > MIN_EFFECT_Z
        twas_z = np.full(T, np.nan)
        for t in range(T):
            w = ez[:, t]
            den = float(w @ R @ w)
            if tested[t] and den > 0:
                twas_z[t] = float(w @ z) / math.sqrt(den)
        twas_p = 2 * special.ndtr(-np.abs(twas_z))
        pip = np.zeros((p, T))
        cs = np.full((p, T), -1, dtype=np.int64)
        size = np.zeros((p, T), dtype=np.int64)
        for t in range(T):
            pip[:, t], cs[:, t], size[:, t] = susie_lite(ez[:, t], R)
        out.append(LocusSim(b=b, R=R, ez=ez, z=z, tested=tested, twas_z=twas_z, twas_p=twas_p, pip=pip, cs=cs,
                            cs_size=size, acting=acting, gamma=gamma, strength=strength, eqtl_strength=E))
    return out


def random_effects(rng: np.random.Generator, n_genes: int, n_variants: int, n_tissues: int = len(TISSUES),
                   n_causal: int = 2, tissue_sd: float = 0.3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """World-free standardised effects: per gene ``n_causal`` causal variants with effects
    shared across tissues (tissue-specific deviations of sd ``tissue_sd``), small effects
    elsewhere; and positions 300-3000 bp apart. ``(effects, positions)``."""
    effects, positions = [], []
    for _ in range(n_genes):
        b = rng.normal(0, 0.03, (n_variants, n_tissues))
        k = rng.choice(n_variants, size=min(n_causal, n_variants), replace=False)
        base = rng.choice([-1.0, 1.0], k.size) * rng.uniform(0.5, 1.0, k.size)
        b[k] = base[:, None] * (1 + rng.normal(0, tissue_sd, (k.size, n_tissues)))
        b /= np.abs(b).max()
        effects.append(b)
        positions.append(np.cumsum(rng.integers(300, 3000, n_variants)))
    return effects, positions


def simulated_triplets(seed: int, *, null: bool = False, n_genes: int = 30, n_variants: int = 12,
                       predictor: str = "truth", noise: float = 0.2, pip_threshold: float = 0.01,
                       tissues: Sequence[str] = TISSUES) -> pl.DataFrame:
    """A long triplet table (assay ``RNA``) from :func:`simulate_loci` on
    :func:`random_effects`, without a world, for tests of the statistics.

    ``predictor``: ``"truth"`` - score = ``b + noise * N(0, 1)`` (a model that knows the
    expression effects); ``"null"`` - score drawn independently of the variants (a model
    with no variant-level information). Triplets: every tested gene-tissue (no TWAS
    threshold; the table carries ``twas_p``), retained SuSiE variants (``cs >= 0`` or
    ``pip > pip_threshold``).
    """
    rng = np.random.default_rng([seed, 2, 1])
    effects, positions = random_effects(rng, n_genes, n_variants, len(tissues))
    loci = simulate_loci(effects, positions, rng, tissues=tissues, null=null)
    rows: dict[str, list] = {k: [] for k in ("variant_key", "gene_id", "tissue", "pip", "cs", "z_alt", "twas_z",
                                             "twas_p", "score", "b")}
    for gi, loc in enumerate(loci):
        p = loc.b.shape[0]
        for t, tissue in enumerate(tissues):
            if not loc.tested[t]:
                continue
            keep = (loc.cs[:, t] >= 0) | (loc.pip[:, t] > pip_threshold)
            for v in np.flatnonzero(keep):
                if predictor == "truth":
                    s = loc.b[v, t] + noise * rng.normal()
                elif predictor == "null":
                    s = rng.normal()
                else:
                    raise ValueError(f"predictor must be 'truth' or 'null', not {predictor!r}")
                rows["variant_key"].append(f"chr1:{1000 * (gi + 1) + v}:A>G")
                rows["gene_id"].append(f"ENSG{gi:011d}")
                rows["tissue"].append(tissue)
                rows["pip"].append(float(loc.pip[v, t]))
                rows["cs"].append(int(loc.cs[v, t]))
                rows["z_alt"].append(float(loc.z[v]))
                rows["twas_z"].append(float(loc.twas_z[t]))
                rows["twas_p"].append(float(loc.twas_p[t]))
                rows["score"].append(float(s))
                rows["b"].append(float(loc.b[v, t]))
        del p
    return pl.DataFrame(rows, schema={"variant_key": pl.Utf8, "gene_id": pl.Utf8, "tissue": pl.Utf8,
                                      "pip": pl.Float64, "cs": pl.Int64, "z_alt": pl.Float64,
                                      "twas_z": pl.Float64, "twas_p": pl.Float64, "score": pl.Float64,
                                      "b": pl.Float64}).with_columns(pl.lit("RNA").alias("assay"))


# ----------------------------------------------------------------------------------- the world

def _gtex_tracks(world, strand: str) -> pl.DataFrame:
    """The GTEx RNA_SEQ tracks of :data:`TISSUES` on ``strand``, in tissue order."""
    tr = world.track_rows(output_type="RNA_SEQ").filter(pl.col("gtex_tissue").is_not_null()
                                                         & (pl.col("strand") == strand))
    parts = [tr.filter(pl.col("gtex_tissue") == t).head(1) for t in TISSUES]
    out = pl.concat(parts)
    if out.height != len(TISSUES):
        missing = sorted(set(TISSUES) - set(out["gtex_tissue"].to_list()))
        raise ValueError(f"the world's catalogue lacks GTEx RNA_SEQ tracks for {missing}")
    return out


def _candidates(world, gene: dict, window: int, used: set[str]) -> pl.DataFrame:
    v = world.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv")
                              & (pl.col("chrom") == gene["chrom"])
                              & pl.col("pos").is_between(gene["tss"] - window, gene["tss"] + window))
    v = v.filter(~pl.col("rsid").is_in(list(used))).unique("rsid", keep="first", maintain_order=True)
    return v.sort("pos")


def _choose_loci(world, oracle, rng, *, n_genes: int, n_variants: int, window: int) -> list[dict[str, Any]]:
    genes = world.genes.filter(pl.col("gene_type") == "protein_coding")
    names = genes["gene_name"].to_list()
    first = [g for g in AF_LOCI if g in names]
    others = [names[i] for i in rng.permutation(len(names)).tolist() if names[i] not in first]
    used: set[str] = set()
    loci: list[dict[str, Any]] = []
    for name in first + others:
        if len(loci) >= n_genes:
            break
        g = genes.filter(pl.col("gene_name") == name).row(0, named=True)
        cand = _candidates(world, g, window, used)
        if cand.height < max(4, n_variants // 2):
            continue
        # a pool 1.5 times the size, preferring variants inside the gene's planted elements
        els = world.elements.filter(pl.col("gene_id") == g["gene_id"]) if world.elements is not None else None
        in_el = np.zeros(cand.height, dtype=bool)
        if els is not None and els.height:
            pos = cand["pos"].to_numpy()
            for s, e in els.select("start", "end").iter_rows():
                in_el |= (pos >= s - 50) & (pos <= e + 50)
        order = np.concatenate([rng.permutation(np.flatnonzero(in_el)), rng.permutation(np.flatnonzero(~in_el))])
        pool = cand[order[:min(cand.height, (3 * n_variants) // 2)].tolist()]
        tracks = _gtex_tracks(world, g["strand"])
        beta = np.array([oracle.gene_effect(Variant(r["chrom"], int(r["pos"]), r["ref"], r["alt"]), g["gene_id"],
                                            tracks) for r in pool.iter_rows(named=True)], dtype=float)
        beta = np.nan_to_num(beta)
        mag = np.abs(beta).max(axis=1)
        if mag.max() <= 0:
            continue
        top = np.argsort(-mag, kind="stable")[: max(2, n_variants // 3)]
        rest = [i for i in rng.permutation(pool.height).tolist() if i not in set(top.tolist())]
        pick = np.sort(np.concatenate([top, rest[: n_variants - top.size]]).astype(int))
        sel = pool[pick.tolist()]
        used.update(sel["rsid"].to_list())
        loci.append({"gene": g, "variants": sel, "beta": beta[pick]})
    if not loci:
        raise ValueError("no gene of the world has variants with an expression effect near its TSS")
    return loci


def _toml_str(s: str | Path) -> str:
    return json.dumps(str(s))


def _fmt(x: float) -> str:
    return "NA" if x is None or not math.isfinite(x) else f"{x:.6g}"


def _write_gwas(path: Path, loci: list[dict], sims: list[LocusSim], world, rng, *, n_background: int,
                absent_rsid: str | None) -> dict[str, Any]:
    """The GWAS-SSF-like file; returns what it planted (drop cases)."""
    header = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta", "standard_error",
              "effect_allele_frequency", "p_value", "rsid", "n"]
    rows: list[list[str]] = []
    cases = {"allele_mismatch": [], "flipped": [], "effect_is_ref": 0, "missing_effect": [], "absent": []}

    def add(rsid, chrom, pos, ref, alt, af, z, *, mode="normal"):
        ea_is_alt = rng.random() < 0.5
        ea, oa = (alt, ref) if ea_is_alt else (ref, alt)
        zz = z if ea_is_alt else -z
        eaf = af if ea_is_alt else 1 - af
        if mode == "flip":
            ea, oa = complement(ea), complement(oa)
            cases["flipped"].append(rsid)
        elif mode == "mismatch":
            ea, oa = ref, complement(alt)
            cases["allele_mismatch"].append(rsid)
        cases["effect_is_ref"] += int(not ea_is_alt)
        f = min(max(af, 0.01), 0.99)
        se = 1.0 / math.sqrt(2 * f * (1 - f) * GWAS_N)
        beta = zz * se
        p = float(2 * special.ndtr(-abs(zz)))
        b = "NA" if mode == "missing" else f"{beta:.6g}"
        if mode == "missing":
            cases["missing_effect"].append(rsid)
        rows.append([chrom.removeprefix("chr"), str(pos), ea, oa, b, f"{se:.6g}", f"{eaf:.5g}", f"{p:.6g}", rsid,
                     str(GWAS_N)])

    mismatch_done = False
    for loc, sim in zip(loci, sims):
        v = loc["variants"]
        for i, r in enumerate(v.iter_rows(named=True)):
            mode = "normal"
            multi = world.variants.filter(pl.col("rsid") == r["rsid"]).height > 1
            pal = is_palindromic(r["ref"], r["alt"])
            if not pal and not multi:
                if not mismatch_done and sim.pip[i].max() > 0.5:
                    mode, mismatch_done = "mismatch", True
                elif rng.random() < 0.15:
                    mode = "flip"
            add(r["rsid"], r["chrom"], r["pos"], r["ref"], r["alt"], r["af"] or 0.1, float(sim.z[i]), mode=mode)
    used = {r for loc in loci for r in loc["variants"]["rsid"].to_list()}
    bg = world.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv")
                               & ~pl.col("rsid").is_in(list(used))).unique("rsid", keep="first", maintain_order=True)
    take = rng.permutation(bg.height)[:n_background]
    bgs = bg[np.sort(take).tolist()]
    for k, r in enumerate(bgs.iter_rows(named=True)):
        mode = "missing" if k == 0 else "mismatch" if (k == 1 and not is_palindromic(r["ref"], r["alt"])) else "normal"
        add(r["rsid"], r["chrom"], r["pos"], r["ref"], r["alt"], r["af"] or 0.1, float(rng.normal()), mode=mode)
    if absent_rsid:
        rows.append(["1", "12345", "A", "G", "0.001", "0.002", "0.3", "0.6", absent_rsid, str(GWAS_N)])
        cases["absent"].append(absent_rsid)
    # GWAS files are sorted by position, not by locus
    rows.sort(key=lambda r: (r[0], int(r[1])))
    buf = io.StringIO()
    buf.write("\t".join(header) + "\n")
    for r in rows:
        buf.write("\t".join(r) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue().encode())
    cases["rows"] = len(rows)
    return cases


def _write_susie(folder: Path, loci: list[dict], sims: list[LocusSim], *, absent_rsid: str | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    absent_done = False
    for loc, sim in zip(loci, sims):
        g = loc["gene"]
        rs = loc["variants"]["rsid"].to_list()
        for t, tissue in enumerate(TISSUES):
            if not sim.tested[t]:
                continue
            lines = ["rsid\tpip\tcs\tcs_size"]
            for i, r in enumerate(rs):
                cs = int(sim.cs[i, t])
                lines.append(f"{r}\t{sim.pip[i, t]:.6g}\t{cs}\t{int(sim.cs_size[i, t]) if cs >= 0 else 'NA'}")
            if absent_rsid and not absent_done and np.isfinite(sim.twas_p[t]) and sim.twas_p[t] < 1e-6:
                lines.append(f"{absent_rsid}\t0.02\t-1\tNA")  # an rsID dbSNP does not know (lookup: notfound)
                absent_done = True
            p = folder / f"{tissue}.{g['gene_id']}.susie.tsv"
            p.write_text("\n".join(lines) + "\n")
            paths.append(p)
    return paths


_FUSION_HEADER = ["FILE", "ID", "CHR", "P0", "P1", "HSQ", "BEST.GWAS.ID", "BEST.GWAS.Z", "EQTL.ID", "EQTL.R2",
                  "EQTL.Z", "EQTL.GWAS.Z", "NSNP", "NWGT", "MODEL", "MODELCV.R2", "MODELCV.PV", "TWAS.Z", "TWAS.P",
                  "tissue", "gene_id"]


def _write_fusion(folder: Path, loci: list[dict], sims: list[LocusSim], rng) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    failed_done = False
    for t, tissue in enumerate(TISSUES):
        lines = ["\t".join(_FUSION_HEADER)]
        for loc, sim in zip(loci, sims):
            if not sim.tested[t]:
                continue
            g = loc["gene"]
            rs = loc["variants"]["rsid"].to_list()
            gid = g["gene_id"].split(".")[0]
            ez, z = sim.ez[:, t], sim.z
            ib, ie = int(np.argmax(np.abs(z))), int(np.argmax(np.abs(ez)))
            hsq = min(0.6, float(np.max(ez ** 2)) / EQTL_N)
            nwgt = int((np.abs(ez) > 2).sum()) or 1
            model = "top1" if nwgt == 1 else ("lasso" if rng.random() < 0.5 else "enet")
            cv_r2 = hsq * float(rng.uniform(0.4, 0.9))
            cv_p = float(special.ndtr(-math.sqrt(max(cv_r2, 1e-9) * EQTL_N)) * 2)
            tz, tp = float(sim.twas_z[t]), float(sim.twas_p[t])
            tz_s, tp_s = _fmt(tz), _fmt(tp)
            if not failed_done and not (tp < 4.7e-6) and t > 0:
                tz_s, tp_s, failed_done = "NA", "NA", True  # a model that failed (FUSION writes NA)
            lines.append("\t".join([
                f"GTExv8.ALL.{tissue}/{gid}.wgt.RDat", g["gene_name"], g["chrom"].removeprefix("chr"),
                str(g["start"]), str(g["end"]), _fmt(hsq), rs[ib], _fmt(float(z[ib])), rs[ie],
                _fmt(float(ez[ie] ** 2 / EQTL_N)), _fmt(float(ez[ie])), _fmt(float(z[ie])), str(len(rs)), str(nwgt),
                model, _fmt(cv_r2), _fmt(cv_p), tz_s, tp_s, tissue, gid]))
        p = folder / f"{tissue}.dat"
        p.write_text("\n".join(lines) + "\n")
        paths.append(p)
    return paths


def _write_eqtl(folder: Path, loci: list[dict], sims: list[LocusSim]) -> list[Path]:
    """GTEx v8 ``<Tissue>.v8.signif_variant_gene_pairs.txt.gz`` per tissue: the marginal eQTL
    effect of ALT (``slope = ez / sqrt(500)``, ``slope_se = 1 / sqrt(500)``) of every
    candidate variant with nominal P < 1e-4 (``|ez| > 3.89``), as GTEx lists significant
    pairs only."""
    folder.mkdir(parents=True, exist_ok=True)
    se = 1.0 / math.sqrt(EQTL_N)
    paths = []
    for t, tissue in enumerate(TISSUES):
        lines = ["variant_id\tgene_id\ttss_distance\tma_samples\tma_count\tmaf\tpval_nominal\tslope\tslope_se"]
        for loc, sim in zip(loci, sims):
            g = loc["gene"]
            for i, r in enumerate(loc["variants"].iter_rows(named=True)):
                ez = float(sim.ez[i, t])
                if abs(ez) <= 3.89:
                    continue
                p = float(2 * special.ndtr(-abs(ez)))
                lines.append("\t".join([f"{r['chrom']}_{r['pos']}_{r['ref']}_{r['alt']}_b38", g["gene_id"],
                                        str(int(r["pos"]) - int(g["start"])), "100", "110", "0.11", _fmt(p),
                                        _fmt(ez * se), _fmt(se)]))
        path = folder / f"{tissue}.v8.signif_variant_gene_pairs.txt.gz"
        with gzip.open(path, "wt") as fh:
            fh.write("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def _write_weights_and_ld(folder: Path, loci: list[dict], sims: list[LocusSim]) -> tuple[Path, Path]:
    """The TWAS models' eQTL weights (``w = ez[:, t]``, for ALT; every tested gene-tissue,
    as FUSION's ``.wgt.RDat`` would give them) and the LD reference (each locus's ``R``
    between ALT dosages, pairs with ``r != 0``), for Q1's leave-one-variant-out TWAS.Z."""
    folder.mkdir(parents=True, exist_ok=True)
    wl = ["gene_id\ttissue\tSNP\tA1\tA2\tweight"]
    ll = ["SNP_A\tallele_a\tSNP_B\tallele_b\tR"]
    for loc, sim in zip(loci, sims):
        v = loc["variants"]
        rs, ref, alt = v["rsid"].to_list(), v["ref"].to_list(), v["alt"].to_list()
        for t, tissue in enumerate(TISSUES):
            if not sim.tested[t]:
                continue
            for i in range(len(rs)):
                wl.append(f"{loc['gene']['gene_id']}\t{tissue}\t{rs[i]}\t{alt[i]}\t{ref[i]}\t{_fmt(float(sim.ez[i, t]))}")
        for i in range(len(rs)):
            for j in range(i + 1, len(rs)):
                if sim.R[i, j] != 0:
                    ll.append(f"{rs[i]}\t{alt[i]}\t{rs[j]}\t{alt[j]}\t{_fmt(float(sim.R[i, j]))}")
    paths = (folder / "twas_weights.tsv.gz", folder / "ld.tsv.gz")
    for path, lines in zip(paths, (wl, ll)):
        with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
            gz.write(("\n".join(lines) + "\n").encode())
    return paths


def _write_tissue_map(path: Path) -> Path:
    """Long tab-separated override (``tissue, assay, ontology_curie``; an empty term = no tracks).
    Not TOML: study folders are globbed for ``*.toml`` study files."""
    lines = ["tissue\tassay\tontology_curie"]
    for t, m in EXTRA_TISSUE_MAP.items():
        for a, terms in m.items():
            for c in terms or [""]:
                lines.append(f"{t}\t{a}\t{c}")
    path.write_text("\n".join(lines) + "\n")
    return path


_TOML = """\
# SIMULATED demo study (agval standins.world.studies.twas, world seed {world_seed}, study seed {seed}).
# An AF-like TWAS / fine-mapping concordance study over the ten GTEx tissues of the stand-in
# catalogue: GWAS summary statistics (GWAS-SSF-like, gzip), SuSiE per gene-tissue, FUSION .dat
# per tissue. {mediation}
# {n_genes} genes, {n_variants} candidate variants each; {n_tested} tested gene-tissue pairs,
# {n_sig} with TWAS.P < 4.7e-6. The GWAS plants drops: alleles matching neither REF nor ALT
# ({n_mismatch} rows), a missing effect, an rsID dbSNP does not know, strand-flipped rows
# ({n_flip}); the effect allele is the REF in {n_ref} rows (z must be negated for ALT).
# The truth of every (variant, gene, tissue) is in planted.parquet.

[study]
name = "{name}"
gwas = "gwas/af_gwas.tsv.gz"
gwas_build = "hg38"
susie = "susie"
twas = "fusion"
eqtl = "eqtl"
twas_weights = "models/twas_weights.tsv.gz"
ld = "models/ld.tsv.gz"
tissue_map = "tissue_map.tsv"
reference_fasta = {fasta}
assays = ["RNA_SEQ", "ATAC", "DNASE", "CAGE"]
pip_threshold = 0.01
twas_p_threshold = 4.7e-6
n_permutations = {n_permutations}
n_boot = {n_permutations}
primary_cell = "Heart_Atrial_Appendage/DNASE"
seed = {seed}
heart_tissues = ["Heart_Atrial_Appendage", "Heart_Left_Ventricle"]

[backend]
kind = "standin"
standin_world = {world}
max_workers = 4

[lookup]
# Offline by default: the world's dbSNP-style VCF. `agval demo` overrides this with the
# myvariant.info stand-in; never point a simulated study at the real service.
source = "vcf"
vcf = {vcf}
palindromic = "af"
"""


def generate(world_dir: str | Path, out_dir: str | Path, *, seed: int = 0, null: bool = False,
             n_genes: int = 24, n_variants: int = 12, window: int = 6000, n_background: int = 3000,
             n_permutations: int = 1000, name: str | None = None) -> list[Path]:
    """Write the demo TWAS study into ``out_dir``; returns ``[<name>.toml, gwas, planted,
    tissue map, fusion files..., susie files...]`` (the study file first).

    ``null=True``: no mediation (the GWAS signal, where there is one, does not act through
    expression), for calibration checks. ``n_genes`` x ``n_variants`` bounds the work: the
    truth is evaluated for up to ``1.5 n_variants`` candidates per gene (~0.05 s each) and
    only the retained SuSiE variants of significant pairs are scored by the flow.
    """
    from standins.world import World
    from standins.world.truth import TruthOracle

    world_dir = Path(world_dir).absolute()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("susie", "fusion", "eqtl", "models"):  # files of an earlier generation would be read as part of this study
        shutil.rmtree(out / sub, ignore_errors=True)
    world = World.load(world_dir)
    try:
        oracle = TruthOracle(world)
        rng = np.random.default_rng([seed, 2])
        loci = _choose_loci(world, oracle, rng, n_genes=n_genes, n_variants=n_variants, window=window)
        effects = [loc["beta"] / np.abs(loc["beta"]).max() for loc in loci]
        positions = [loc["variants"]["pos"].to_numpy() for loc in loci]
        sims = simulate_loci(effects, positions, rng, tissues=TISSUES, null=null)
        absent = world.absent_rsids[0] if world.absent_rsids else None
        gwas_path = out / "gwas" / "af_gwas.tsv.gz"
        cases = _write_gwas(gwas_path, loci, sims, world, rng, n_background=n_background, absent_rsid=absent)
        susie_paths = _write_susie(out / "susie", loci, sims, absent_rsid=absent)
        fusion_paths = _write_fusion(out / "fusion", loci, sims, rng)
        eqtl_paths = _write_eqtl(out / "eqtl", loci, sims)
        model_paths = _write_weights_and_ld(out / "models", loci, sims)
        tmap = _write_tissue_map(out / "tissue_map.tsv")
        planted = []
        for loc, sim in zip(loci, sims):
            g = loc["gene"]
            for i, r in enumerate(loc["variants"].iter_rows(named=True)):
                key = Variant(r["chrom"], int(r["pos"]), r["ref"], r["alt"]).key
                for t, tissue in enumerate(TISSUES):
                    planted.append({
                        "gene_id": g["gene_id"].split(".")[0], "gene_name": g["gene_name"], "tissue": tissue,
                        "rsid": r["rsid"], "variant_key": key, "true_effect": float(loc["beta"][i, t]),
                        "b": float(sim.b[i, t]), "eqtl_z": float(sim.ez[i, t]), "z_alt": float(sim.z[i]),
                        "pip": float(sim.pip[i, t]), "cs": int(sim.cs[i, t]), "tested": bool(sim.tested[t]),
                        "twas_z": float(sim.twas_z[t]), "twas_p": float(sim.twas_p[t]),
                        "acting": bool(sim.acting[t]), "gamma": sim.gamma, "strength": sim.strength,
                        "mediated": bool(sim.acting.any()), "null_world": bool(null)})
        planted_df = pl.DataFrame(planted)
        planted_path = out / "planted.parquet"
        planted_df.write_parquet(planted_path)
        n_tested = int(sum(s.tested.sum() for s in sims))
        n_sig = int(sum((np.nan_to_num(s.twas_p, nan=1.0) < 4.7e-6).sum() for s in sims))
        study_name = name or ("twas-null-demo" if null else "twas-af-demo")
        mediation = ("NULL WORLD: no mediation; where a gene has a GWAS signal it does not act through expression."
                     if null else "Mediation is planted through the truth model: some genes act in one tissue, "
                     "some in several;\n# GWAS z = mediated effect via expression + noise; TWAS.Z = w'z / sqrt(w'Rw).")
        toml = out / f"{study_name}.toml"
        toml.write_text(_TOML.format(
            world_seed=world.seed, seed=seed, mediation=mediation, n_genes=len(loci), n_variants=n_variants,
            n_tested=n_tested, n_sig=n_sig, n_mismatch=len(cases["allele_mismatch"]), n_flip=len(cases["flipped"]),
            n_ref=cases["effect_is_ref"], name=study_name, fasta=_toml_str(world_dir / "genome.fa"),
            n_permutations=n_permutations, world=_toml_str(world_dir), vcf=_toml_str(world_dir / "dbsnp.vcf.gz")))
    finally:
        world.close()
    return [toml, gwas_path, planted_path, tmap, *fusion_paths, *susie_paths, *eqtl_paths, *model_paths]
