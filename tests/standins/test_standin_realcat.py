"""The stand-in AlphaGenome service (SIMULATED) on the real 5,563-track human catalogue,
and the first-use race of concurrent RNA_SEQ calls.

The real-catalogue tests read AlphaGenome's track metadata CSV (never copied into the
repository) and are skipped when it is absent; the world has the small genome, so it
builds in seconds, and is built once per session.
"""

from __future__ import annotations

import threading

import numpy as np
import polars as pl
import pytest
from alphagenome.data import genome
from alphagenome.models import dna_client, variant_scorers
from alphagenome.models.v1 import variant_scoring_utils

from agval.errors import InputError
from standins import SIMULATED_DATA_SOURCE
from standins.catalogue import real_catalogue_path
from tests.fixtures_alphagenome import sdk_channel_for, standin_test_config

pytestmark = pytest.mark.slow

REC = variant_scorers.RECOMMENDED_VARIANT_SCORERS
CSV = real_catalogue_path()
needs_csv = pytest.mark.skipif(not CSV.is_file(), reason=f"real track catalogue not available ({CSV})")
_STRAND = {"POSITIVE": "+", "NEGATIVE": "-", "UNSTRANDED": "."}


def _csv() -> pl.DataFrame:
    return pl.read_csv(CSV, infer_schema_length=0)


@pytest.fixture(scope="session")
def real_world_dir(tmp_path_factory):
    if not CSV.is_file():
        pytest.skip(f"real track catalogue not available ({CSV})")
    from standins.world import build_world

    return build_world(tmp_path_factory.mktemp("realcat") / "w", seed=7, size="small", catalogue="real")


@pytest.fixture(scope="module")
def real_standin(real_world_dir):
    from standins.alphagenome import serve

    handle = serve(real_world_dir, port=0, config=standin_test_config())
    try:
        yield handle
    finally:
        handle.stop(grace=0.2)


@pytest.fixture(scope="module")
def real_client(real_standin):
    ch = sdk_channel_for(real_standin.address)
    yield dna_client.DnaClient(channel=ch)
    ch.close()


def _snvs(world_dir, n: int, offset: int = 0) -> list[genome.Variant]:
    df = pl.read_parquet(world_dir / "variants.parquet").filter(
        (pl.col("status") == "ok") & (pl.col("kind") == "snv"))
    df = df.unique(["chrom", "pos", "ref", "alt"]).sort("chrom", "pos", "alt").slice(offset, n)
    return [genome.Variant(r["chrom"], r["pos"], r["ref"], r["alt"]) for r in df.iter_rows(named=True)]


@needs_csv
def test_real_catalogue_world_has_every_real_track(real_world_dir):
    import json

    tracks = pl.read_parquet(real_world_dir / "tracks.parquet")
    human = tracks.filter(pl.col("organism") == "HOMO_SAPIENS")
    csv = _csv()
    assert human.height == csv.height == 5_563
    want = dict(csv.group_by("output_type").len().iter_rows())
    assert dict(human.group_by("output_type").len().iter_rows()) == want
    assert want["RNA_SEQ"] == 667 and want["DNASE"] == 305 and want["CHIP_TF"] == 1_617
    assert sorted(human["name"].to_list()) == sorted(csv["name"].to_list())
    assert set(tracks["data_source"]) == {SIMULATED_DATA_SOURCE}
    assert set(human["strand"]) == {"+", "-", "."}
    hist = human.filter(pl.col("output_type") == "CHIP_HISTONE")
    assert hist["histone_mark"].null_count() == 0 and "H3K27ac" in set(hist["histone_mark"])
    assert not human["biosample_name"].str.contains("\\", literal=True).any()
    assert tracks.filter(pl.col("organism") == "MUS_MUSCULUS").height > 0  # mouse stays the demo's
    meta = json.loads((real_world_dir / "world.json").read_text())
    assert meta["catalogue"]["kind"] == "real" and meta["counts"]["tracks"] == tracks.height


@needs_csv
def test_metadata_through_the_sdk_matches_the_csv(real_client):
    md = real_client.output_metadata(dna_client.Organism.HOMO_SAPIENS)
    csv = _csv()
    assert len(md.concatenate()) == 5_563
    for ot, n in csv.group_by("output_type").len().iter_rows():
        df = getattr(md, ot.lower())
        assert df is not None and len(df) == n, ot
    rna = md.rna_seq
    want = csv.filter(pl.col("output_type") == "RNA_SEQ")
    assert rna["name"].tolist() == want["name"].to_list()
    assert rna["strand"].tolist() == [_STRAND[s] for s in want["strand"].to_list()]
    assert rna["ontology_curie"].tolist() == want["ontology_curie"].to_list()
    assert set(rna["data_source"]) == {SIMULATED_DATA_SOURCE}
    assert "junction_" in md.splice_junctions["name"].iloc[0]  # junction metadata for splice junctions


@needs_csv
def test_scored_variant_has_every_track_of_its_output_type(real_client, real_standin, real_world_dir):
    v = _snvs(real_world_dir, 1, offset=777)[0]
    iv = v.reference_interval.resize(2 ** 20)
    dn, rna = real_client.score_variant(iv, v, [REC["DNASE"], REC["RNA_SEQ"]])
    csv = _csv()
    assert dn.X.shape == (1, 305) and dn.var["name"].tolist() == \
        csv.filter(pl.col("output_type") == "DNASE")["name"].to_list()
    # RNA_SEQ: genes x tracks, stranded tracks merged by the SDK's own rule
    meta = csv.filter(pl.col("output_type") == "RNA_SEQ").to_pandas()
    meta["strand"] = [_STRAND[s] for s in meta["strand"]]
    pos, _ = variant_scoring_utils._calculate_track_masks(meta)
    assert rna.X.shape[1] == int(pos.sum()) == 371 and rna.X.shape[0] >= 5
    assert np.isfinite(rna.X).all() and np.isfinite(dn.X).all()
    q = rna.layers["quantiles"]
    assert np.nanmax(np.abs(q)) <= 0.99999
    # tracks of one biosample share a model context; distinct contexts give distinct scores
    assert len({round(float(x), 9) for x in dn.X[0]}) > 10
    # the stand-in caches one column per distinct model context, and answers alike from it
    cached = [raw for raw, _ in real_standin.core._results.values()]
    assert cached and max(r.shape[1] for r in cached) < 305
    dn2, rna2 = real_client.score_variant(iv, v, [REC["DNASE"], REC["RNA_SEQ"]])
    np.testing.assert_array_equal(dn2.X, dn.X)
    np.testing.assert_array_equal(rna2.layers["quantiles"], rna.layers["quantiles"])
    # splicing and contact maps are listed but not computed
    from alphagenome.models import dna_output

    with pytest.raises(Exception) as e:
        real_client.predict_sequence("A" * 16_384, requested_outputs=[dna_output.OutputType.CONTACT_MAPS],
                                     ontology_terms=None)
    assert "UNIMPLEMENTED" in str(e.value)


@needs_csv
def test_missing_catalogue_is_a_clear_error(tmp_path, monkeypatch):
    from standins.world import build_world

    monkeypatch.setenv("AGVAL_TRACK_METADATA", str(tmp_path / "nope.csv"))
    with pytest.raises(InputError, match="real track catalogue is not there"):
        build_world(tmp_path / "w", size="small", catalogue="real")
    assert not (tmp_path / "w").exists()  # failed before writing anything


def test_concurrent_first_rna_calls_all_succeed(world_dir, monkeypatch):
    """Concurrent first RNA_SEQ calls on a fresh server once failed with KeyError
    'ALL_FOLDS' (the model was visible before its gene scorer). A slow scorer
    construction and staggered arrivals make the old code fail every time."""
    import time

    from standins.alphagenome import serve
    from standins.scoring_math import LocalScorer

    class SlowScorer(LocalScorer):
        def __init__(self, *a, **k):
            time.sleep(0.3)
            super().__init__(*a, **k)

    handle = serve(world_dir, port=0, config=standin_test_config(heavy_background_size=4))
    try:
        monkeypatch.setattr(handle.core, "_LocalScorer", SlowScorer)
        vs = _snvs(world_dir, 8, offset=1_000)
        ch = sdk_channel_for(handle.address)
        client = dna_client.DnaClient(channel=ch)
        barrier = threading.Barrier(len(vs))
        errors: list = []

        def call(i, v):
            barrier.wait()
            time.sleep(0.04 * i)  # staggered arrivals: some come while the first builds the model
            try:
                client.score_variant(v.reference_interval.resize(2 ** 20), v, [REC["RNA_SEQ"]])
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)

        threads = [threading.Thread(target=call, args=(i, v)) for i, v in enumerate(vs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        ch.close()
        assert errors == []
        outcomes = [c.outcome for c in handle.servicer.calls if c.method == "ScoreVariant"]
        assert outcomes == ["OK"] * len(vs)
    finally:
        handle.stop(grace=0.2)


def test_prewarm_fills_the_gene_cache_and_changes_no_answer(world_dir, alphagenome_standin, sdk_client):
    from standins.alphagenome import serve

    v = _snvs(world_dir, 1, offset=4_321)[0]
    iv = v.reference_interval.resize(2 ** 20)
    want = sdk_client.score_variant(iv, v, [REC["RNA_SEQ"], REC["DNASE"]])
    handle = serve(world_dir, port=0, config=standin_test_config(prewarm=True))
    try:
        eng = handle.core._engines["ALL_FOLDS"]
        n_genes = pl.read_parquet(world_dir / "genes.parquet").height
        assert len(eng._ref) == n_genes
        assert len(handle.core.backgrounds.keys()) == 2
        ch = sdk_channel_for(handle.address)
        got = dna_client.DnaClient(channel=ch).score_variant(iv, v, [REC["RNA_SEQ"], REC["DNASE"]])
        ch.close()
        assert len(eng._ref) == n_genes  # nothing new computed
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.X, b.X)
            np.testing.assert_array_equal(a.layers["quantiles"], b.layers["quantiles"])
    finally:
        handle.stop(grace=0.2)


@needs_csv
def test_tiled_binned_predictions_equal_one_piece(real_standin, monkeypatch):
    import standins.alphagenome.servicer as servicer_mod

    core = real_standin.core
    ctxs = core.contexts("HOMO_SAPIENS", "CHIP_HISTONE")[:200]
    seq = core.genome.fetch("chr1", 300_000, 300_000 + 40_960)
    bm = core.batch_model("ALL_FOLDS")
    whole = bm.tracks(seq, ctxs)
    want = whole.reshape(320, 128, len(ctxs)).mean(axis=1)
    monkeypatch.setattr(servicer_mod, "PREDICT_TILE", 8_192)
    got = core._tiled_contexts(bm, seq, ctxs, 128)
    assert got.shape == (320, 200)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(core._tiled_contexts(bm, seq, ctxs[:3], 1), whole[:, :3])


@needs_csv
def test_cli_builds_the_real_catalogue_byte_identically(real_world_dir, tmp_path):
    from typer.testing import CliRunner

    from standins.cli.world import app

    runner = CliRunner()
    res = runner.invoke(app, ["build", "--out", str(tmp_path / "w"), "--size", "small", "--catalogue", "real",
                              "--track-metadata", str(CSV)])
    assert res.exit_code == 0, res.output
    assert "5585 tracks (real catalogue" in res.output and "SIMULATED" in res.output
    for name in ("tracks.parquet", "variants.parquet", "world.json"):
        assert (tmp_path / "w" / name).read_bytes() == (real_world_dir / name).read_bytes(), name
    res = runner.invoke(app, ["build", "--out", str(tmp_path / "x"), "--catalogue", "bogus"])
    assert isinstance(res.exception, InputError) and "demo, real" in str(res.exception)
