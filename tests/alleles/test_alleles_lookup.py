"""Allele lookup: myvariant client (mock transport and stand-in), local VCF, cache."""

from __future__ import annotations

import gzip
import json
import random
from urllib.parse import parse_qs

import httpx
import polars as pl
import pytest

from agval.alleles import LOOKUP_COLUMNS, normalize_rsids
from agval.alleles.cache import LookupCache, lookup_rsids
from agval.alleles.myvariant import HG38_FIELDS, MyVariantClient, MyVariantError, parse_query_response
from agval.alleles.vcf import VcfSource
from agval.errors import BuildMismatchError, InputError


# -- the real example responses ---------------------------------------------------------------
def _example(shared_data, name):
    return json.loads((shared_data / "myvariant" / name).read_text())


@pytest.mark.realdata
def test_real_hg38_response_parses_found_and_notfound(shared_data):
    ex = _example(shared_data, "query_post_hg38_found_and_notfound.json")
    df = parse_query_response(ex["response"], source_version="v")
    assert df.columns == list(LOOKUP_COLUMNS)
    assert df.select("query", "chrom", "pos", "ref", "alt", "status").rows() == [
        ("rs1226580099", "chrX", 30718532, "C", "T", "ok"),
        ("rs746621915", "chrX", 41345508, "A", "G", "ok"),
        ("rs99999999999", None, None, None, None, "notfound"),
        ("rs137852818", "chrX", 41542717, "T", "C", "ok")]
    assert df["hgvs_id"][0] == "chrX:g.30718532C>T" and df["assembly"].unique().to_list() == ["hg38"]


@pytest.mark.realdata
def test_real_multiallelic_response_keeps_every_alt(shared_data):
    ex = _example(shared_data, "query_post_multiallelic_rs334.json")
    df = parse_query_response(ex["response"])
    assert df["query"].to_list() == ["rs334"] * 3 and df["alt"].to_list() == ["A", "C", "G"]
    assert set(df["ref"]) == {"T"}
    # that request had no assembly=hg38: the hg19 _id position is never taken as hg38
    assert df["pos"].null_count() == 3 and set(df["status"]) == {"no_hg38"}
    body = ex["error_example_over_1000_ids"]["body"]
    assert body["max"] == 1000 and body["size"] == 1500


@pytest.mark.realdata
def test_real_hg19_docs_response_is_not_used_as_hg38(shared_data):
    items = _example(shared_data, "query_post_found_docs_hg19.json")["response"]
    df = parse_query_response(items)
    assert df["status"].to_list() == ["no_hg38", "no_hg38"] and df["pos"].null_count() == 2
    h19 = parse_query_response(items, assembly="hg19")
    assert h19.select("query", "chrom", "pos", "ref", "alt", "assembly").rows() == [
        ("rs58991260", "chr1", 218631822, "G", "A", "hg19"), ("rs2500", "chr11", 66397320, "A", "G", "hg19")]
    assert h19["af"][0] == pytest.approx(0.02157)


def test_rsid_normalisation_reasons():
    df = normalize_rsids(["rs12", " RS7 ", "rs", "", "chr1:123", "rs12abc", None, "rs0"])
    assert df["rsid"].to_list() == ["rs12", "rs7", None, None, None, None, None, None]
    assert df["reason"].to_list() == [None, None, "malformed_rsid", "missing_rsid", "malformed_rsid",
                                      "malformed_rsid", "missing_rsid", "malformed_rsid"]
    assert "position" in df["detail"][4]


# -- client against a mock transport ----------------------------------------------------------
class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def _answer(form, shuffle=True):
    ids = form["q"][0].split(",")
    out = []
    for i, q in enumerate(ids):
        n = int(q[2:])
        if n % 5 == 0:
            out.append({"query": q, "notfound": True})
            continue
        for alt in (["G", "T"] if n % 7 == 0 else ["G"]):
            out.append({"query": q, "_id": f"chr1:g.{n}A>{alt}", "_score": 1.0, "chrom": "1",
                        "dbsnp": {"rsid": q, "ref": "A", "alt": alt, "hg38": {"start": n, "end": n}},
                        "hg38": {"start": n, "end": n}, "vcf": {"position": str(n), "ref": "A", "alt": alt}})
    if shuffle:
        random.Random(len(ids)).shuffle(out)
    return out


def test_batches_of_1000_form_fields_and_matching_by_query():
    forms = []

    def handler(request: httpx.Request):
        form = parse_qs(request.content.decode())
        forms.append(form)
        return httpx.Response(200, json=_answer(form))

    ft = FakeTime()
    c = MyVariantClient("http://mv.test", pace=1.0, transport=httpx.MockTransport(handler), sleep=ft.sleep,
                        clock=ft.clock)
    ids = [f"rs{i}" for i in range(1, 2501)]
    df = c.lookup(ids + ids[:10])  # duplicates are asked once
    assert [len(f["q"][0].split(",")) for f in forms] == [1000, 1000, 500]
    f = forms[0]
    assert f["scopes"] == ["dbsnp.rsid"] and f["assembly"] == ["hg38"] and f["size"] == ["1000"]
    assert f["fields"] == [",".join(HG38_FIELDS)]
    assert c.requests_made == 3 and ft.sleeps == [1.0, 1.0]  # polite pace between requests
    assert df.filter(pl.col("status") == "notfound").height == 500
    assert df.filter(pl.col("status") == "ok").height == 2000 + len([i for i in range(1, 2501) if i % 7 == 0
                                                                      and i % 5])
    # responses were shuffled: every row still belongs to its query (never matched by position)
    ok = df.filter(pl.col("status") == "ok")
    assert (ok["pos"].cast(pl.Utf8) == ok["query"].str.slice(2)).all()
    assert sorted(df.filter(pl.col("query") == "rs14")["alt"].to_list()) == ["G", "T"]


def _flaky(statuses, headers=None):
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) <= len(statuses):
            st = statuses[len(calls) - 1]
            if st == "timeout":
                raise httpx.ReadTimeout("slow", request=request)
            return httpx.Response(st, json={"code": st, "success": False}, headers=headers or {})
        return httpx.Response(200, json=_answer(parse_qs(request.content.decode()), shuffle=False))
    return handler, calls


def test_429_and_5xx_and_timeouts_are_retried_honouring_retry_after():
    handler, calls = _flaky([429, 503, "timeout", 502], headers={"Retry-After": "7"})
    ft = FakeTime()
    c = MyVariantClient("http://mv.test", pace=0, backoff=0.5, transport=httpx.MockTransport(handler),
                        sleep=ft.sleep, clock=ft.clock, seed=1)
    df = c.lookup(["rs1", "rs2", "rs3"])
    assert len(calls) == 5 and c.retries == 4 and df["query"].unique().len() == 3
    assert ft.sleeps[0] >= 7 and ft.sleeps[1] >= 7  # Retry-After honoured
    assert 0.25 <= ft.sleeps[2] <= 2.0  # no header: exponential backoff 0.5 * 2**2 with jitter
    assert ft.sleeps[3] >= 7


def test_400_is_reported_and_not_retried():
    handler, calls = _flaky([400] * 5)
    c = MyVariantClient("http://mv.test", pace=0, transport=httpx.MockTransport(handler), sleep=lambda s: None)
    with pytest.raises(MyVariantError, match="HTTP 400.*not retried") as e:
        c.lookup(["rs1"])
    assert e.value.status == 400 and len(calls) == 1


def test_exhausted_retries_raise_instead_of_dropping_the_batch():
    handler, calls = _flaky([503] * 10)
    c = MyVariantClient("http://mv.test", pace=0, max_retries=3, transport=httpx.MockTransport(handler),
                        sleep=lambda s: None)
    with pytest.raises(MyVariantError, match="still failing after 4 attempts"):
        c.lookup(["rs1", "rs2"])
    assert len(calls) == 4


def test_a_response_missing_an_id_is_an_error():
    def handler(request):
        return httpx.Response(200, json=[{"query": "rs1", "notfound": True}])

    c = MyVariantClient("http://mv.test", pace=0, transport=httpx.MockTransport(handler))
    with pytest.raises(MyVariantError, match="lacks 1 of 2"):
        c.lookup(["rs1", "rs2"])


def test_batch_size_is_capped_at_the_service_limit():
    with pytest.raises(ValueError):
        MyVariantClient("http://mv.test", batch_size=1001)


# -- against the stand-in ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def world_ids(myvariant_world):
    cat = pl.read_parquet(myvariant_world / "variants.parquet")
    ids = cat["rsid"].unique(maintain_order=True).to_list()
    absent = (myvariant_world / "absent_rsids.txt").read_text().split()
    return (absent + ids)[:10_000]


def test_10000_ids_in_at_most_10_requests_then_zero_requests_from_cache(myvariant_standin, world_ids, tmp_path):
    cache = LookupCache(tmp_path)
    c = MyVariantClient(myvariant_standin.base_url, pace=0)
    first = lookup_rsids(world_ids, c, cache=cache)
    queries = [r for r in myvariant_standin.requests if r.path == "/v1/query"]
    assert len(queries) <= 10 and all(r.n_ids <= 1000 and r.status == 200 for r in queries)
    assert sum(r.n_ids for r in queries) == 10_000
    assert [r.path for r in myvariant_standin.requests if r.path != "/v1/query"] == ["/v1/metadata"]
    assert first.table["query"].n_unique() == 10_000 and first.n_fetched == 10_000
    assert set(first.table["status"]) == {"ok", "notfound", "no_hg38"}
    myvariant_standin.clear()
    second = lookup_rsids(world_ids, MyVariantClient(myvariant_standin.base_url, pace=0), cache=cache)
    assert myvariant_standin.requests == [] and second.requests == 0 and second.n_cached == 10_000
    assert second.table.equals(first.table)
    assert first.lookup_requests == len(queries) <= 10 and first.requests == first.lookup_requests + 1


def test_a_changed_source_version_is_noticed(myvariant_standin, world_ids, tmp_path):
    cache = LookupCache(tmp_path)
    ids = world_ids[:1500]
    lookup_rsids(ids, MyVariantClient(myvariant_standin.base_url, pace=0), cache=cache)
    myvariant_standin.config.data_version = "157-new-release"
    myvariant_standin.clear()
    again = lookup_rsids(ids, MyVariantClient(myvariant_standin.base_url, pace=0), cache=cache)
    assert again.requests == 0  # within the version TTL nothing is asked
    res = lookup_rsids(ids, MyVariantClient(myvariant_standin.base_url, pace=0), cache=cache, refresh_version=True)
    assert res.version_changed and res.previous_version.startswith("dbsnp=156-standin")
    assert res.source_version == "dbsnp=157-new-release;build=157-new-release"
    assert res.n_fetched == 1500 and res.n_stale == 1500
    assert set(res.table["source_version"]) == {res.source_version}
    assert [r.path for r in myvariant_standin.requests] == ["/v1/metadata", "/v1/query", "/v1/query"]


def test_injected_429_and_503_are_retried_and_nothing_is_lost(myvariant_standin, world_ids):
    ids = world_ids[:3000]
    clean = MyVariantClient(myvariant_standin.base_url, pace=0).lookup(ids)
    myvariant_standin.clear()
    myvariant_standin.config.fail_first_n = 2
    myvariant_standin.config.fail_status = 429
    myvariant_standin.config.retry_after = 3
    slept: list[float] = []
    c = MyVariantClient(myvariant_standin.base_url, pace=0, sleep=slept.append)
    got = c.lookup(ids)
    myvariant_standin.config.fail_first_n = 0
    myvariant_standin.config.fail_status = 503
    myvariant_standin.config.fail_every_k = 2
    got503 = MyVariantClient(myvariant_standin.base_url, pace=0, sleep=slept.append).lookup(ids)
    assert got.equals(clean) and got503.equals(clean)
    # the two 429s carried Retry-After: 3, so the first two waits honour it
    assert len(slept) >= 2 and all(s >= 3 for s in slept[:2]), slept
    statuses = [r.status for r in myvariant_standin.requests]
    assert statuses.count(429) == 2 and statuses.count(503) >= 3 and statuses.count(200) == 6


def test_a_400_from_the_service_is_reported_not_retried(myvariant_standin, world_ids):
    myvariant_standin.config.max_ids = 500  # the service now refuses 1000-id batches
    c = MyVariantClient(myvariant_standin.base_url, pace=0, sleep=lambda s: None)
    with pytest.raises(MyVariantError, match="HTTP 400") as e:
        c.lookup(world_ids[:1000])
    assert e.value.body["max"] == 500
    assert [(r.path, r.status) for r in myvariant_standin.requests] == [("/v1/query", 400)]


def test_merged_rsids_resolved_on_request(myvariant_standin, myvariant_world):
    cat = pl.read_parquet(myvariant_world / "variants.parquet")
    merged = cat.filter(pl.col("status") == "merged")["rsid"].unique().head(5).to_list()
    ok = cat.filter(pl.col("status") == "ok")["rsid"].unique().head(5).to_list()
    plain = MyVariantClient(myvariant_standin.base_url, pace=0).lookup(merged + ok)
    assert plain.filter(pl.col("query").is_in(merged))["status"].unique().to_list() == ["notfound"]
    res = MyVariantClient(myvariant_standin.base_url, pace=0, resolve_merged=True).lookup(merged + ok)
    m = res.filter(pl.col("query").is_in(merged))
    assert set(m["status"]) == {"merged"} and (m["rsid"] != m["query"]).all()
    targets = dict(cat.filter(pl.col("status") == "merged").select("rsid", "merged_into").unique().iter_rows())
    assert all(targets[q] == r for q, r in m.select("query", "rsid").iter_rows())


# -- local VCF ---------------------------------------------------------------------------------
def test_vcf_gives_the_same_table_as_the_api(myvariant_standin, myvariant_world, world_ids, tmp_path):
    ids = world_ids[:4000]
    api = MyVariantClient(myvariant_standin.base_url, pace=0).lookup(ids)
    vcf_gz = VcfSource(myvariant_world / "dbsnp.vcf.gz").lookup(ids)
    plain = tmp_path / "dbsnp.vcf"
    plain.write_bytes(gzip.decompress((myvariant_world / "dbsnp.vcf.gz").read_bytes()))
    vcf_plain = VcfSource(plain, chunk_bytes=4096).lookup(ids)  # many small blocks
    assert vcf_gz.equals(vcf_plain)
    cols = ["query", "rsid", "chrom", "pos", "ref", "alt", "hgvs_id", "status"]
    # dbSNP's VCF has no record of rsIDs without a GRCh38 placement: those are notfound there
    a = (api.with_columns(pl.when(pl.col("status") == "no_hg38").then(pl.lit("notfound"))
                          .otherwise(pl.col("status")).alias("status"))
         .with_columns([pl.when(pl.col("status") == "notfound").then(None).otherwise(pl.col(c)).alias(c)
                        for c in ("rsid", "chrom", "pos", "ref", "alt", "hgvs_id")])
         .unique(subset=["query", "alt"]).select(cols).sort(["query", "alt"], nulls_last=True))
    b = vcf_gz.select(cols).sort(["query", "alt"], nulls_last=True)
    assert a.equals(b)
    j = api.join(vcf_gz, on=["query", "alt"], how="inner")
    assert (j["af"] - j["af_right"]).abs().max() < 1e-9
    assert vcf_gz.columns == list(LOOKUP_COLUMNS) and set(vcf_gz["source"]) == {"dbsnp_vcf"}


def test_vcf_refseq_names_freq_info_and_multiallelic(tmp_path):
    p = tmp_path / "refseq.vcf"
    p.write_text("##fileformat=VCFv4.2\n##dbSNP_BUILD_ID=156\n##reference=GRCh38.p14\n"
                 "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                 "NC_000001.11\t100\trs10\tA\tG,T\t.\t.\tRS=10;FREQ=1000Genomes:0.7,0.2,0.1|GnomAD:0.6,0.3,0.1\n"
                 "NC_000023.11\t200\trs11\tCT\tC\t.\t.\tRS=11\n"
                 "NC_012920.1\t5\trs12;rs13\tG\tA\t.\t.\t.\n"
                 "NT_187361.1\t9\trs14\tG\tA\t.\t.\t.\n")
    df = VcfSource(p).lookup(["rs10", "rs11", "rs13", "rs14", "rs99"])
    assert df.select("query", "chrom", "pos", "ref", "alt", "af", "status").rows() == [
        ("rs10", "chr1", 100, "A", "G", 0.3, "ok"), ("rs10", "chr1", 100, "A", "T", 0.1, "ok"),
        ("rs11", "chrX", 200, "CT", "C", None, "ok"), ("rs13", "chrM", 5, "G", "A", None, "ok"),
        ("rs14", "NT_187361.1", 9, "G", "A", None, "ok"), ("rs99", None, None, None, None, None, "notfound")]
    assert df["hgvs_id"][2] == "chrX:g.201del"


def test_vcf_on_another_build_or_not_a_vcf_is_refused(tmp_path):
    p = tmp_path / "b37.vcf"
    p.write_text("##fileformat=VCFv4.2\n##reference=GRCh37.p13\n#CHROM\tPOS\tID\tREF\tALT\n1\t5\trs1\tA\tG\n")
    with pytest.raises(BuildMismatchError, match="GRCh37"):
        VcfSource(p)
    q = tmp_path / "bad.vcf"
    q.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tREF\tALT\n")
    with pytest.raises(InputError, match="lacks") as e:
        VcfSource(q)
    assert e.value.column == "ID" and e.value.file == str(q)
    with pytest.raises(InputError, match="not found"):
        VcfSource(tmp_path / "missing.vcf.gz")


def test_vcf_lookup_is_cached_and_a_replaced_file_is_noticed(myvariant_world, tmp_path):
    src = tmp_path / "d.vcf.gz"
    src.write_bytes((myvariant_world / "dbsnp.vcf.gz").read_bytes())
    cache = LookupCache(tmp_path / "cache")
    ids = pl.read_parquet(myvariant_world / "variants.parquet")["rsid"].unique().head(200).to_list()
    r1 = lookup_rsids(ids + ["bogus"], VcfSource(src), cache=cache)
    assert r1.n_fetched == 200 and r1.invalid["raw"].to_list() == ["bogus"]
    r2 = lookup_rsids(ids, VcfSource(src), cache=cache)
    assert r2.n_cached == 200 and r2.n_fetched == 0 and r2.table.equals(r1.table)
    with gzip.open(src, "ab") as fh:  # a new release of the file
        fh.write(b"chr1\t5\trs1\tA\tG\t.\t.\tAF=0.1\n")
    r3 = lookup_rsids(ids, VcfSource(src), cache=cache)
    assert r3.version_changed and r3.n_fetched == 200
