"""The stand-in myvariant.info: real response shapes, limits, faults, request log, CLI."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import polars as pl
import pytest

HG38_FIELDS = "dbsnp.rsid,dbsnp.ref,dbsnp.alt,dbsnp.chrom,dbsnp.hg38,dbsnp.vartype,hg38,vcf,chrom"


@pytest.fixture(scope="module")
def catalogue(myvariant_world):
    return pl.read_parquet(myvariant_world / "variants.parquet")


def _ids(cat: pl.DataFrame, **where) -> list[str]:
    return cat.filter(**where)["rsid"].unique(maintain_order=True).to_list()


def _query(base, q, **form):
    data = {"q": ",".join(q), "scopes": "dbsnp.rsid", "assembly": "hg38", "fields": HG38_FIELDS, **form}
    return httpx.post(f"{base}/v1/query", data=data)


def test_query_returns_flat_list_with_hg38_fields_and_one_record_per_alt(myvariant_standin, catalogue):
    multi = catalogue.filter(pl.col("status") == "ok").group_by("rsid").len().filter(pl.col("len") == 3)["rsid"][0]
    snv = _ids(catalogue.filter(pl.col("kind") == "snv"), status="ok")[0]
    dele = catalogue.filter((pl.col("kind") == "indel") & (pl.col("alt").str.len_chars() == 1)).row(0, named=True)
    r = _query(myvariant_standin.base_url, [snv, "rs999999999", multi, dele["rsid"]])
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body, list)
    assert [b["query"] for b in body] == [snv, "rs999999999", multi, multi, multi, dele["rsid"]]
    assert body[1] == {"query": "rs999999999", "notfound": True}
    rec = body[0]
    row = catalogue.filter(pl.col("rsid") == snv).row(0, named=True)
    assert rec["chrom"] == row["chrom"].removeprefix("chr") == rec["dbsnp"]["chrom"]
    assert rec["vcf"] == {"position": str(row["pos"]), "ref": row["ref"], "alt": row["alt"]}
    assert rec["hg38"] == rec["dbsnp"]["hg38"] == {"start": row["pos"], "end": row["pos"]}
    assert rec["_id"] == f"{row['chrom']}:g.{row['pos']}{row['ref']}>{row['alt']}"
    assert isinstance(rec["_score"], float) and "hg19" not in rec
    alts = sorted(b["vcf"]["alt"] for b in body[2:5])
    assert alts == sorted(catalogue.filter(pl.col("rsid") == multi)["alt"].to_list())
    assert len({b["_id"] for b in body[2:5]}) == 3
    d = body[5]  # a deletion: HGVS span after the anchor, SPDI-trimmed dbsnp alleles, anchored vcf
    assert d["vcf"]["ref"] == dele["ref"] and d["vcf"]["alt"] == dele["alt"]
    assert d["dbsnp"]["alt"] == "" and d["dbsnp"]["ref"] == dele["ref"][1:]
    assert d["hg38"]["start"] == dele["pos"] + 1 and d["_id"].endswith("del")


def test_no_hg38_records_carry_only_hg19_fields_and_default_assembly_is_hg19(myvariant_standin, catalogue):
    nohg38 = _ids(catalogue, status="no_hg38")[0]
    ok = _ids(catalogue.filter(pl.col("kind") == "snv"), status="ok")[0]
    body = httpx.post(f"{myvariant_standin.base_url}/v1/query",
                      data={"q": f"{nohg38},{ok}", "scopes": "dbsnp.rsid", "assembly": "hg38"}).json()
    assert body[0]["query"] == nohg38
    assert "hg38" not in body[0] and "vcf" not in body[0] and "hg38" not in body[0]["dbsnp"]
    assert "hg19" in body[0]["dbsnp"]
    # without assembly the real service answers from its hg19 index
    hg19 = httpx.post(f"{myvariant_standin.base_url}/v1/query", data={"q": ok, "scopes": "dbsnp.rsid"}).json()[0]
    row = catalogue.filter(pl.col("rsid") == ok).row(0, named=True)
    assert "hg38" not in hg19 and hg19["hg19"]["start"] == row["hg19_pos"] != row["pos"]
    assert hg19["vcf"]["position"] == str(row["hg19_pos"])


def test_merged_rsid_is_notfound_by_rsid_scope_and_found_by_merge_scope(myvariant_standin, catalogue):
    m = catalogue.filter(pl.col("status") == "merged").row(0, named=True)
    base = myvariant_standin.base_url
    assert _query(base, [m["rsid"]]).json() == [{"query": m["rsid"], "notfound": True}]
    cur = httpx.post(f"{base}/v1/query", data={"q": m["merged_into"], "scopes": "dbsnp.rsid", "assembly": "hg38",
                                               "fields": "dbsnp.dbsnp_merges,dbsnp.rsid"}).json()
    assert m["rsid"] in [x["merged_rsid"] for x in cur[0]["dbsnp"]["dbsnp_merges"]]
    found = _query(base, [m["rsid"]], scopes="dbsnp.dbsnp_merges.merged_rsid").json()
    assert found and all(x["query"] == m["rsid"] and x["dbsnp"]["rsid"] == m["merged_into"] for x in found)


def test_fields_are_projected_as_requested(myvariant_standin, catalogue):
    ok = _ids(catalogue, status="ok")[0]
    rec = httpx.post(f"{myvariant_standin.base_url}/v1/query",
                     data={"q": ok, "scopes": "dbsnp.rsid", "assembly": "hg38", "fields": "dbsnp.rsid,vcf.position"}
                     ).json()[0]
    assert set(rec) == {"query", "_id", "_score", "dbsnp", "vcf"}
    assert rec["dbsnp"] == {"rsid": ok} and set(rec["vcf"]) == {"position"}


def test_more_than_1000_ids_or_size_is_http_400_with_the_real_body(myvariant_standin):
    base = myvariant_standin.base_url
    ids = [f"rs{i}" for i in range(1, 1501)]
    r = httpx.post(f"{base}/v1/variant", data={"ids": ",".join(ids)})
    assert r.status_code == 400
    assert r.json() == {"code": 400, "success": False, "error": "Bad Request", "keyword": "id", "max": 1000,
                        "size": 1500, "alias": "ids"}
    r = _query(base, ids[:1001])
    assert r.status_code == 400 and r.json()["max"] == 1000 and r.json()["size"] == 1001
    assert _query(base, ids[:1000]).status_code == 200
    assert _query(base, ids[:3], size="1001").status_code == 400
    assert [(q.path, q.n_ids, q.status) for q in myvariant_standin.requests] == [
        ("/v1/variant", 1500, 400), ("/v1/query", 1001, 400), ("/v1/query", 1000, 200), ("/v1/query", 3, 400)]


def test_get_variant_and_metadata(myvariant_standin, catalogue):
    base = myvariant_standin.base_url
    row = catalogue.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv")).row(0, named=True)
    hgvs = f"{row['chrom']}:g.{row['pos']}{row['ref']}>{row['alt']}"
    one = httpx.get(f"{base}/v1/variant/{hgvs}", params={"assembly": "hg38"}).json()
    assert one["_id"] == hgvs and one["dbsnp"]["rsid"] == row["rsid"]
    r = httpx.get(f"{base}/v1/variant/chr1:g.5A>T", params={"assembly": "hg38"})
    assert r.status_code == 404 and r.json()["error"] == "ID 'chr1:g.5A>T' not found"
    post = httpx.post(f"{base}/v1/variant", data={"ids": f"{hgvs},rs1", "assembly": "hg38"}).json()
    assert post[0]["query"] == hgvs and post[1] == {"query": "rs1", "notfound": True}
    md = httpx.get(f"{base}/v1/metadata").json()
    assert md["src"]["dbsnp"]["version"].startswith("156-standin-") and md["simulated"] is True
    myvariant_standin.config.data_version = "157-test"
    assert httpx.get(f"{base}/v1/metadata").json()["build_version"] == "157-test"


def test_injected_429_503_with_retry_after_and_request_log(myvariant_standin, catalogue):
    base = myvariant_standin.base_url
    ok = _ids(catalogue, status="ok")[:2]
    myvariant_standin.config.fail_first_n = 2
    myvariant_standin.config.fail_status = 429
    myvariant_standin.config.retry_after = 2
    r1, r2, r3 = (_query(base, ok) for _ in range(3))
    assert r1.status_code == r2.status_code == 429 and r1.headers["Retry-After"] == "2"
    assert r3.status_code == 200 and len(r3.json()) == 2
    myvariant_standin.clear()
    myvariant_standin.config.fail_first_n = 0
    myvariant_standin.config.fail_status = 503
    myvariant_standin.config.fail_every_k = 3
    codes = [_query(base, ok).status_code for _ in range(6)]
    assert codes == [200, 200, 503, 200, 200, 503]
    assert httpx.get(f"{base}/v1/metadata").status_code == 200  # metadata never fails
    myvariant_standin.config.fail_every_k = 0
    assert _query(base, ok).status_code == 200
    r = httpx.post(f"{base}/v1/query", data={"q": ok[0]}, headers={"x-fake-status": "503"})
    assert r.status_code == 503
    log = myvariant_standin.requests
    assert [x.status for x in log] == codes + [200, 200, 503]
    assert log[0].method == "POST" and log[0].path == "/v1/query" and log[0].n_ids == 2
    assert all(b.t >= a.t for a, b in zip(log, log[1:]))


def test_cli_errors_are_clear(myvariant_world, tmp_path):
    import typer
    from typer.testing import CliRunner

    from agval.errors import ConfigError
    from standins.myvariant.cli import command

    app = typer.Typer()
    app.command()(command)
    r = CliRunner().invoke(app, ["--world", str(tmp_path / "nope")])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError) and "does not exist" in str(r.exception)
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(app, ["--world", str(tmp_path / "empty")])
    assert "no variants.parquet" in str(r.exception)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = CliRunner().invoke(app, ["--world", str(myvariant_world), "--port", str(s.getsockname()[1])])
    assert isinstance(r.exception, ConfigError) and "in use" in str(r.exception)


@pytest.mark.slow
def test_cli_process_serves_and_stops_cleanly_on_sigterm(myvariant_world, tmp_path):
    port_file = tmp_path / "mv.port"
    proc = subprocess.Popen([sys.executable, "-m", "agval", "standin", "myvariant", "--world", str(myvariant_world),
                             "--port", "0", "--port-file", str(port_file), "--fail-first-n", "1",
                             "--fail-status", "429"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        port = int(port_file.read_text())
        base = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{base}/v1/query", data={"q": "rs1"}).status_code == 429
        assert httpx.post(f"{base}/v1/query", data={"q": "rs1"}).json() == [{"query": "rs1", "notfound": True}]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not port_file.exists()
        with socket.socket() as s:  # the port is free again
            s.bind(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serves_the_synthetic_world(world_dir):
    """Against the full synthetic world."""
    from standins.myvariant.server import serve

    cat = pl.read_parquet(world_dir / "variants.parquet")
    with serve(world_dir) as h:
        for status in ("ok", "no_hg38", "merged"):
            ids = _ids(cat, status=status)[:20]
            if not ids:
                continue
            body = _query(h.base_url, ids).json()
            assert {b["query"] for b in body} == set(ids)
            if status == "ok":
                assert all("vcf" in b and b["dbsnp"]["rsid"] == b["query"] for b in body)
            elif status == "no_hg38":
                assert all("hg38" not in b and "vcf" not in b for b in body)
            else:
                assert all(b.get("notfound") for b in body)
