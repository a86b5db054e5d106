"""The stand-in AlphaGenome service (SIMULATED) against the real, unmodified SDK client
over real gRPC channels: round trips, sequence-derived scores, quantiles, model versions
and revisions, validation errors, every injected fault, quota, Atlas and the CLI.

Scorers are kept cheap (DNASE/ATAC centre masks; one RNA_SEQ gene-mask call) because
each scorer's quantile background is computed on first use.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import polars as pl
import pytest
from alphagenome.data import genome
from alphagenome.models import dna_client, variant_scorers
from alphagenome.protos.v1 import dna_model_pb2 as pb
from alphagenome.protos.v1 import dna_model_service_pb2 as svc
from alphagenome.protos.v1 import dna_model_service_pb2_grpc as svc_grpc

from standins import SIMULATED_DATA_SOURCE
from tests.fixtures_alphagenome import sdk_channel_for, standin_test_config

pytestmark = pytest.mark.slow

REC = variant_scorers.RECOMMENDED_VARIANT_SCORERS
DNASE, ATAC, RNA = REC["DNASE"], REC["ATAC"], REC["RNA_SEQ"]
MB = 2 ** 20
KB16 = 2 ** 14


def _snvs(world_dir: Path, n: int, offset: int = 0) -> list[genome.Variant]:
    df = pl.read_parquet(world_dir / "variants.parquet").filter(
        (pl.col("status") == "ok") & (pl.col("kind") == "snv"))
    df = df.unique(["chrom", "pos", "ref", "alt"]).sort("chrom", "pos", "alt").slice(offset, n)
    return [genome.Variant(r["chrom"], r["pos"], r["ref"], r["alt"]) for r in df.iter_rows(named=True)]


def _iv(v: genome.Variant, width: int = MB) -> genome.Interval:
    return v.reference_interval.resize(width)


def _other_alt(v: genome.Variant) -> genome.Variant:
    alt = next(b for b in "ACGT" if b not in (v.reference_bases, v.alternate_bases))
    return genome.Variant(v.chromosome, v.position, v.reference_bases, alt)


@pytest.fixture(scope="module")
def panel(world_dir, sdk_client):
    """40 SNVs scored with DNASE on 16 kb intervals; the one with the largest effect."""
    vs = _snvs(world_dir, 40, offset=200)
    out = sdk_client.score_variants([_iv(v, KB16) for v in vs], vs, [DNASE], max_workers=8, progress_bar=False)
    X = np.stack([o[0].X[0] for o in out])
    Q = np.stack([o[0].layers["quantiles"][0] for o in out])
    top = int(np.argmax(np.abs(X).max(axis=1)))
    return {"variants": vs, "X": X, "Q": Q, "top": vs[top], "outputs": out}


def _raw(client, v, width=KB16, scorers=(DNASE,), interval=None):
    return [a.X for a in client.score_variant(interval or _iv(v, width), v, list(scorers))]


# --------------------------------------------------------------------------- round trips

def test_score_variant_roundtrip_and_tidy(sdk_client, world_dir):
    v = _snvs(world_dir, 1, offset=321)[0]
    out = sdk_client.score_variant(_iv(v), v, [DNASE, RNA])
    assert len(out) == 2
    dn, rna = out
    assert dn.uns["variant_scorer"] == DNASE and rna.uns["variant_scorer"] == RNA
    assert str(dn.uns["variant"]) == str(v)
    tracks = pl.read_parquet(world_dir / "tracks.parquet").filter(pl.col("organism") == "HOMO_SAPIENS")
    n_dnase = tracks.filter(pl.col("output_type") == "DNASE").height
    assert dn.X.shape == (1, n_dnase) and dn.layers["quantiles"].shape == (1, n_dnase)
    assert list(dn.var["name"]) == tracks.filter(pl.col("output_type") == "DNASE")["name"].to_list()
    assert set(dn.var["data_source"]) == {SIMULATED_DATA_SOURCE}
    assert set(dn.var["strand"]) <= {"+", "-", "."}
    # gene-mask scorer: versioned gene ids with strand/name/type; merged tracks are unstranded
    assert rna.X.shape[0] >= 1 and set(rna.obs.columns) >= {"gene_id", "strand", "gene_name", "gene_type"}
    assert all("." in g for g in rna.obs["gene_id"]) and set(rna.obs["strand"]) <= {"+", "-"}
    assert set(rna.var["strand"]) == {"."}
    assert not np.isnan(rna.X).any()
    tidy = variant_scorers.tidy_scores(out)
    assert list(tidy.columns[-2:]) == ["raw_score", "quantile_score"]
    assert len(tidy) == n_dnase + rna.X.size
    assert tidy["gene_id"].dropna().map(lambda g: "." not in g).all()  # the SDK strips versions


def test_unmerged_gene_tracks_have_strand_nans(sdk_client, world_dir):
    v = _snvs(world_dir, 1, offset=321)[0]
    merged = sdk_client.score_variant(_iv(v), v, [RNA])[0]
    raw = sdk_client.score_variant(_iv(v), v, [RNA], merge_stranded_gene_tracks=False)[0]
    assert set(raw.var["strand"]) >= {"+", "-"}
    plus_gene = (raw.obs["strand"] == "+").to_numpy()
    minus_track = (raw.var["strand"] == "-").to_numpy()
    assert np.isnan(raw.X[np.ix_(plus_gene, minus_track)]).all()
    # the SDK's own client-side merge gives the server-side merge
    from alphagenome.models import variant_scoring_utils

    again = variant_scoring_utils.merge_stranded_gene_tracks(raw)
    np.testing.assert_array_equal(again.X, merged.X)
    assert list(again.var["name"]) == list(merged.var["name"])


def test_score_variants_keeps_order(panel):
    for v, o in zip(panel["variants"], panel["outputs"]):
        assert str(o[0].uns["variant"]) == str(v)
    tidy = variant_scorers.tidy_scores(panel["outputs"][:5])
    assert len(tidy) == 5 * panel["X"].shape[1]


def test_predict_sequence_and_metadata(sdk_client, alphagenome_standin, world_dir):
    seq = alphagenome_standin.core.genome.fetch("chr1", 100_000, 100_000 + KB16)
    out = sdk_client.predict_sequence(
        seq, requested_outputs=[dna_client.OutputType.DNASE, dna_client.OutputType.RNA_SEQ,
                                dna_client.OutputType.CHIP_HISTONE],
        ontology_terms=["CL:0000624"])
    assert out.dnase.values.shape[0] == KB16 and out.dnase.values.dtype == np.float32
    assert out.rna_seq.values.shape[0] == KB16 and out.chip_histone.resolution == 128
    assert out.chip_histone.values.shape[0] == KB16 // 128
    for td in (out.dnase, out.rna_seq, out.chip_histone):
        assert td.values.shape[1] >= 1 and (td.values >= 0).all()
        assert set(td.metadata["ontology_curie"]) == {"CL:0000624"}
    assert out.atac is None
    # the same sequence gives the same prediction
    again = sdk_client.predict_sequence(seq, requested_outputs=[dna_client.OutputType.DNASE],
                                        ontology_terms=["CL:0000624"])
    np.testing.assert_array_equal(again.dnase.values, out.dnase.values)
    # unsupported length: the SDK refuses before any call, the server with INVALID_ARGUMENT
    with pytest.raises(ValueError, match="not supported"):
        sdk_client.predict_sequence("ACGT" * 1000, requested_outputs=[dna_client.OutputType.DNASE],
                                    ontology_terms=None)
    stub = svc_grpc.DnaModelServiceStub(sdk_channel_for(alphagenome_standin.address))
    req = svc.PredictSequenceRequest(sequence="ACGT" * 1000, organism=pb.ORGANISM_HOMO_SAPIENS,
                                     requested_outputs=[pb.OUTPUT_TYPE_DNASE])
    with pytest.raises(grpc.RpcError) as e:
        list(stub.PredictSequence(iter([req])))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "4000" in e.value.details()
    # metadata: the world's catalogue (+ the stand-in's splicing / contact-map tracks, which
    # the demo catalogue lists none of), every track labelled SIMULATED
    from standins.catalogue import supplementary_tracks

    md = sdk_client.output_metadata().concatenate()
    tracks = pl.read_parquet(world_dir / "tracks.parquet")
    extra = supplementary_tracks("HOMO_SAPIENS").height
    assert len(md) == tracks.filter(pl.col("organism") == "HOMO_SAPIENS").height + extra
    assert set(md["data_source"]) == {SIMULATED_DATA_SOURCE}
    assert len(md[md["output_type"] == dna_client.OutputType.SPLICE_JUNCTIONS]) > 0
    mouse = sdk_client.output_metadata(dna_client.Organism.MUS_MUSCULUS).concatenate()
    assert len(mouse) == tracks.filter(pl.col("organism") == "MUS_MUSCULUS").height + \
        supplementary_tracks("MUS_MUSCULUS").height


# --------------------------------------------------------------------------- scores come from sequence

def test_scores_come_from_sequence(sdk_client, panel):
    v = panel["top"]
    x = _raw(sdk_client, v)[0]
    assert np.abs(x).max() > 0.01
    np.testing.assert_array_equal(_raw(sdk_client, v)[0], x)        # same input, same output
    assert not np.allclose(_raw(sdk_client, _other_alt(v))[0], x)  # another ALT
    # the model sees only the interval: put the variant 60 bp from the interval's edge
    iv = genome.Interval(v.chromosome, v.position - 60, v.position - 60 + KB16)
    assert not np.allclose(_raw(sdk_client, v, interval=iv)[0], x)
    # different variants get different scores (different flanks)
    assert len({tuple(np.round(r, 6)) for r in panel["X"]}) > len(panel["X"]) // 2


def test_second_server_gives_identical_answers(world_dir, panel, sdk_client):
    from standins.alphagenome import serve

    v = panel["top"]
    h = serve(world_dir, config=standin_test_config())
    try:
        other = dna_client.DnaClient(channel=sdk_channel_for(h.address))
        a = sdk_client.score_variant(_iv(v, KB16), v, [DNASE])[0]
        b = other.score_variant(_iv(v, KB16), v, [DNASE])[0]
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.layers["quantiles"], b.layers["quantiles"])
    finally:
        h.stop()


def test_quantiles_in_range_capped_and_rank_consistent(panel):
    X, Q = panel["X"], panel["Q"]
    assert np.all(np.abs(Q) <= 0.99999 + 1e-7) and Q.min() < 0 < Q.max()
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        assert np.all(np.diff(Q[order, j]) >= 0), f"track {j}"
    # a strong effect sits in the tail of the background
    i = np.unravel_index(np.argmax(np.abs(X)), X.shape)
    assert abs(Q[i]) > 0.9


def test_fold_differs_slightly_from_all_folds(make_sdk_client, panel):
    fold0 = make_sdk_client(model_version=dna_client.ModelVersion.FOLD_0)
    vs = panel["variants"][:12]
    X0 = np.stack([o[0].X[0] for o in fold0.score_variants([_iv(v, KB16) for v in vs], vs, [DNASE],
                                                           max_workers=8, progress_bar=False)])
    X = panel["X"][:12]
    assert not np.array_equal(X0, X)
    assert np.corrcoef(X0.ravel(), X.ravel())[0, 1] > 0.8


def test_revision_changes_scores_poison_and_quota(world_dir, panel, sdk_client):
    from standins.alphagenome import serve

    v, bad = panel["top"], panel["variants"][3]
    poison_key = f"{bad.chromosome}:{bad.position}:{bad.reference_bases}>{bad.alternate_bases}"
    # a bucket of 3 tokens; a 1 Mb 1-scorer call costs 1 token. The refill rate is tiny
    # (0.06 tokens/min: one token per 1000 s, longer than the test's timeout), so a slow
    # machine or a fresh server building its background cannot refill a token mid-test.
    h = serve(world_dir, config=standin_test_config(revision=1, poison=(poison_key,),
                                                    quota_tokens_per_minute=0.06, quota_burst_tokens=3))
    try:
        stub = svc_grpc.DnaModelServiceStub(sdk_channel_for(h.address))

        def call(var):
            req = svc.ScoreVariantRequest(interval=_iv(var).to_proto(), variant=var.to_proto(),
                                          organism=pb.ORGANISM_HOMO_SAPIENS, variant_scorers=[DNASE.to_proto()])
            return list(stub.ScoreVariant(iter([req])))

        other = dna_client.DnaClient(channel=sdk_channel_for(h.address))
        x1 = other.score_variant(_iv(v), v, [DNASE])[0].X            # token 1
        assert not np.allclose(x1, sdk_client.score_variant(_iv(v), v, [DNASE])[0].X)
        with pytest.raises(grpc.RpcError) as e:                        # poison: no token spent
            call(bad)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "poison" in e.value.details()
        call(v)                                                        # token 2
        call(v)                                                        # token 3
        with pytest.raises(grpc.RpcError) as e:
            call(v)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "Quota" in e.value.details()
        outcomes = [c.outcome for c in h.servicer.calls]
        assert outcomes == ["OK", "INVALID_ARGUMENT", "OK", "OK", "RESOURCE_EXHAUSTED"]
        assert [c.cost for c in h.servicer.calls] == [1.0, 0.0, 1.0, 1.0, 0.0]
    finally:
        h.stop()


# --------------------------------------------------------------------------- validation

def test_invalid_requests_get_invalid_argument(alphagenome_standin, panel):
    stub = svc_grpc.DnaModelServiceStub(sdk_channel_for(alphagenome_standin.address))
    v = panel["top"]

    def expect(req, *words):
        with pytest.raises(grpc.RpcError) as e:
            list(stub.ScoreVariant(iter([req])))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        for w in words:
            assert w in e.value.details()

    def req(var=v, **kw):
        base = dict(interval=_iv(v, KB16).to_proto(), variant=var.to_proto(),
                    organism=pb.ORGANISM_HOMO_SAPIENS, variant_scorers=[DNASE.to_proto()])
        return svc.ScoreVariantRequest(**{**base, **kw})

    alphagenome_standin.servicer.reset()
    expect(req(organism=pb.ORGANISM_UNSPECIFIED), "organism")
    expect(req(model_version="FOLD_9"), "model_version")
    far = genome.Variant(v.chromosome, v.position + 20_000, "A", "C")
    expect(req(var=far), "outside the interval")
    wrong_ref = next(b for b in "ACGT" if b != v.reference_bases)
    expect(req(var=genome.Variant(v.chromosome, v.position, wrong_ref, v.reference_bases)), "reference allele mismatch")
    expect(req(interval=genome.Interval(v.chromosome, 0, 1000).to_proto()), "not supported")
    calls = alphagenome_standin.servicer.calls
    assert [c.outcome for c in calls] == ["INVALID_ARGUMENT"] * 5 and not any(c.injected for c in calls)
    assert calls[1].model_version == "FOLD_9"


# --------------------------------------------------------------------------- faults

def _attempts(h, method="ScoreVariant"):
    return [(c.attempt, c.outcome, c.injected) for c in h.servicer.calls if c.method == method]


def test_resource_exhausted_is_retried_by_the_sdk(standin_fresh, make_sdk_client, instant_backoff, panel):
    c = make_sdk_client(metadata=[("x-fake-fail-first", "2"), ("x-fake-fail-code", "RESOURCE_EXHAUSTED")])
    v = panel["top"]
    out = c.score_variant(_iv(v, KB16), v, [DNASE])
    np.testing.assert_array_equal(out[0].X[0], panel["X"][panel["variants"].index(v)])
    assert _attempts(standin_fresh) == [(1, "RESOURCE_EXHAUSTED", True), (2, "RESOURCE_EXHAUSTED", True),
                                        (3, "OK", False)]
    assert len(instant_backoff) == 2


def test_internal_is_not_retried(standin_fresh, make_sdk_client, instant_backoff, panel):
    c = make_sdk_client(metadata=[("x-fake-fail-first", "1"), ("x-fake-fail-code", "INTERNAL")])
    v = panel["top"]
    with pytest.raises(grpc.RpcError) as e:
        c.score_variant(_iv(v, KB16), v, [DNASE])
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert _attempts(standin_fresh) == [(1, "INTERNAL", True)] and instant_backoff == []


def test_midstream_abort_is_retried(standin_fresh, make_sdk_client, instant_backoff, panel):
    c = make_sdk_client(metadata=[("x-fake-fail-first", "1"), ("x-fake-fail-midstream", "1"),
                                  ("x-fake-fail-code", "UNAVAILABLE")])
    v = panel["top"]
    out = c.score_variant(_iv(v, KB16), v, [DNASE, ATAC])
    assert len(out) == 2
    assert _attempts(standin_fresh) == [(1, "UNAVAILABLE", True), (2, "OK", False)]
    assert "after 1 message" in standin_fresh.servicer.calls[0].detail


def test_deadline_exceeded_code_and_unavailable_forever(standin_fresh, make_sdk_client, instant_backoff, panel):
    v = panel["top"]
    c = make_sdk_client(metadata=[("x-fake-fail-first", "1"), ("x-fake-fail-code", "DEADLINE_EXCEEDED")])
    with pytest.raises(grpc.RpcError) as e:
        c.score_variant(_iv(v, KB16), v, [DNASE])
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    standin_fresh.servicer.reset()
    c = make_sdk_client(metadata=[("x-fake-fail-code", "UNAVAILABLE")])  # every attempt fails
    with pytest.raises(grpc.RpcError) as e:
        c.score_variant(_iv(v, KB16), v, [DNASE])
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert [a for a, _, _ in _attempts(standin_fresh)] == [1, 2, 3, 4, 5] and len(instant_backoff) == 4


def test_hang_and_latency(standin_fresh, panel, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)  # server waits must not depend on time.sleep
    stub = svc_grpc.DnaModelServiceStub(sdk_channel_for(standin_fresh.address))
    v = panel["top"]
    req = svc.ScoreVariantRequest(interval=_iv(v, KB16).to_proto(), variant=v.to_proto(),
                                  organism=pb.ORGANISM_HOMO_SAPIENS, variant_scorers=[DNASE.to_proto()])
    t = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        list(stub.ScoreVariant(iter([req]), timeout=0.3, metadata=[("x-fake-hang-ms", "5000")]))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - t < 2.0
    # the server notices the client left and stops waiting; it logs the call when it stops.
    # Poll generously for the record (a loaded machine may be slow to get there); the timing
    # claim is the server-measured rec.seconds, not how long we waited.
    deadline = time.monotonic() + 15.0
    while not standin_fresh.servicer.calls and time.monotonic() < deadline:
        threading_wait(0.05)
    assert standin_fresh.servicer.calls, "no call record 15 s after the client's deadline fired"
    rec = standin_fresh.servicer.calls[0]
    assert rec.outcome == "CANCELLED" and rec.seconds < 2.0, (rec.outcome, rec.seconds)
    t = time.monotonic()
    list(stub.ScoreVariant(iter([req]), metadata=[("x-fake-latency-ms", "250")]))
    assert time.monotonic() - t >= 0.25
    # a hang limited to the first attempt then answers
    t = time.monotonic()
    list(stub.ScoreVariant(iter([req]), metadata=[("x-fake-hang-ms", "200"), ("x-fake-fail-first", "1")]))
    assert time.monotonic() - t >= 0.2


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


# --------------------------------------------------------------------------- Atlas

def test_atlas_through_the_sdk_client(atlas_client, sdk_client, panel, alphagenome_standin):
    v = panel["top"]
    res = atlas_client.query_variant(v, requested_scorers=["DNASE", "RNA_SEQ"])
    assert set(res) == {"DNASE", "RNA_SEQ"}
    live = sdk_client.score_variant(_iv(v), v, [DNASE, RNA])
    np.testing.assert_array_equal(res["DNASE"].X, live[0].X)
    np.testing.assert_array_equal(res["DNASE"].layers["quantiles"], live[0].layers["quantiles"])
    np.testing.assert_array_equal(res["RNA_SEQ"].X, live[1].X)
    assert list(res["RNA_SEQ"].obs["gene_id"]) == list(live[1].obs["gene_id"])
    # batch with an ontology filter (field mask: tracks come from scorer_metadata)
    meta = atlas_client.scorer_metadata()
    assert {"DNASE", "ATAC", "RNA_SEQ", "CHIP_HISTONE"} <= set(meta) and meta["DNASE"].is_signed
    vs = panel["variants"][:4]
    batch = atlas_client.query_variants(vs, requested_scorers=["DNASE"], ontology_terms=["CL:0000624"],
                                        progress_bar=False)
    assert batch["DNASE"].X.shape == (4, 1)
    assert set(batch["DNASE"].var["ontology_curie"]) == {"CL:0000624"}
    # an interval: 12 bp = 36 SNVs over two pages of 32
    alphagenome_standin.servicer.reset()
    iv = genome.Interval(v.chromosome, v.position - 6, v.position + 6)
    inter = atlas_client.query_interval(iv, requested_scorers=["DNASE"], progress_bar=False)
    assert inter["DNASE"].X.shape[0] == 36
    assert [c.method for c in alphagenome_standin.servicer.calls].count("ListDenseVariantScores") == 2
    # REF mismatch -> INVALID_ARGUMENT -> ValueError in the client
    wrong = next(b for b in "ACGT" if b != v.reference_bases)
    with pytest.raises(ValueError, match="reference allele mismatch"):
        atlas_client.query_variant(genome.Variant(v.chromosome, v.position, wrong, v.reference_bases),
                                   requested_scorers=["DNASE"])


# --------------------------------------------------------------------------- CLI

def test_cli_serves_and_stops_on_sigterm(world_dir, tmp_path):
    port_file = tmp_path / "ag.port"
    proc = subprocess.Popen([sys.executable, "-m", "agval", "standin", "alphagenome", "--world", str(world_dir),
                             "--port", "0", "--port-file", str(port_file), "--latency-ms", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "stand-in did not start"
            threading_wait(0.05)
        port = int(port_file.read_text())
        client = dna_client.DnaClient(channel=sdk_channel_for(f"127.0.0.1:{port}"))
        assert len(client.output_metadata().concatenate()) > 0
        # a second server on the same port: a clear error, exit code 2
        dup = subprocess.run([sys.executable, "-m", "agval", "standin", "alphagenome", "--world", str(world_dir),
                              "--port", str(port)], capture_output=True, text=True, timeout=60)
        assert dup.returncode == 2 and "in use" in dup.stderr
        os.kill(proc.pid, signal.SIGTERM)
        t = time.monotonic()
        assert proc.wait(10) == 0 and time.monotonic() - t < 5
        assert "listening on 127.0.0.1:" in proc.stdout.read().decode()
        assert not port_file.exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_cli_unknown_world_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "agval", "standin", "alphagenome", "--world", str(tmp_path / "nope"),
                        "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "world" in r.stderr and "agval world build" in r.stderr
