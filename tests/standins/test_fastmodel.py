"""The batched sequence model and the gene-mask kernel engine (standins/fastmodel.py,
SIMULATED) against the one-context-at-a-time model and the exact per-base LocalScorer."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from agval.coords import Variant
from standins.fastmodel import BatchModel, GeneMaskEngine, exon_kernels, lfc_from_sums
from standins.scoring_math import LocalScorer
from standins.seqmodel import ModelParams, SequenceModel, TrackContext


def _ctxs() -> list[TrackContext]:
    out = []
    for curie in ("CL:0000624", "EFO:0002067", "generic:03", None):
        out += [TrackContext(curie, "ATAC", None, None, "."), TrackContext(curie, "DNASE", None, None, "."),
                TrackContext(curie, "CAGE", None, None, "+"), TrackContext(curie, "PROCAP", None, None, "-"),
                TrackContext(curie, "RNA_SEQ", None, None, "+"), TrackContext(curie, "RNA_SEQ", None, None, "-"),
                TrackContext(curie, "RNA_SEQ", None, None, "."),
                TrackContext(curie, "CHIP_TF", None, "GATA1", "."), TrackContext(curie, "CHIP_TF", None, "POLR2A", "."),
                TrackContext(curie, "CHIP_TF", None, "ZNF999", ".")]
        out += [TrackContext(curie, "CHIP_HISTONE", m, None, ".")
                for m in ("H3K27ac", "H3K4me3", "H3K36me3", "H3K27me3", "H3K14ac")]
    return out


@pytest.fixture(scope="module")
def model() -> SequenceModel:
    return SequenceModel(ModelParams.random(11).perturbed(3, 0.2))


def _seq(n: int, seed: int, params: ModelParams, sites: list | None = None) -> str:
    """Random DNA with motif consensus sites planted every ~150 bp (0-based starts appended
    to ``sites``) and a run of N."""
    rng = np.random.default_rng(seed)
    s = list(rng.choice(list("ACGT"), n, p=[0.3, 0.2, 0.2, 0.3]))
    for pos in sorted(rng.integers(0, n - 20, n // 150).tolist()):
        m = params.motifs[int(rng.integers(len(params.motifs)))].consensus()
        s[pos:pos + len(m)] = m
        if sites is not None:
            sites.append(pos + len(m) // 2)
    s[n // 3:n // 3 + 40] = "N" * 40
    return "".join(s)


def test_batched_tracks_equal_the_per_context_model(model):
    ctxs = _ctxs()
    seq = _seq(12_000, 1, model.params)
    want = model.tracks_for_contexts(seq, ctxs)
    got = BatchModel(model).tracks(seq, ctxs + ctxs[:5])  # duplicates are broadcast
    assert got.shape == (12_000, len(ctxs) + 5) and got.dtype == np.float32
    np.testing.assert_allclose(got[:, :len(ctxs)], want, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(got[:, len(ctxs):], got[:, :5])
    assert (got >= 0).all() and np.ptp(got, axis=0).min() > 0


def test_batched_occupancies_are_bit_identical(model):
    seq = _seq(3_000, 2, model.params)
    codes, kmer, ncs = SequenceModel._encode(seq)
    f0, r0 = model._occupancies(codes, kmer, ncs)
    f1, r1, b1 = BatchModel(model).occupancies(seq)
    assert np.array_equal(f0, f1) and np.array_equal(r0, r1) and np.array_equal(b1, np.maximum(f0, r0))


def test_exon_kernels_by_direct_count():
    blocks = np.array([[100, 180], [5_000, 5_050], [9_000, 9_400]])
    kp, km = exon_kernels(blocks, 0, 12_000)
    mask = np.zeros(30_000, bool)
    for s, e in blocks:
        mask[s:e] = True
    for q in (0, 99, 150, 4_000, 4_990, 5_049, 8_500, 9_399, 11_999):
        want_p = sum(w * 20.0 / n * mask[q:q + n].sum() for n, w in ((800, .5), (2500, .3), (6000, .2)))
        want_m = sum(w * 20.0 / n * mask[max(q - n + 1, 0):q + 1].sum() for n, w in ((800, .5), (2500, .3), (6000, .2)))
        assert kp[q] == pytest.approx(want_p) and km[q] == pytest.approx(want_m)


class _Genome:
    def __init__(self, seq: str):
        self.seq = seq

    def fetch(self, chrom, a, b):
        s = self.seq
        core = s[max(a, 0):max(min(b, len(s)), 0)]
        return "N" * max(0, -a) + core + "N" * max(0, b - max(a, len(s)))


def _two_gene_setup(model, seq: str):
    """Two genes on chr1 of ``seq`` (G1 +, three exons; G2 -, two exons listed out of order),
    RNA_SEQ contexts of two CURIEs x three strands, and both scorers over them:
    ``(genome, contexts, curies, exact LocalScorer, GeneMaskEngine)``."""
    genes = pl.DataFrame({"gene_id": ["G1", "G2"], "gene_name": ["A", "B"], "chrom": ["chr1"] * 2,
                          "start": [20_001, 41_001], "end": [36_000, 60_000], "strand": ["+", "-"],
                          "gene_type": ["protein_coding"] * 2, "tss": [20_001, 60_000]})
    exons = pl.DataFrame({"gene_id": ["G1", "G1", "G1", "G2", "G2"], "exon_number": [1, 2, 3, 1, 2],
                          "chrom": ["chr1"] * 5, "start": [20_001, 26_001, 35_001, 58_001, 41_001],
                          "end": [20_300, 26_200, 36_000, 60_000, 42_000]})
    g = _Genome(seq)
    curies = ("CL:0000624", "generic:07")
    ctxs = [TrackContext(c, "RNA_SEQ", None, None, s) for c in curies for s in "+-."]
    blocks = {gid: np.stack([sub["start"].to_numpy() - 1, sub["end"].to_numpy()], axis=1)
              for (gid,), sub in exons.group_by(["gene_id"])}
    return g, ctxs, curies, LocalScorer(model, g, genes, exons), GeneMaskEngine(BatchModel(model), g.fetch, blocks)


def test_gene_mask_engine_equals_the_exact_local_scorer(model):
    sites: list[int] = []
    seq = _seq(80_000, 3, model.params, sites)
    g, ctxs, curies, exact, eng = _two_gene_setup(model, seq)
    gain = model.params.output_gains["RNA_SEQ"]
    interval = (0, 57_000)  # clips G2's first exon
    checked = 0
    near = [p + 1 for p in sites if 19_500 < p < 21_000 or 34_500 < p < 36_500 or 56_500 < p < 58_500]
    for pos in [24_000, 30_000, 44_000] + near[::max(1, len(near) // 8)]:
        ref = seq[pos - 1]
        if ref == "N":
            continue
        v = Variant("chr1", pos, ref, "G" if ref != "G" else "A")
        want = np.stack([exact.gene_lfc(v, gid, ctxs, interval) for gid in ("G1", "G2")])
        bl = [eng.blocks(gid, *interval) for gid in ("G1", "G2")]
        dsp, dsm = eng.delta_sums("chr1", v.start0, v.ref, v.alt, bl, curies)
        rs = [eng.ref_sums("chr1", gid, *interval, curies) for gid in ("G1", "G2")]
        sp = np.stack([r[0] for r in rs])
        sm = np.stack([r[1] for r in rs])
        n = np.array([r[2] for r in rs])
        # contexts: (curie u, strand) -> sums
        cols = []
        for c in ctxs:
            u = curies.index(c.curie)
            r = (sp[:, u] if c.strand in "+." else 0) + (sm[:, u] if c.strand in "-." else 0)
            d = (dsp[:, u] if c.strand in "+." else 0) + (dsm[:, u] if c.strand in "-." else 0)
            cols.append((r, d))
        got = lfc_from_sums(np.stack([c[0] for c in cols], 1), np.stack([c[1] for c in cols], 1), n, gain)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)
        checked += int(np.abs(want).max() > 1e-4)
    assert checked >= 3  # the comparison saw real effects, not only zeros


def test_indel_gene_mask_equals_the_exact_local_scorer(model):
    """Insertions and deletions (ALT aligned to REF: inserted bases as their maximum at the
    anchor base, deleted bases 0) through the engine's general path, near and inside exons."""
    sites: list[int] = []
    seq = _seq(80_000, 4, model.params, sites)
    g, ctxs, curies, exact, eng = _two_gene_setup(model, seq)
    gain = model.params.output_gains["RNA_SEQ"]
    interval = (0, 80_000)
    near = [p + 1 for p in sites if 19_800 < p < 20_400 or 35_000 < p < 36_100 or 58_500 < p < 60_000]
    cases = []
    for j, pos in enumerate(near[::max(1, len(near) // 6)] + [20_100, 35_500, 59_000]):
        ref = seq[pos - 1]
        cases.append(Variant("chr1", pos, seq[pos - 1:pos + 3], ref))              # 3 bp deletion
        cases.append(Variant("chr1", pos, ref, ref + "GGGGCGGGGC"[:1 + j % 9]))   # insertion (SP1-like)
    checked = 0
    for v in cases:
        want = np.stack([exact.gene_lfc(v, gid, ctxs, interval) for gid in ("G1", "G2")])
        bl = [eng.blocks(gid, *interval) for gid in ("G1", "G2")]
        dsp, dsm, ddot, offset = eng.delta_sums_indel("chr1", v.start0, v.ref, v.alt, bl, curies)
        rs = [eng.ref_sums("chr1", gid, *interval, curies) for gid in ("G1", "G2")]
        cols = []
        for c in ctxs:
            u = curies.index(c.curie)
            r = np.array([(rs[gi][0][u] if c.strand in "+." else 0) + (rs[gi][1][u] if c.strand in "-." else 0)
                          for gi in range(2)])
            dd = (dsp[:, u] if c.strand in "+." else 0) + (dsm[:, u] if c.strand in "-." else 0) \
                + (ddot[:, u] if c.strand == "." else 0) + offset
            cols.append((r, dd))
        n = np.array([rs[0][2], rs[1][2]])
        got = lfc_from_sums(np.stack([c[0] for c in cols], 1), np.stack([c[1] for c in cols], 1), n, gain)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6, err_msg=str(v))
        checked += int(np.abs(want).max() > 1e-4)
    assert checked >= 6


def test_background_quantiles_are_mid_ranks():
    from scipy.stats import percentileofscore

    from standins.alphagenome.background import QUANTILE_CAP, Background

    rng = np.random.default_rng(5)
    rows = np.round(rng.normal(size=(40, 4)), 1)
    rows[:10, 2] = np.nan                      # a track with fewer observations
    rows[:, 3] = np.nan                        # a track with none
    raw = np.round(rng.normal(size=(7, 4)) * 2, 1)
    raw[0, 0] = np.nan
    for signed in (True, False):
        bg = Background.from_rows(rows, signed)
        got = bg.quantiles(raw)
        for j in range(3):
            col = rows[:, j][~np.isnan(rows[:, j])]
            for i in range(7):
                if np.isnan(raw[i, j]):
                    assert np.isnan(got[i, j])
                    continue
                f = percentileofscore(col, raw[i, j], kind="mean") / 100
                want = np.clip(2 * f - 1 if signed else f, -QUANTILE_CAP if signed else 0, QUANTILE_CAP)
                assert got[i, j] == pytest.approx(want)
        assert np.isnan(got[:, 3]).all()
        np.testing.assert_array_equal(bg.quantiles(raw[:, [2, 0]], columns=[2, 0]), got[:, [2, 0]])


def test_concurrent_ref_sums_compute_a_gene_once(model, monkeypatch):
    import threading
    import time

    seq = _seq(40_000, 6, model.params)
    eng = GeneMaskEngine(BatchModel(model), _Genome(seq).fetch, {"G1": np.array([[10_000, 10_400], [20_000, 20_300]])})
    calls = []
    real = eng._compute_ref_sums

    def slow(*a):
        calls.append(1)
        time.sleep(0.2)
        return real(*a)

    monkeypatch.setattr(eng, "_compute_ref_sums", slow)
    out = []
    threads = [threading.Thread(target=lambda: out.append(eng.ref_sums("chr1", "G1", 0, 40_000, ("CL:0000624",))))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(out) == 6 and all(o is out[0] for o in out)
    assert out[0][2] == 700 and out[0][0][0] > 0
