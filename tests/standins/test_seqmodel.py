"""The synthetic regulatory model and the scoring arithmetic (standins/, SIMULATED)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from agval.coords import Variant
from standins.scoring_math import (LocalScorer, align_alt_to_ref, center_mask_diff_log2_sum, center_window,
                                   gene_mask_lfc)
from standins.seqmodel import ModelParams, SequenceModel

T_CELL, K562 = "CL:0000624", "EFO:0002067"


def _tracks(rows: list[dict]) -> pl.DataFrame:
    cols = ["output_type", "ontology_curie", "histone_mark", "transcription_factor", "strand"]
    return pl.DataFrame([{c: r.get(c) for c in cols} for r in rows],
                        schema={c: pl.Utf8 for c in cols})


ONE_OF_EACH = _tracks([
    {"output_type": "ATAC", "ontology_curie": T_CELL, "strand": "."},
    {"output_type": "DNASE", "ontology_curie": K562, "strand": "."},
    {"output_type": "CHIP_HISTONE", "ontology_curie": T_CELL, "histone_mark": "H3K27ac", "strand": "."},
    {"output_type": "CHIP_HISTONE", "ontology_curie": T_CELL, "histone_mark": "H3K27me3", "strand": "."},
    {"output_type": "CHIP_HISTONE", "ontology_curie": T_CELL, "histone_mark": "H3K36me3", "strand": "."},
    {"output_type": "CHIP_HISTONE", "ontology_curie": T_CELL, "histone_mark": "H3K4me3", "strand": "."},
    {"output_type": "CHIP_TF", "ontology_curie": K562, "transcription_factor": "GATA1", "strand": "."},
    {"output_type": "CAGE", "ontology_curie": T_CELL, "strand": "+"},
    {"output_type": "RNA_SEQ", "ontology_curie": T_CELL, "strand": "+"},
    {"output_type": "RNA_SEQ", "ontology_curie": T_CELL, "strand": "-"},
    {"output_type": "RNA_SEQ", "ontology_curie": T_CELL, "strand": "."},
])


@pytest.fixture(scope="module")
def params() -> ModelParams:
    return ModelParams.random(11)


@pytest.fixture(scope="module")
def model(params) -> SequenceModel:
    return SequenceModel(params)


def _random_seq(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list("ACGT"), n, p=[0.3, 0.2, 0.2, 0.3]))


def _plant(seq: str, pos: int, site: str) -> str:
    return seq[:pos] + site + seq[pos + len(site):]


def _regulatory_seq(params: ModelParams, n: int = 40_000, seed: int = 3) -> tuple[str, list[int]]:
    """Background with T-cell enhancers (RUNX3 consensus x3) and promoters every 5 kb."""
    seq = _random_seq(n, seed)
    runx = params.motifs[params.motif_index("RUNX3")].consensus()
    sp1 = params.motifs[params.motif_index("SP1")].consensus()
    centers = list(range(3_000, n - 3_000, 5_000))
    for c in centers:
        for off in (-60, 0, 60):
            seq = _plant(seq, c + off, runx)
        seq = _plant(seq, c + 400, sp1)
        seq = _plant(seq, c + 460, sp1)
    return seq, centers


# ----------------------------------------------------------------------------- parameters

def test_params_are_deterministic_and_round_trip(params):
    assert ModelParams.random(11).to_json() == params.to_json()
    assert ModelParams.random(12).to_json() != params.to_json()
    back = ModelParams.from_json(params.to_json())
    assert back.to_json() == params.to_json()
    assert back.fingerprint() == params.fingerprint()
    p2 = params.perturbed(5, 0.1)
    assert ModelParams.from_json(p2.to_json()).to_json() == p2.to_json()
    assert p2.fingerprint() != params.fingerprint()
    assert params.perturbed(5, 0.1).to_json() == p2.to_json()


def test_motifs_have_realistic_information_content(params):
    assert 8 <= len(params.motifs) <= 12
    for m in params.motifs:
        assert 6 <= m.length <= 12
        p = np.asarray(m.probs)
        assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
        ic = m.information_content() / m.length
        assert 0.7 < ic < 1.9, (m.name, ic)


# ----------------------------------------------------------------------------- signals

def test_shape_dtype_nonnegative_and_deterministic(model):
    seq = _random_seq(5_000, 1)
    out = model.tracks(seq, ONE_OF_EACH)
    assert out.shape == (5_000, ONE_OF_EACH.height) and out.dtype == np.float32
    assert np.all(out >= 0) and np.all(np.isfinite(out))
    assert np.array_equal(out, model.tracks(seq, ONE_OF_EACH))
    assert model.tracks("", ONE_OF_EACH).shape == (0, ONE_OF_EACH.height)


def test_n_bases_contribute_nothing(model, params):
    runx = params.motifs[params.motif_index("RUNX3")].consensus()
    atac = ONE_OF_EACH[:1]
    flat = model.tracks("N" * 2_000, atac)[:, 0]
    assert np.ptp(flat) == 0  # pure baseline, no motif signal
    with_site = model.tracks("N" * 1_000 + runx * 3 + "N" * 976, atac)[:, 0]
    assert with_site.max() > 3 * flat[0]
    # real sequence on both sides, but more than the model's reach away: the N block in the
    # middle is exactly the all-N baseline (no leakage from the flanks), the flanks are not
    r = model.reach
    mixed = model.tracks(_random_seq(3_000, 5) + "N" * (2 * r + 500) + _random_seq(3_000, 6), atac)[:, 0]
    middle = mixed[3_000 + r:3_000 + r + 500]
    assert middle.shape == (500,) and np.array_equal(middle, np.full(500, flat[0], dtype=mixed.dtype))
    assert not np.all(mixed[:3_000] == flat[0]) and not np.all(mixed[-3_000:] == flat[0])


def test_motif_change_moves_the_relevant_cell_type_and_far_changes_do_nothing(model, params):
    seq, centers = _regulatory_seq(params)
    c = centers[3]
    probs = np.asarray(params.motifs[params.motif_index("RUNX3")].probs)
    j = int(np.argmax(probs.max(axis=1)))          # the most conserved motif position
    worst = "ACGT"[int(np.argmin(probs[j]))]
    tr = _tracks([{"output_type": "ATAC", "ontology_curie": T_CELL}, {"output_type": "ATAC", "ontology_curie": K562}])
    ref = model.tracks(seq, tr).astype(np.float64)
    # break all three RUNX3 sites at that position
    alt_seq = seq
    for off in (-60, 0, 60):
        p = c + off + j
        alt_seq = alt_seq[:p] + worst + alt_seq[p + 1:]
    alt = model.tracks(alt_seq, tr).astype(np.float64)
    win = slice(c - 250, c + 251)
    t_change = abs(np.log2(alt[win, 0].sum() + 1) - np.log2(ref[win, 0].sum() + 1))
    k_change = abs(np.log2(alt[win, 1].sum() + 1) - np.log2(ref[win, 1].sum() + 1))
    assert t_change > 0.5, t_change           # T cells (RUNX program) lose accessibility
    assert t_change > 5 * k_change             # erythroid K562 barely notices
    assert ref[c, 0] > 4 * ref[c, 1]           # the planted enhancer is T-cell specific


def test_reach_bounds_every_track_exactly(model):
    n = 2 * model.reach + 3_000
    seq = _random_seq(n, 2)
    i = n // 2
    alt = seq[:i] + ("G" if seq[i] != "G" else "T") + seq[i + 1:]
    a = model.tracks(seq, ONE_OF_EACH)
    b = model.tracks(alt, ONE_OF_EACH)
    far = np.r_[0:i - model.reach, i + model.reach + 1:n]
    assert np.array_equal(a[far], b[far])          # bit-identical beyond reach
    assert not np.array_equal(a[i - 200:i + 200], b[i - 200:i + 200])
    for j, ot in enumerate(ONE_OF_EACH["output_type"]):
        r = model.reach_for([ot])
        far_j = np.r_[0:i - r, i + r + 1:n]
        assert np.array_equal(a[far_j, j], b[far_j, j]), ot


def test_marks_follow_accessibility_with_the_right_sign(model, params):
    seq, _ = _regulatory_seq(params, 60_000, 4)
    out = model.tracks(seq, ONE_OF_EACH).astype(np.float64)
    core = slice(3_000, 57_000)
    atac = np.convolve(out[:, 0], np.ones(2001) / 2001, mode="same")[core]
    h3k27ac, h3k27me3 = out[core, 2], out[core, 3]
    assert np.corrcoef(atac, h3k27ac)[0, 1] > 0.5
    assert np.corrcoef(atac, h3k27me3)[0, 1] < -0.5


def test_stranded_rna_tracks_differ_and_unstranded_is_their_sum(model, params):
    seq, _ = _regulatory_seq(params, 30_000, 5)
    out = model.tracks(seq, ONE_OF_EACH).astype(np.float64)
    plus, minus, both = out[:, 8], out[:, 9], out[:, 10]
    assert not np.allclose(plus, minus)
    assert np.corrcoef(plus, minus)[0, 1] < 0.95
    assert np.allclose(both, plus + minus - 0.001 * params.output_gains["RNA_SEQ"], rtol=1e-5, atol=1e-6)


def test_perturbed_params_give_correlated_but_different_signals(params):
    seq, _ = _regulatory_seq(params, 30_000, 6)
    a = SequenceModel(params).tracks(seq, ONE_OF_EACH).astype(np.float64)
    b = SequenceModel(params.perturbed(1, 0.1)).tracks(seq, ONE_OF_EACH).astype(np.float64)
    for j in range(ONE_OF_EACH.height):
        r = np.corrcoef(a[:, j], b[:, j])[0, 1]
        assert r > 0.7, (ONE_OF_EACH.row(j), r)
    assert not np.allclose(a, b)


def test_unknown_curie_gets_a_deterministic_context(params):
    tr = _tracks([{"output_type": "DNASE", "ontology_curie": "UBERON:9999999"},
                  {"output_type": "DNASE", "ontology_curie": "UBERON:9999998"}])
    seq, _ = _regulatory_seq(params, 8_000, 7)
    a = SequenceModel(params).tracks(seq, tr)
    b = SequenceModel(ModelParams.from_json(params.to_json())).tracks(seq, tr)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[:, 0], a[:, 1])


def test_model_is_fast_enough(model):
    import time

    seq = _random_seq(200_000, 8)
    t0 = time.perf_counter()
    model.tracks(seq, ONE_OF_EACH)
    assert time.perf_counter() - t0 < 5.0  # ~0.3 s idle; generous for a loaded CI box
    t0 = time.perf_counter()
    model.tracks(seq[:20_000], ONE_OF_EACH[:2])
    assert time.perf_counter() - t0 < 0.5


# ----------------------------------------------------------------------------- scoring math

def test_align_alt_to_ref_by_hand():
    # REF: 10 bases, variant at index 3
    alt_snv = np.arange(10.0)
    assert np.array_equal(align_alt_to_ref(alt_snv, 3, 1, 1), alt_snv)
    # deletion REF=4 bases (anchor + 3 deleted): ALT is 3 bases shorter
    alt_del = np.array([0, 1, 2, 30, 70, 80, 90.0])
    assert np.array_equal(align_alt_to_ref(alt_del, 3, 4, 1), [0, 1, 2, 30, 0, 0, 0, 70, 80, 90])
    # insertion of 2 bases: anchor takes the max over anchor + inserted segment
    alt_ins = np.array([0, 1, 2, 30, 50, 40, 4, 5, 6, 7, 8, 9.0])
    assert np.array_equal(align_alt_to_ref(alt_ins, 3, 1, 3), [0, 1, 2, 50, 4, 5, 6, 7, 8, 9])


def test_center_mask_and_gene_mask_equal_direct_loops():
    rng = np.random.default_rng(0)
    ref = rng.random((3000, 3)) * 5
    alt = ref.copy()
    alt[1490:1510] *= 3
    c, w = 1500, 501
    got = center_mask_diff_log2_sum(ref, alt, w, center=c)
    a, b = center_window(c, w)
    assert (a, b) == (1250, 1751)
    for j in range(3):
        sr = sum(ref[i, j] for i in range(a, b))
        sa = sum(alt[i, j] for i in range(a, b))
        assert got[j] == pytest.approx(np.log2((sa + 1) / (sr + 1)), rel=1e-12)
    # an indel through allele_lengths equals aligning first
    alt_del = np.delete(alt, range(1501, 1504), axis=0)
    assert np.allclose(center_mask_diff_log2_sum(ref, alt_del, w, center=c, allele_lengths=(4, 1)),
                       center_mask_diff_log2_sum(ref, align_alt_to_ref(alt_del, c, 4, 1), w, center=c))
    mask = np.zeros((2, 3000), dtype=bool)
    mask[0, 100:300] = True
    mask[0, 1400:1600] = True
    mask[1, 2000:2100] = True
    lfc = gene_mask_lfc(ref, alt, mask)
    for g in range(2):
        idx = [i for i in range(3000) if mask[g, i]]
        for j in range(3):
            mr = sum(ref[i, j] for i in idx) / len(idx)
            ma = sum(alt[i, j] for i in idx) / len(idx)
            assert lfc[g, j] == pytest.approx(np.log(ma + 0.001) - np.log(mr + 0.001), rel=1e-10, abs=1e-15)
    assert lfc[1] == pytest.approx(np.zeros(3))


class _Genome:
    def __init__(self, seq: str):
        self.seq = seq

    def fetch(self, chrom: str, start0: int, end0: int) -> str:
        n = len(self.seq)
        lo, hi = max(start0, 0), min(end0, n)
        core = self.seq[lo:hi] if hi > lo else ""
        return "N" * max(0, min(end0, 0) - start0) + core + "N" * max(0, end0 - max(start0, n))


def test_local_scorer_equals_full_chromosome_computation(model, params):
    seq, centers = _regulatory_seq(params, 50_000, 9)
    genes = pl.DataFrame({"gene_id": ["G1.1", "G2.1"], "gene_name": ["A", "B"], "chrom": ["chr1", "chr1"],
                          "start": [13_401, 20_001], "end": [30_000, 38_460], "strand": ["+", "-"]})
    exons = pl.DataFrame({"gene_id": ["G1.1", "G1.1", "G2.1", "G2.1"], "exon_number": [1, 2, 2, 1],
                          "chrom": ["chr1"] * 4, "start": [13_401, 27_001, 20_001, 38_001],
                          "end": [13_700, 30_000, 21_000, 38_460]})
    tr = _tracks([{"output_type": "ATAC", "ontology_curie": T_CELL},
                  {"output_type": "CHIP_HISTONE", "ontology_curie": T_CELL, "histone_mark": "H3K4me3"},
                  {"output_type": "RNA_SEQ", "ontology_curie": T_CELL, "strand": "+"},
                  {"output_type": "RNA_SEQ", "ontology_curie": T_CELL, "strand": "-"}])
    scorer = LocalScorer(model, _Genome(seq), genes, exons)
    R = model.reach
    full_ref = model.tracks("N" * R + seq + "N" * R, tr)[R:R + len(seq)].astype(np.float64)
    masks = np.zeros((2, len(seq)), dtype=bool)
    for gi, gid in enumerate(["G1.1", "G2.1"]):
        for s, e in exons.filter(pl.col("gene_id") == gid).select("start", "end").rows():
            masks[gi, s - 1:e] = True
    c = centers[2] + 401  # inside the first SP1 site of the promoter at centers[2]
    variants = [Variant("chr1", c + 1, seq[c], "A" if seq[c] != "A" else "T"),            # SNV
                Variant("chr1", c - 10, seq[c - 11:c - 6], seq[c - 11]),                    # 4 bp deletion
                Variant("chr1", 20_500, seq[20_499], seq[20_499] + "GATAAGGA")]             # insertion in an exon
    for v in variants:
        alt_seq = seq[:v.pos - 1] + v.alt + seq[v.pos - 1 + len(v.ref):]
        full_alt = model.tracks("N" * R + alt_seq + "N" * R, tr)[R:R + len(alt_seq)].astype(np.float64)
        aligned = align_alt_to_ref(full_alt, v.pos - 1, len(v.ref), len(v.alt))
        got = scorer.score(v, tr, interval=(0, len(seq)))
        for j, w in ((0, 501), (1, 2001)):
            direct = center_mask_diff_log2_sum(full_ref[:, j], aligned[:, j], w, center=v.pos - 1)
            assert got.center[j] == pytest.approx(direct, rel=1e-9, abs=1e-12), (v, j)
        assert np.isnan(got.center[2:]).all()
        assert got.gene_ids == ["G1.1", "G2.1"]
        direct_g = gene_mask_lfc(full_ref[:, 2:], aligned[:, 2:], masks)
        assert np.allclose(got.gene_lfc[:, 2:], direct_g, rtol=1e-9, atol=1e-12), v
        assert np.isnan(got.gene_lfc[:, :2]).all()
    # the promoter SNV really moves things
    first = scorer.score(variants[0], tr, interval=(0, len(seq)))
    assert abs(first.center[1]) > 1e-3
