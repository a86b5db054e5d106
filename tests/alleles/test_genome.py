from agval.genome import ReferenceGenome


def test_fetch_is_zero_based_half_open_and_pads_with_n(tmp_path):
    fa = tmp_path / "g.fa"
    fa.write_text(">chr1\nACGTACGTAC\nGG\n>chr2\nTTTT\n")
    g = ReferenceGenome(fa)
    assert g.lengths == {"chr1": 12, "chr2": 4}
    assert g.fetch("chr1", 0, 4) == "ACGT"
    assert g.fetch("1", 8, 12) == "ACGG"
    assert g.fetch("chr2", -2, 6) == "NNTTTTNN"
    assert g.ref_matches("chr1", 1, "A") and g.ref_matches("chr1", 2, "CGT")
    assert not g.ref_matches("chr1", 1, "C")
    assert g.fetch("chr2", 10, 12) == "NN" and g.fetch("chr2", -5, -2) == "NNN"
