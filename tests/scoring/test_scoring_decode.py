"""The fast decoder of ScoreVariant streams gives exactly the SDK's tidy_scores table.

Uses the SDK's own test technique (an autospec'd ``grpc.Channel`` whose stream returns
protos packed with the SDK's ``tensor_utils``), so no server is needed; the stand-in
tests repeat the comparison over a real channel.
"""

from __future__ import annotations

from unittest import mock

import grpc
import ml_dtypes
import numpy as np
import polars as pl
import pytest
from alphagenome import tensor_utils
from alphagenome.models import variant_scorers as vs
from alphagenome.protos import tensor_pb2
from alphagenome.protos.v1 import dna_model_pb2, dna_model_service_pb2

from agval.coords import Variant
from agval.scoring.alphagenome import AlphaGenomeBackend, deadline_interceptor

SCORERS = [vs.RECOMMENDED_VARIANT_SCORERS["DNASE"], vs.RECOMMENDED_VARIANT_SCORERS["RNA_SEQ"]]


def _track(name, strand, curie=None, assay=None, bios=None, hist=None, src="encode"):
    t = dna_model_pb2.TrackMetadata(name=name, strand=strand, data_source=src)
    if curie:
        typ, i = curie.split(":")
        t.ontology_term.CopyFrom(dna_model_pb2.OntologyTerm(
            ontology_type=dna_model_pb2.OntologyType.Value(f"ONTOLOGY_TYPE_{typ}"), id=int(i)))
    if assay:
        t.assay = assay
    if bios:
        t.biosample.CopyFrom(dna_model_pb2.Biosample(name=bios, type=dna_model_pb2.BIOSAMPLE_TYPE_TISSUE))
    if hist:
        t.histone_mark_code = hist
    return t


def _responses(variant: Variant, *, with_quantiles=True, dtype=np.float32, chunk=64):
    P, M, U = dna_model_pb2.STRAND_POSITIVE, dna_model_pb2.STRAND_NEGATIVE, dna_model_pb2.STRAND_UNSTRANDED
    rng = np.random.default_rng(variant.pos)
    outs = []
    # DNASE: 1 obs x 3 tracks
    tracks = [_track("UBERON:0000948 DNase-seq", U, "UBERON:0000948", "DNase-seq", "heart"),
              _track("CL:0000057 DNase-seq", U, "CL:0000057", "DNase-seq"),
              _track("EFO:0002067 DNase-seq", U, "EFO:0002067")]
    k = 2 if with_quantiles else 1
    outs.append((rng.normal(size=(k, 1, 3)), tracks, []))
    # RNA_SEQ: 2 genes x 3 stranded tracks (unmerged: mismatched strands are dropped by tidy)
    tracks = [_track("liver +", P, "UBERON:0002107", "total RNA-seq", "liver"),
              _track("liver -", M, "UBERON:0002107", "total RNA-seq", "liver"),
              _track("lung .", U, "UBERON:0002048", "polyA plus RNA-seq", "lung", src="gtex")]
    genes = [dna_model_pb2.GeneScorerMetadata(gene_id="ENSG00000000001.4", name="PITX2", strand=P,
                                              type="protein_coding"),
             dna_model_pb2.GeneScorerMetadata(gene_id="ENSG00000000002.1", name="TBX5", strand=M)]
    outs.append((rng.normal(size=(k, 2, 3)), tracks, genes))
    msgs = []
    for values, tm, gm in outs:
        t, chunks = tensor_utils.pack_tensor(values.astype(dtype), bytes_per_chunk=chunk,
                                             compression_type=tensor_pb2.COMPRESSION_TYPE_ZSTD)
        md = dna_model_pb2.VariantMetadata(variant=variant.to_sdk().to_proto(), track_metadata=tm,
                                           gene_metadata=gm)
        msgs.append(dna_model_service_pb2.ScoreVariantResponse(
            output=dna_model_pb2.ScoreVariantOutput(variant_data=dna_model_pb2.VariantData(values=t, metadata=md))))
        msgs.extend(dna_model_service_pb2.ScoreVariantResponse(tensor_chunk=c) for c in chunks)
    return msgs


def _backend(decode, **kw):
    def gen(requests, metadata=None, **_):
        for req in requests:
            v = Variant(req.variant.chromosome, req.variant.position, req.variant.reference_bases,
                        req.variant.alternate_bases)
            yield from _responses(v, **kw)

    stream = mock.create_autospec(grpc.StreamStreamMultiCallable, side_effect=gen)
    channel = mock.create_autospec(grpc.Channel)
    channel.stream_stream.return_value = stream
    return AlphaGenomeBackend(channel=channel, decode=decode, api_key="k")


@pytest.mark.parametrize("kw", [{}, {"with_quantiles": False}, {"dtype": ml_dtypes.bfloat16, "chunk": 16}])
def test_fast_decode_equals_sdk_tidy_scores(kw):
    v = Variant("chr1", 5000, "A", "G")
    fast = _backend("fast", **kw).score_one(v, SCORERS, interval_width=16384, organism="human")
    sdk = _backend("sdk", **kw).score_one(v, SCORERS, interval_width=16384, organism="human")
    key = ["scorer", "track_name", "gene_id"]
    assert fast.sort(key).equals(sdk.sort(key))
    assert fast.height == 3 + 4  # 2 genes x 3 tracks minus 2 strand-mismatched cells
    g = fast.filter(pl.col("scorer") == str(SCORERS[1]))
    assert set(g["gene_id"]) == {"ENSG00000000001", "ENSG00000000002"}
    assert not g.filter((pl.col("gene_strand") == "+") & (pl.col("track_strand") == "-")).height
    assert fast["variant_key"].unique().to_list() == [v.key]
    assert set(fast["output_type"]) == {"DNASE", "RNA_SEQ"}
    assert (fast["quantile_score"].null_count() == 0) == kw.get("with_quantiles", True)


def test_deadline_interceptor_sets_timeout_only_when_absent():
    seen = []

    def cont(details, req):
        seen.append(details.timeout)

    it = deadline_interceptor(7.5)
    D = type("D", (), {"method": "/m", "timeout": None, "metadata": (), "credentials": None,
                       "wait_for_ready": None, "compression": None})
    it.intercept_stream_stream(cont, D(), iter([]))
    D.timeout = 2.0
    it.intercept_unary_stream(cont, D(), None)
    assert seen == [7.5, 2.0]
