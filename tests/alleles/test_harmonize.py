"""Classification, harmonization and guards, case by case; end to end through the stand-in."""

from __future__ import annotations

import json
import random

import numpy as np
import polars as pl
import pytest

from agval.alleles import LOOKUP_COLUMNS
from agval.alleles.guards import check_not_pvalues, check_placeholder_alleles, check_single_build
from agval.alleles.harmonize import EffectConvention, classify_lookup, harmonize
from agval.coords import complement
from agval.drops import DropLog
from agval.errors import BuildMismatchError, CardinalityError, ConfigError, GuardError, MissingColumnError

rng = random.Random(3)
SEQ = list("".join(rng.choice("ACGT") for _ in range(400)))
HITS: list[dict] = []


def _hit(q, pos, ref, alt, *, status="ok", af=None, rsid=None, chrom="chr1", genome_ref=None, assembly="hg38"):
    for i, b in enumerate(genome_ref if genome_ref is not None else ref):
        SEQ[pos - 1 + i] = b
    HITS.append({"query": q, "rsid": rsid or q, "chrom": chrom, "pos": pos, "ref": ref, "alt": alt, "af": af,
                 "source": "test", "source_version": "1", "assembly": assembly,
                 "hgvs_id": f"{chrom}:g.{pos}{ref}>{alt}", "status": status})


_hit("rs1", 10, "A", "G", af=0.3)                       # bi-allelic, non-palindromic
_hit("rs4", 30, "C", "T", af=0.2)                       # multi-allelic C>T, C>A
_hit("rs4", 30, "C", "A", af=0.05)
_hit("rs5", 50, "A", "T", af=0.75)                      # palindromic A/T
_hit("rs51", 55, "C", "G")                              # palindromic C/G without AF
_hit("rs6", 70, "CAG", "C", af=0.1)                     # deletion
_hit("rs7", 90, "T", "TGG", af=0.1)                     # insertion
_hit("rs8", 110, "G", "A", genome_ref="A")              # REF/ALT swapped vs the FASTA -> ref_fix
_hit("rs9", 130, "G", "A", genome_ref="C")              # REF mismatch, ALT no match -> drop
_hit("rs10", 150, "CAG", "C", genome_ref="CTG")         # indel REF mismatch
_hit("rs11", 170, "G", "T", status="merged", rsid="rs1100")
_hit("rs12", 190, "A", "C", chrom="chr9")               # chromosome not in the FASTA
HITS.append({**HITS[0], "query": "rs2", "rsid": "rs2", "chrom": None, "pos": None, "status": "no_hg38",
             "hgvs_id": "chr1:g.99999A>G"})  # found, hg19 only
HITS.append({c: None for c in LOOKUP_COLUMNS} | {"query": "rs3", "status": "notfound", "source": "test",
                                                   "assembly": "hg38"})
LOOKUP = pl.DataFrame(HITS, schema=LOOKUP_COLUMNS)


@pytest.fixture(scope="module")
def fasta(tmp_path_factory):
    p = tmp_path_factory.mktemp("genome") / "g.fa"
    s = "".join(SEQ)
    p.write_text(">chr1\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n")
    return p


def _study(rows, cols=("rsid", "ea", "oa", "beta")):
    return pl.DataFrame([dict(zip(("row_id",) + cols, (f"r{i}",) + tuple(r))) for i, r in enumerate(rows)],
                        schema={"row_id": pl.Utf8, **{c: (pl.Float64 if c in ("beta", "eaf") else pl.Utf8)
                                                      for c in cols}})


def _run(fasta, rows, cols=("rsid", "ea", "oa", "beta"), convention="column:ea", **kw):
    kw.setdefault("guards", False)
    other = "oa" if "oa" in cols and convention == "column:ea" else None
    return harmonize(_study(rows, cols), LOOKUP, fasta, convention=convention, other_allele_col=other, **kw)


def _one(res, row_id="r0"):
    d = res.decisions.filter(pl.col("row_id") == row_id).row(0, named=True)
    t = res.table.filter(pl.col("row_id") == row_id)
    return d, (t.row(0, named=True) if t.height else None)


def test_classification_per_rsid():
    cls = dict(classify_lookup(LOOKUP).select("query", "lookup_class").iter_rows())
    assert cls["rs1"] == "ok_biallelic" and cls["rs4"] == "multiallelic" and cls["rs6"] == "indel"
    assert cls["rs7"] == "indel" and cls["rs2"] == "no_hg38" and cls["rs3"] == "notfound"
    assert cls["rs11"] == "merged"


def test_found_alt_allele_keeps_beta(fasta):
    d, t = _one(_run(fasta, [("rs1", "G", "A", 0.5)]))
    assert d["kept"] and t["harmonization"] == "alt" and t["beta_alt"] == 0.5
    assert (t["chrom"], t["pos"], t["ref"], t["alt"], t["variant_key"]) == ("chr1", 10, "A", "G", "chr1:10:A>G")
    assert t["orientation_verified"] is True and t["lookup_class"] == "ok_biallelic" and t["af"] == 0.3


def test_effect_allele_is_ref_swaps_and_negates(fasta):
    _, t = _one(_run(fasta, [("rs1", "A", "G", 0.5)]))
    assert t["harmonization"] == "swap" and t["beta_alt"] == -0.5 and (t["ref"], t["alt"]) == ("A", "G")


def test_strand_complement_at_non_palindromic_sites(fasta):
    res = _run(fasta, [("rs1", "C", "T", 0.5), ("rs1", "T", "C", 0.5), ("rs1", "C", None, 0.4)])
    assert res.table["harmonization"].to_list() == ["flip", "flip_swap", "flip"]
    assert res.table["beta_alt"].to_list() == [0.5, -0.5, 0.4]


def test_multiallelic_picks_the_tested_alt_or_drops(fasta):
    res = _run(fasta, [("rs4", "A", "C", 1.0), ("rs4", "T", "C", 2.0), ("rs4", "G", "C", 3.0),
                       ("rs4", "C", None, 4.0), ("rs4", "C", "A", 5.0)])
    kept = res.table.select("row_id", "alt", "beta_alt", "lookup_class").rows()
    assert kept == [("r0", "A", 1.0, "multiallelic"), ("r1", "T", 2.0, "multiallelic"),
                    ("r4", "A", -5.0, "multiallelic")]
    reasons = dict(res.decisions.filter(~pl.col("kept")).select("row_id", "reason").iter_rows())
    # G matches neither ALT (and its complement C is the REF, which with other=C cannot fit)
    assert reasons == {"r2": "multiallelic_no_matching_alt", "r3": "multiallelic_ambiguous"}


def test_palindromic_dropped_or_resolved_by_allele_frequency(fasta):
    rows = [("rs5", "T", "A", 1.0, 0.8), ("rs5", "T", "A", 1.0, 0.2), ("rs5", "T", "A", 1.0, 0.45),
            ("rs51", "G", "C", 1.0, 0.9)]
    cols = ("rsid", "ea", "oa", "beta", "eaf")
    dropped = _run(fasta, rows, cols)
    assert dropped.table.height == 0 and set(dropped.decisions["reason"]) == {"palindromic"}
    res = _run(fasta, rows, cols, palindromic="af", eaf_col="eaf")
    assert res.table.select("row_id", "harmonization", "beta_alt").rows() == [
        ("r0", "palindromic_af_alt", 1.0), ("r1", "palindromic_af_swap", -1.0)]
    reasons = dict(res.decisions.filter(~pl.col("kept")).select("row_id", "reason").iter_rows())
    assert reasons == {"r2": "palindromic_af_ambiguous", "r3": "palindromic_no_af"}
    with pytest.raises(ConfigError, match="eaf_col"):
        _run(fasta, rows, cols, palindromic="af")


def test_indels_are_kept_and_checked(fasta):
    res = _run(fasta, [("rs6", "-", "AG", 1.0), ("rs6", "CAG", "C", 1.0), ("rs7", "GG", "-", 2.0),
                       ("rs10", "-", "AG", 3.0)])
    assert res.table.select("row_id", "ref", "alt", "harmonization", "beta_alt").rows() == [
        ("r0", "CAG", "C", "alt", 1.0), ("r1", "CAG", "C", "swap", -1.0), ("r2", "T", "TGG", "alt", 2.0)]
    d, _ = _one(res, "r3")
    assert d["reason"] == "ref_mismatch" and "CTG" in d["detail"]


def test_ref_checked_against_the_fasta(fasta):
    res = _run(fasta, [("rs8", "A", "G", 1.0), ("rs9", "A", "G", 1.0), ("rs12", "C", "A", 1.0)])
    _, t = _one(res, "r0")
    # dbSNP said G>A but the genome has A: swapped to A>G, the effect allele A is now REF
    assert (t["ref"], t["alt"], t["harmonization"], t["beta_alt"]) == ("A", "G", "alt|ref_fix", -1.0)
    reasons = dict(res.decisions.filter(~pl.col("kept")).select("row_id", "reason").iter_rows())
    assert reasons == {"r1": "ref_mismatch", "r2": "chrom_not_in_reference"}


def test_hg19_coordinates_are_refused(fasta):
    res = _run(fasta, [("rs2", "G", "A", 1.0)])
    d, t = _one(res)
    assert t is None and d["reason"] == "no_hg38" and d["stage"] == "lookup" and "refused" in d["detail"]
    hg19 = LOOKUP.with_columns(assembly=pl.lit("hg19"))
    with pytest.raises(BuildMismatchError, match="hg19"):
        harmonize(_study([("rs1", "G", "A", 1.0)]), hg19, fasta, convention="column:ea")
    mixed = pl.concat([LOOKUP, hg19.head(1)])
    with pytest.raises(BuildMismatchError, match="mix"):
        harmonize(_study([("rs1", "G", "A", 1.0)]), mixed, fasta, convention="column:ea")


@pytest.mark.realdata
def test_real_hg19_docs_response_is_dropped_not_used(shared_data, fasta):
    from agval.alleles.myvariant import parse_query_response

    items = json.loads((shared_data / "myvariant" / "query_post_found_docs_hg19.json").read_text())["response"]
    lookup = parse_query_response(items)
    res = harmonize(_study([("rs58991260", "A", "G", 1.0), ("rs2500", "G", "A", 1.0)]), lookup, fasta,
                    convention="column:ea", other_allele_col="oa", guards=False)
    assert res.table.height == 0 and set(res.decisions["reason"]) == {"no_hg38"}


def test_duplicated_snps_stay_separate_rows(fasta):
    res = _run(fasta, [("rs1", "G", "A", 0.1), ("rs1", "G", "A", 0.2), ("rs1", "A", "G", 0.3)])
    assert res.table["row_id"].to_list() == ["r0", "r1", "r2"]
    assert res.table["beta_alt"].to_list() == [0.1, 0.2, -0.3]
    assert res.table["variant_key"].n_unique() == 1
    dup = _study([("rs1", "G", "A", 0.1), ("rs1", "G", "A", 0.2)]).with_columns(row_id=pl.lit("same"))
    with pytest.raises(CardinalityError, match="row_id"):
        harmonize(dup, LOOKUP, fasta, convention="column:ea")


def test_malformed_and_unknown_ids_are_counted_drops_with_reasons(fasta):
    drops = DropLog()
    res = _run(fasta, [("rs", "A", "G", 1.0), ("", "A", "G", 1.0), ("chr1:123", "A", "G", 1.0),
                       ("rs12abc", "A", "G", 1.0), (None, "A", "G", 1.0), ("rs3", "A", "G", 1.0),
                       ("rs1", "G", "A", 1.0)], drops=drops, source_file="study.csv")
    assert res.table["row_id"].to_list() == ["r6"]
    f = drops.frame()
    assert f.select("row_id", "stage", "reason").rows() == [
        ("r0", "lookup", "malformed_rsid"), ("r1", "lookup", "missing_rsid"), ("r2", "lookup", "malformed_rsid"),
        ("r3", "lookup", "malformed_rsid"), ("r4", "lookup", "missing_rsid"), ("r5", "lookup", "notfound")]
    assert f["source_file"].unique().to_list() == ["study.csv"] and f["source_row"].to_list() == [1, 2, 3, 4, 5, 6]
    assert "position" in f["detail"][2]
    assert res.funnel.select("step", "n").rows() == [("input", 7), ("valid_rsid", 2), ("found_hg38", 1),
                                                     ("harmonized", 1)]


def test_missing_required_columns_name_file_and_column(fasta):
    study = _study([("rs1", "G", "A", 1.0)]).drop("beta")
    with pytest.raises(MissingColumnError) as e:
        harmonize(study, LOOKUP, fasta, convention="column:ea", source_file="data/qtl.csv")
    assert e.value.file == "data/qtl.csv" and e.value.column == "beta"
    assert "data/qtl.csv" in str(e.value) and "'beta'" in str(e.value)
    with pytest.raises(MissingColumnError, match="'Alt Allele'"):
        harmonize(_study([("rs1", "G", "A", 1.0)]), LOOKUP, fasta, convention="column:Alt Allele",
                  source_file="data/qtl.csv")
    with pytest.raises(ConfigError, match="convention"):
        EffectConvention.parse("alt allele")


def test_declared_and_unknown_conventions(fasta):
    rows = [("rs1", 0.5), ("rs4", 0.7), ("rs5", 0.9)]
    alt = _run(fasta, rows, ("rsid", "beta"), convention="alt")
    assert alt.table.select("rsid", "beta_alt", "harmonization").rows() == [
        ("rs1", 0.5, "declared_alt"), ("rs5", 0.9, "declared_alt")]  # palindromic is fine: no strand question
    assert alt.decisions.filter(pl.col("rsid") == "rs4")["reason"][0] == "multiallelic_ambiguous"
    ref = _run(fasta, rows, ("rsid", "beta"), convention="ref")
    assert ref.table["beta_alt"].to_list() == [-0.5, -0.9]
    unk = _run(fasta, [("rs1", "G", "A", 0.5), ("rs4", "T", "C", 0.7)], ("rsid", "a1", "a2", "beta"),
               convention="unknown", allele_cols=("a1", "a2"))
    assert unk.table.select("rsid", "alt", "beta_alt", "orientation_verified").rows() == [
        ("rs1", "G", 0.5, False), ("rs4", "T", 0.7, False)]  # study alleles picked rs4's ALT
    assert unk.notes and "unverified" in unk.notes[0]


def test_merged_rsid_uses_the_current_record(fasta):
    res = _run(fasta, [("rs11", "T", "G", 1.0)])
    _, t = _one(res)
    assert t["lookup_class"] == "merged" and t["source_rsid"] == "rs1100" and t["rsid"] == "rs11"
    assert _run(fasta, [("rs11", "T", "G", 1.0)], keep_merged=False).decisions["reason"][0] == "merged"


def test_passthrough_columns_are_kept_and_clashes_renamed(fasta):
    study = _study([("rs1", "G", "A", 0.5)]).with_columns(chrom=pl.lit("1"), pos=pl.lit(12345), peak=pl.lit("p1"))
    res = harmonize(study, LOOKUP, fasta, convention="column:ea", other_allele_col="oa", guards=False)
    t = res.table.row(0, named=True)
    assert t["peak"] == "p1" and t["study_chrom"] == "1" and t["study_pos"] == 12345 and t["pos"] == 10


# -- guards ----------------------------------------------------------------------------------------
def test_guard_placeholder_alleles(fasta):
    study = _study([(f"rs{i}", "G", "A", 0.1 * i) for i in range(1, 13)])
    with pytest.raises(GuardError, match="placeholder"):
        harmonize(study, LOOKUP, fasta, convention="column:ea", other_allele_col="oa")
    check_placeholder_alleles(study.head(5), "ea", "oa")  # too few rows to tell


def test_guard_pvalues_as_effects():
    pvals = pl.Series([10 ** -float(k) for k in range(2, 40)])
    with pytest.raises(GuardError, match="p-values"):
        check_not_pvalues(pvals, column="slope", file="gtex.txt")
    check_not_pvalues(pl.Series(np.linspace(0.05, 0.95, 50)))   # all-positive betas (caQTL) pass
    check_not_pvalues(pl.Series(np.linspace(-1, 1, 50)))


def test_guard_pvalues_inside_harmonize(fasta):
    study = _study([("rs1", "G", "A", 10.0 ** -k) for k in range(2, 20)])
    with pytest.raises(GuardError, match="'beta' looks like p-values"):
        harmonize(study, LOOKUP, fasta, convention="column:ea")


def test_guard_empty_after_lookup(fasta):
    with pytest.raises(GuardError, match="no rows left"):
        harmonize(_study([("rs3", "A", "G", 1.0), ("rs2", "A", "G", 1.0)]), LOOKUP, fasta, convention="column:ea")


def test_guard_build_mix():
    with pytest.raises(BuildMismatchError, match="mix"):
        check_single_build(["hg38", "GRCh37"])
    check_single_build(["GRCh38", "hg38", None])


# -- end to end ----------------------------------------------------------------------------------
def test_planted_orientation_is_recovered_end_to_end(myvariant_standin, myvariant_world):
    """A study whose effect alleles are written as ALT, REF or their complements, with beta = +1 when
    the effect allele is the ALT: every harmonized row must come out with beta_alt = +1."""
    from agval.alleles.cache import lookup_rsids
    from agval.alleles.myvariant import MyVariantClient

    cat = pl.read_parquet(myvariant_world / "variants.parquet").filter(pl.col("status") == "ok")
    r = random.Random(5)
    rows = []
    for rs, ref, alt in cat.select("rsid", "ref", "alt").head(3000).iter_rows():
        choice = r.randrange(4) if len(ref) == len(alt) == 1 else r.randrange(2)
        ea, oa = [(alt, ref), (ref, alt), (complement(alt), complement(ref)), (complement(ref), complement(alt))][choice]
        beta = 1.0 if choice in (0, 2) else -1.0
        rows.append((rs, ea, oa, beta))
        if r.random() < 0.05:
            rows.append((rs, ea, oa, beta))  # duplicated SNP (another peak)
    res_lookup = lookup_rsids([x[0] for x in rows], MyVariantClient(myvariant_standin.base_url, pace=0))
    res = harmonize(_study(rows), res_lookup.table, myvariant_world / "genome.fa", convention="column:ea",
                    other_allele_col="oa", palindromic="drop")
    assert res.table.height > 0.6 * len(rows)
    assert (res.table["beta_alt"] == 1.0).all()
    assert res.table["row_id"].n_unique() == res.table.height
    assert set(res.table["harmonization"]) >= {"alt", "swap", "flip", "flip_swap"}
    reasons = set(res.decisions.filter(~pl.col("kept"))["reason"])
    assert reasons <= {"palindromic", "multiallelic_ambiguous", "multiallelic_no_matching_alt"}


# -- Prefect tasks -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_prefect_tasks_make_progress_and_funnel_artifacts(prefect_api, myvariant_standin, myvariant_world,
                                                          tmp_path):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from tasks.alleles import harmonize_alleles, lookup_alleles

    cat = pl.read_parquet(myvariant_world / "variants.parquet").filter(pl.col("status") == "ok").head(1500)
    study = pl.DataFrame({"row_id": [f"r{i}" for i in range(cat.height)], "rsid": cat["rsid"],
                          "ea": cat["alt"], "oa": cat["ref"], "beta": np.linspace(-1, 1, cat.height)})
    study = pl.concat([study, pl.DataFrame({"row_id": ["bad"], "rsid": ["chr1:123"], "ea": ["A"], "oa": ["G"],
                                            "beta": [0.1]})])
    source = {"kind": "myvariant", "base_url": myvariant_standin.base_url, "pace": 0}

    @flow(name="alleles-test")
    def run():
        drops = DropLog()
        lk = lookup_alleles(study["rsid"].to_list(), source, simulated=True, cache_root=str(tmp_path),
                            key="qtl-test")
        res = harmonize_alleles(study, lk.table, str(myvariant_world / "genome.fa"), convention="column:ea",
                                other_allele_col="oa", drops=drops, key="qtl-test")
        return lk, res, drops

    lk, res, drops = run()
    assert lk.n_fetched == cat["rsid"].n_unique() and res.table.height > 1000
    assert len(drops) == len(study) - res.table.height

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["qtl-test-lookup-progress",
                                                                           "qtl-test-drop-funnel"])))

    import asyncio

    arts = {a.key: a for a in asyncio.run(artifacts())}
    assert arts["qtl-test-lookup-progress"].data == 100.0
    table = arts["qtl-test-drop-funnel"].data
    rows = json.loads(table) if isinstance(table, str) else table
    steps = {r["step"]: r["n"] for r in rows if r["step"] != "dropped"}
    assert steps == {"input": len(study), "valid_rsid": len(study) - 1, "found_hg38": len(study) - 1,
                     "harmonized": res.table.height}
    assert {(r["stage"], r["reason"]) for r in rows if r["step"] == "dropped"} >= {("lookup", "malformed_rsid"),
                                                                                   ("harmonize", "palindromic")}


def test_task_retries_skip_errors_retrying_cannot_fix():
    from prefect.states import Failed

    from agval.alleles.myvariant import MyVariantError
    from tasks.alleles import _retryable, artifact_key

    assert not _retryable(None, None, Failed(data=MyVariantError("bad", status=400)))
    assert _retryable(None, None, Failed(data=MyVariantError("slow", status=429)))
    assert _retryable(None, None, Failed(data=MyVariantError("gave up", status=None)))
    assert not _retryable(None, None, Failed(data=GuardError("placeholder")))
    assert artifact_key("QTL_study", "drop funnel") == "qtl-study-drop-funnel"


def test_lookup_and_harmonize_on_the_synthetic_world(world_dir):
    """The full synthetic world: API and VCF agree, and every found REF matches its genome.fa."""
    from agval.alleles.myvariant import MyVariantClient
    from agval.alleles.vcf import VcfSource
    from standins.myvariant.server import serve

    cat = pl.read_parquet(world_dir / "variants.parquet")
    absent = (world_dir / "absent_rsids.txt").read_text().split()
    ids = cat["rsid"].unique(maintain_order=True).head(3000).to_list() + absent[:20]
    with serve(world_dir) as h:
        api = MyVariantClient(h.base_url, pace=0).lookup(ids)
    vcf = VcfSource(world_dir / "dbsnp.vcf.gz").lookup(ids)
    cols = ["query", "chrom", "pos", "ref", "alt"]
    ok_api = api.filter(pl.col("status") == "ok").select(cols).sort(cols)
    assert ok_api.equals(vcf.filter(pl.col("status") == "ok").select(cols).sort(cols))
    assert set(api.filter(pl.col("query").is_in(absent))["status"]) == {"notfound"}
    study = pl.DataFrame({"row_id": [f"w{i}" for i in range(len(ids))], "rsid": ids,
                          "beta": np.linspace(-1, 1, len(ids))})
    res = harmonize(study, api, world_dir / "genome.fa", convention="alt")
    reasons = set(res.decisions.filter(~pl.col("kept"))["reason"])
    assert "ref_mismatch" not in reasons and reasons <= {"notfound", "no_hg38", "multiallelic_ambiguous"}
    assert res.table.height > 0.8 * len(ids)


def test_drops_name_the_file_row_not_the_frame_position(tmp_path):
    """A study frame already filtered by the loader: drops must carry the loader's source_row."""
    fa = tmp_path / "g.fa"
    fa.write_text(">chr1\n" + "C" * 20 + "\n")
    study = pl.DataFrame({"row_id": ["r9", "r12"], "rsid": ["rs404", "chr1:123"], "beta": [0.1, 0.2],
                          "source_row": [9, 12], "source_file": ["q.csv", "q.csv"]})
    lookup = pl.DataFrame({"query": ["rs404"], "rsid": [None], "chrom": [None], "pos": [None], "ref": [None],
                           "alt": [None], "af": [None], "source": ["t"], "source_version": ["1"], "assembly": ["hg38"],
                           "hgvs_id": [None], "status": ["notfound"]},
                          schema_overrides={"rsid": pl.Utf8, "chrom": pl.Utf8, "pos": pl.Int64, "ref": pl.Utf8,
                                            "alt": pl.Utf8, "af": pl.Float64, "hgvs_id": pl.Utf8})
    res = harmonize(study, lookup, fa, convention="unknown", guards=False)
    got = {r["row_id"]: (r["source_file"], r["source_row"]) for r in res.drops.frame().iter_rows(named=True)}
    assert got == {"r9": ("q.csv", 9), "r12": ("q.csv", 12)}
