"""The stand-in serves all 19 recommended scorers with the SDK's output shapes, and agval's
bulk decoder gives exactly the SDK's ``tidy_scores`` table for each of them (SIMULATED)."""

from __future__ import annotations

import grpc
import numpy as np
import polars as pl
import pytest
from alphagenome.models import dna_client
from alphagenome.models import variant_scorers as vs

from agval.coords import Variant
from agval.scoring.alphagenome import AlphaGenomeBackend

WIDTH = 2 ** 20
REC = dict(vs.RECOMMENDED_VARIANT_SCORERS)
NEW = ("RNA_SEQ_ACTIVE", "SPLICE_SITES", "SPLICE_SITE_USAGE", "SPLICE_JUNCTIONS", "POLYADENYLATION", "CONTACT_MAPS")


@pytest.fixture(scope="module")
def core(alphagenome_standin):
    return alphagenome_standin.servicer.core


@pytest.fixture(scope="module")
def donor(core):
    """A '+' gene with >= 3 exons and a variant at the first intron base of its first
    intron that makes the donor's GT (ALT = G; the REF base is not G)."""
    for gid, strand, chrom in core.genes.select("gene_id", "strand", "chrom").iter_rows():
        b = core._exon_blocks.get(gid)
        if strand != "+" or b is None or len(b) < 3:
            continue
        e = int(np.sort(b, axis=0)[0, 1])
        ref = core.genome.fetch(chrom, e, e + 1)
        if ref in "ACT":
            return gid, e, Variant(chrom, e + 1, ref, "G")
    pytest.skip("no suitable gene in the world")


def _adatas(client, v: Variant, scorers, **kw):
    return client.score_variant(v.interval(WIDTH), v.to_sdk(), scorers, **kw)


def test_all_19_recommended_scorers_are_served_with_sdk_shapes(sdk_client, donor, core):
    gid, e, v = donor
    scorers = list(REC.values())
    assert len(scorers) == 19
    out = _adatas(sdk_client, v, scorers)
    assert len(out) == 19
    by = dict(zip(REC, out))
    for name, a in by.items():
        s = REC[name]
        assert a.uns["variant_scorer"] == s and "quantiles" in a.layers, name
        tracks = core.tracks("HOMO_SAPIENS", s.requested_output.name)
        if name in ("CONTACT_MAPS",) or isinstance(s, vs.CenterMaskScorer):
            assert a.X.shape == (1, tracks.height) and a.obs.empty, name
        else:
            assert {"gene_id", "strand", "gene_name", "gene_type"} <= set(a.obs.columns), name
        if not s.is_signed and a.X.size:
            assert np.nanmin(a.X) >= 0 and 0 <= np.nanmin(a.layers["quantiles"]) <= \
                np.nanmax(a.layers["quantiles"]) <= 0.99999, name
    # merged (the client's default): SPLICE_SITES has one donor and one acceptor track
    ss = by["SPLICE_SITES"]
    assert ss.var["name"].tolist() == ["donor", "acceptor"] and set(ss.var["strand"].astype(str)) == {"."}
    row = ss.obs.index[ss.obs["gene_id"] == gid][0]
    donor_delta, acceptor_delta = ss[row].X[0]
    assert donor_delta > 0.1 and acceptor_delta == 0  # the variant makes a donor GT
    others = ss[ss.obs["gene_id"] != gid].X
    assert np.all(others[~np.isnan(others)] == 0)  # no other gene's splice site is near
    usage = by["SPLICE_SITE_USAGE"]
    u = usage[usage.obs["gene_id"] == gid].X[0]
    assert np.all(u > 0) and np.all(u <= donor_delta + 1e-6)
    # junctions: one row per (gene, intron) of the genes whose body holds the variant
    j = by["SPLICE_JUNCTIONS"]
    assert {"junction_Start", "junction_End"} <= set(j.obs.columns)
    first = j.obs[(j.obs["gene_id"] == gid) & (j.obs["junction_Start"] == e)]
    assert len(first) == 1
    blocks = np.sort(core._exon_blocks[gid], axis=0)
    assert int(first["junction_End"].iloc[0]) == int(blocks[1, 0])
    assert np.all(j[first.index].X > 0)
    later = j.obs.index[(j.obs["gene_id"] == gid) & (j.obs["junction_Start"] > e + 100)]
    assert np.all(j[later].X == 0)
    # active allele: a gene far from the variant scores its REF level whatever the ALT
    act = by["RNA_SEQ_ACTIVE"]
    assert np.nanmin(act.X) > 0
    other = Variant(v.chrom, v.pos, v.ref, "T" if v.ref != "T" else "C")
    act2 = dict(zip(REC, _adatas(sdk_client, other, scorers)))["RNA_SEQ_ACTIVE"]
    far = act.obs["gene_id"] != gid
    np.testing.assert_array_equal(act[far].X, act2[far].X)


def test_polyadenylation_is_human_only(sdk_channel, donor):
    """The SDK refuses a mouse paQTL request itself; the stand-in refuses it too."""
    from alphagenome.protos.v1 import dna_model_service_pb2 as svc
    from alphagenome.protos.v1 import dna_model_service_pb2_grpc as svc_grpc

    _, _, v = donor
    req = svc.ScoreVariantRequest(interval=v.interval(WIDTH).to_proto(), variant=v.to_sdk().to_proto(),
                                  organism=dna_client.Organism.MUS_MUSCULUS.to_proto(),
                                  variant_scorers=[REC["POLYADENYLATION"].to_proto()])
    with pytest.raises(grpc.RpcError) as e:
        list(svc_grpc.DnaModelServiceStub(sdk_channel).ScoreVariant(iter([req])))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "HOMO_SAPIENS" in e.value.details()


@pytest.mark.parametrize("merge", [True, False])
def test_fast_decode_equals_sdk_tidy_scores_for_every_recommended_scorer(alphagenome_standin, donor, merge):
    """agval's bulk decoder vs the SDK's ``score_variant`` + ``tidy_scores`` on the same answers."""
    _, _, v = donor
    far = Variant(v.chrom, v.pos, v.ref, "T" if v.ref != "T" else "C")
    fast = AlphaGenomeBackend(alphagenome_standin.address, merge_stranded_gene_tracks=merge)
    sdk = AlphaGenomeBackend(alphagenome_standin.address, decode="sdk", merge_stranded_gene_tracks=merge)
    try:
        for name, s in REC.items():
            for var in ((v, far) if merge else (v,)):
                a = fast.score_one(var, [s], interval_width=WIDTH, organism="human")
                b = sdk.score_one(var, [s], interval_width=WIDTH, organism="human")
                assert a.height > 0, name
                key = ["track_name", "track_strand", "gene_id", "junction_start"]
                assert a.sort(key).equals(b.sort(key)), (name, merge)
                if not merge and name in ("SPLICE_SITES", "SPLICE_SITE_USAGE", "RNA_SEQ_ACTIVE"):
                    # unmerged: strand-mismatched (gene, track) cells are dropped, as tidy_scores does
                    assert not a.filter((pl.col("gene_strand") == "+") & (pl.col("track_strand") == "-")).height
                    assert set(a["track_strand"]) >= {"+", "-"}
        all19 = fast.score_one(v, list(REC.values()), interval_width=WIDTH, organism="human")
        assert all19["scorer"].n_unique() == 19 - (0 if all19.filter(
            pl.col("output_type") == "SPLICE_JUNCTIONS").height else 1)
    finally:
        fast.close()
        sdk.close()
