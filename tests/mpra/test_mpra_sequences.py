"""agval.mpra: the neutral backbone, model-input construction (centred, + orientation,
N refused, supported lengths only) and distinct-input accounting."""

from __future__ import annotations

import polars as pl
import pytest

from agval.coords import revcomp
from agval.drops import DropLog
from agval.errors import CardinalityError, UnsupportedSequenceError
from agval.mpra import backbone as B
from agval.mpra.sequences import (build_sequences, embed_in_backbone, embed_in_reference, insert_bounds,
                                  prepare_inserts)

L = 16_384


def test_backbone_is_fixed_neutral_and_documented():
    s = B.neutral_backbone(L)
    assert len(s) == L and set(s) <= set("ACGT")
    assert s == B.neutral_backbone(L, B.BACKBONE_SEED)           # deterministic
    assert s != B.neutral_backbone(L, seed=1)                       # the seed matters
    assert B.motif_hits(s) == []                                    # no consensus TF site on either strand
    # a planted AP-1 site on the minus strand is found by the same scanner
    assert B.motif_hits("CCC" + revcomp("TGACTCA") + "CCC") == [(3, 10)]
    info = B.backbone_info(L)
    assert info["version"] == B.BACKBONE_VERSION and info["seed"] == B.BACKBONE_SEED
    assert 0.36 < info["gc"] < 0.44 and info["cpg_obs_exp"] < 0.4
    import hashlib
    assert info["sha256"] == hashlib.sha256(s.encode()).hexdigest()


def test_element_is_centred_in_the_backbone():
    ins = "ACGTTGCA" * 19  # 152 bp
    seq = embed_in_backbone(ins, L)
    a, b = insert_bounds(L, len(ins))
    assert (a, b) == (L // 2 - 76, L // 2 + 76) and seq[a:b] == ins
    bb = B.neutral_backbone(L)
    assert len(seq) == L and seq[:a] == bb[:a] and seq[b:] == bb[b:]
    odd = embed_in_backbone("A" * 15, L)
    assert odd[L // 2 - 7:L // 2 + 8] == "A" * 15


def test_n_padding_and_unsupported_lengths_are_refused():
    rows = pl.DataFrame({"row_id": ["r1", "r2"], "insert": ["ACGT" * 4, "N" * 8 + "ACGTACGT" + "N" * 8]})
    with pytest.raises(UnsupportedSequenceError, match="N-padded"):
        build_sequences(rows)
    drops = DropLog()
    built = build_sequences(rows, n_policy="drop", drops=drops)
    assert built.table["row_id"].to_list() == ["r1"]
    assert drops.frame()["reason"].to_list() == ["contains_n"]
    for bad in (2048, 16_000, 100_000):
        with pytest.raises(UnsupportedSequenceError, match="not supported"):
            build_sequences(rows.head(1), length=bad)
    with pytest.raises(UnsupportedSequenceError, match="longer than the model input"):
        build_sequences(pl.DataFrame({"row_id": ["x"], "insert": ["A" * (L + 1)]}))


def test_distinct_input_accounting():
    rows = pl.DataFrame({"row_id": [f"r{i}" for i in range(6)],
                         "insert": ["AAAACCCCGGGGTTTT"] * 4 + ["ACGTACGTACGTACGT", "TTTTGGGGCCCCAAAA"]})
    built = build_sequences(rows, center_window=200)
    assert built.summary["n_rows"] == 6 and built.summary["n_distinct_inputs"] == 3
    assert built.summary["rows_per_input"] == 2.0
    assert built.summary["inserts_inside_center_window"] == 6
    ids = built.table["input_id"].to_list()
    assert len(set(ids[:4])) == 1 and len(set(ids)) == 3
    assert sorted(built.inputs["n_rows"].to_list()) == [1, 1, 4]
    assert (built.inputs["sequence"].str.len_chars() == L).all()
    assert built.table["insert_start"].to_list() == [L // 2 - 8] * 6


def test_reference_flanks_plus_orientation_and_chromosome_ends(world):
    g = world.genome
    chrom = "chr1"
    s0, e0 = 200_000, 200_016
    plus = g.fetch(chrom, s0, e0)
    seq = embed_in_reference(plus, g, chrom, s0, e0, L)
    assert seq == g.fetch(chrom, s0 + 8 - L // 2, s0 + 8 + L // 2)      # the genome itself, + strand
    cons = pl.DataFrame({"row_id": ["p", "m"], "element_id": ["p", "m"], "chromosome": [chrom, chrom],
                         "start": [s0, s0], "end": [e0, e0], "strand": ["+", "-"],
                         "seq16": [plus, revcomp(plus)]})
    ins = prepare_inserts(cons, source="seq16", backbone="reference", element_orientation="strand")
    # the minus-strand 16-mer is reverse-complemented back to genomic +: both are the same input
    assert ins["insert"].to_list() == [plus, plus]
    built = build_sequences(ins, backbone="reference", genome=g)
    assert built.summary["n_distinct_inputs"] == 1
    oc = built.summary["orientation_check"]
    assert oc["mean_identity_as_inserted"] == 1.0 and oc["n_better_reversed"] == 0
    # 1-based coordinates shift the window by one base
    one = build_sequences(ins.head(1).with_columns(pl.col("start") + 1, pl.col("end") + 1),
                          backbone="reference", genome=g, coordinate_base=1)
    assert one.inputs["sequence"][0] == built.inputs["sequence"][0]
    # flanks past a chromosome end would be N: refused, naming the reason
    edge = ins.head(1).with_columns(pl.lit(100).alias("start"), pl.lit(116).alias("end"))
    with pytest.raises(UnsupportedSequenceError, match="chromosome end"):
        build_sequences(edge, backbone="reference", genome=g)


def test_sequences_join_is_checked_and_missing_sequences_are_counted():
    cons = pl.DataFrame({"row_id": ["a", "b", "c"], "element_id": ["e1", "e2", "e3"]})
    seqs = pl.DataFrame({"element_id": ["e1", "e2"], "sequence": ["ACGT" * 10, "TTGG" * 10]})
    drops = DropLog()
    out = prepare_inserts(cons, source="sequences", sequences=seqs, drops=drops)
    assert out["row_id"].to_list() == ["a", "b"] and out["insert_orientation"].unique().to_list() == ["as_given"]
    assert drops.frame().select("row_id", "reason").rows() == [("c", "no_sequence")]
    dup = pl.concat([seqs, seqs.head(1)])
    with pytest.raises(CardinalityError, match="not unique"):
        prepare_inserts(cons, source="sequences", sequences=dup)
