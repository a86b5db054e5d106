"""The foundation: coordinates, errors, joins, drop log, schema registry, run records."""

from __future__ import annotations

import json

import polars as pl
import pytest

from agval import schema
from agval.coords import Build, Variant, is_palindromic, normalize_chrom, require_build, revcomp
from agval.drops import DropLog
from agval.errors import (BuildMismatchError, CardinalityError, InputError, MissingColumnError,
                          SimulatedResultsError)
from agval.frames import checked_join
from agval.runs import RunRecord, load_manifest


def test_variant_is_one_based_and_validated():
    v = Variant("chr1", 100, "A", "G")
    assert v.key == "chr1:100:A>G"
    assert (v.start0, v.end0) == (99, 100)
    assert Variant.parse("chr1_100_A_G_b38") == v
    sdk = v.to_sdk()
    assert (sdk.chromosome, sdk.position, sdk.reference_bases) == ("chr1", 100, "A")
    with pytest.raises(InputError, match="1-based"):
        Variant("chr1", 0, "A", "G")
    with pytest.raises(InputError, match="ACGT"):
        Variant("chr1", 5, "N", "G")
    with pytest.raises(InputError, match="identical"):
        Variant("chr1", 5, "A", "A")
    with pytest.raises(InputError, match="chr"):
        Variant("1", 5, "A", "G")


def test_coordinate_helpers():
    assert normalize_chrom(1) == "chr1" and normalize_chrom("chrx") == "chrX" and normalize_chrom("MT") == "chrM"
    assert revcomp("AACG") == "CGTT"
    assert is_palindromic("A", "T") and is_palindromic("C", "G") and not is_palindromic("A", "G")
    require_build("GRCh38")
    with pytest.raises(BuildMismatchError, match="hg19"):
        require_build("hg19")
    assert Build.parse("b37") is Build.GRCh37


def test_input_error_names_file_column_row():
    e = InputError("not a number", file="qtl.csv", column="beta", row=7)
    assert str(e) == "qtl.csv, column 'beta', row 7: not a number"
    m = MissingColumnError("slope", file="gtex.txt", available=["pval_nominal"])
    assert "slope" in str(m) and "gtex.txt" in str(m) and "pval_nominal" in str(m)


def test_checked_join_refuses_exploding_merges():
    left = pl.DataFrame({"k": ["a", "a", "b"], "x": [1, 2, 3]})
    right_dup = pl.DataFrame({"k": ["a", "a", "b"], "y": [1, 2, 3]})
    with pytest.raises(CardinalityError, match="right side"):
        checked_join(left, right_dup, "k", validate="m:1")
    with pytest.raises(CardinalityError, match="left side"):
        checked_join(left, right_dup.unique("k"), "k", validate="1:1")
    with pytest.raises(CardinalityError, match="max_rows"):
        checked_join(left, right_dup, "k", validate="m:m")
    with pytest.raises(CardinalityError, match="more than the allowed"):
        checked_join(left, right_dup, "k", validate="m:m", max_rows=4)
    out = checked_join(left, right_dup.unique("k", keep="first"), "k", validate="m:1")
    assert out.height == left.height


def test_schema_roundtrip_versions_and_upgrades(tmp_path):
    v1 = schema.TableFormat("t-test", 1, {"a": pl.Int64})
    p = schema.write_table(pl.DataFrame({"a": [1, 2]}), tmp_path / "t.parquet", v1)
    assert schema.read_format(p) == ("t-test", 1)
    v2 = schema.TableFormat("t-test2", 2, {"a": pl.Int64, "b": pl.Utf8},
                            upgraders={1: lambda df: df.with_columns(pl.lit("x").alias("b"))})
    p2 = schema.write_table(pl.DataFrame({"a": [1]}), tmp_path / "old.parquet",
                            schema.TableFormat("t-test2", 1, {"a": pl.Int64}))
    assert schema.read_table(p2, v2).to_dicts() == [{"a": 1, "b": "x"}]
    with pytest.raises(InputError, match="expected a 't-test2'"):
        schema.read_table(p, v2)
    with pytest.raises(InputError, match="lacks columns"):
        schema.write_table(pl.DataFrame({"z": [1]}), tmp_path / "bad.parquet", v1)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary debris


def test_drop_log_funnel():
    d = DropLog()
    d.add("lookup", "notfound", row_id="r1")
    d.add_frame(pl.DataFrame({"row_id": ["r2", "r3"], "detail": ["x", "y"]}), stage="harmonize", reason="ref_mismatch")
    f = d.funnel()
    assert f.to_dicts()[0] == {"stage": "harmonize", "reason": "ref_mismatch", "n": 2}
    assert len(d) == 3
    with pytest.raises(ValueError):
        d.add_frame(pl.DataFrame({"row_id": ["r"]}))


def test_run_record_writes_everything_and_keeps_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("ALPHAGENOME_API_KEY", "sekret-key-123456")
    inp = tmp_path / "in.csv"
    inp.write_text("a\n1\n")
    with RunRecord.start("qtl-demo", "qtl_validation", parameters={"api_key": "x", "note": "uses sekret-key-123456"},
                         simulated=True, seed=3) as rec:
        rec.add_input(inp, "qtl_table")
        rec.set_backend({"name": "alphagenome", "address_kind": "standin", "simulated": True})
        rec.add_metrics({"spearman_rho": 0.4, "undefined": float("nan")})
        rec.write_table("scores", pl.DataFrame({"x": [1.0]}))
        rec.drops.add("load", "malformed_rsid", source_row=3)
    m = load_manifest(rec.folder)
    assert m["status"] == "completed" and m["simulated"] is True and m["seed"] == 3
    import hashlib
    assert m["inputs"][0]["sha256"] == hashlib.sha256(b"a\n1\n").hexdigest()
    text = (rec.folder / "manifest.json").read_text()
    assert "sekret-key-123456" not in text and "api_key" not in text
    assert json.loads((rec.folder / "metrics.json").read_text()) == {"spearman_rho": 0.4, "undefined": None}
    assert pl.read_parquet(rec.folder / "dropped.parquet").height == 1
    assert "results-simulated" in str(rec.folder)


def test_simulated_and_real_roots_are_kept_apart(tmp_path):
    import os

    real = os.environ["AGVAL_RESULTS"]
    with pytest.raises(SimulatedResultsError):
        RunRecord.start("x", "f", simulated=True, root=real)
    rec = RunRecord.start("x", "f", simulated=False)
    with pytest.raises(SimulatedResultsError):
        rec.set_backend({"name": "standin", "simulated": True})


def test_failed_run_is_recorded():
    with pytest.raises(RuntimeError):
        with RunRecord.start("y", "f", simulated=True) as rec:
            raise RuntimeError("boom")
    m = load_manifest(rec.folder)
    assert m["status"] == "failed" and "boom" in m["error"]
