"""Issue 15: every bad input ends in one clear answer (SIMULATED world, seed 7).

Each case copies a small demo study, breaks one thing (study TOML, deployments config,
QTL / TWAS / MPRA tables, VCF, FASTA) and runs ``agval`` in-process. The contract
(:func:`tests.badinput_helpers.assert_one_clear_error`): exit 2; one ``error:`` line that
names the file and, where there is one, the column, row or line (or the config field);
at most one ``hint:`` line; no traceback on the terminal; no run folder left
``completed`` or ``running``.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from tests.badinput_helpers import (assert_one_clear_error, copy_study, corrupt_gzip, edit_toml, manifests,
                                    rewrite_lines, run_agval, set_cell, truncate_gzip)

pytestmark = pytest.mark.slow

CAQTL = "caqtl-cd4/ATAC-QTLs.csv"
HQTL = "hqtl-lcl/Pelikan_et_al_hQTL_summary.csv"
GWAS = "gwas/af_gwas.tsv.gz"
POOL1 = "DEMO_Pool1_MPRA.txt"
ELEMENTS = "DEMO_elements.fa"


@pytest.fixture(scope="module")
def studies(world_dir, tmp_path_factory) -> dict[str, Path]:
    from standins.world.studies import mpra, qtl, twas

    base = tmp_path_factory.mktemp("badinput-studies")
    qtl.generate(world_dir, base / "qtl", seed=0, n_caqtl=40, n_hqtl=40, n_boot=50)
    twas.generate(world_dir, base / "twas", seed=0, n_genes=6, n_variants=6, n_background=200, n_permutations=20)
    mpra.generate(world_dir, base / "mpra", seed=0, n_constructs=60, n_boot=50, n_perm=50, sensitivity=False)
    return {"qtl": base / "qtl", "twas": base / "twas", "mpra": base / "mpra"}


@pytest.fixture
def study(studies, tmp_path):
    """``study(kind)`` -> a private copy of that demo study folder (absolute paths rewritten)."""

    def make(kind: str) -> Path:
        dst = copy_study(studies[kind], tmp_path / kind)
        for toml in dst.glob("*.toml"):
            toml.write_text(toml.read_text().replace(str(studies[kind]), str(dst)))
        return dst

    return make


# --------------------------------------------------------------------------- the cases
# Each mutation takes the study folder and returns (study file, [texts the error line names]).

def _lines(d: Path, rel: str, fn):
    rewrite_lines(d / rel, fn)


def _cell(rel: str, sep: str, column: str, row: int, value: str, toml: str, mention_col: str | None = None):
    def mutate(d: Path):
        _lines(d, rel, lambda ls: set_cell(ls, sep, column, row, value))
        return d / toml, [str(d / rel), repr(mention_col or column), f"row {row}"]
    return mutate


def _header(rel: str, sep: str, old: str, new: str, toml: str, mention: list[str]):
    def mutate(d: Path):
        def fn(ls):
            cells = ls[0].split(sep)
            cells[cells.index(old)] = new
            ls[0] = sep.join(cells)
            return ls
        _lines(d, rel, fn)
        return d / toml, [str(d / rel), *mention]
    return mutate


def _toml(toml: str, replace=None, section_add=None, mention=()):
    def mutate(d: Path):
        edit_toml(d / toml, replace=replace, section_add=section_add)
        return d / toml, [str(d / toml), *mention]
    return mutate


def _file(rel: str, fn, toml: str, mention=()):
    def mutate(d: Path):
        fn(d / rel)
        return d / toml, [str(d / rel), *mention]
    return mutate


def _write(content: bytes):
    return lambda p: p.write_bytes(content)


def _gzip_table(rel: str, toml: str, how):
    """Replace ``rel`` by a gzip copy (``rel.gz``), damaged by ``how``, and point the study at it."""
    def mutate(d: Path):
        src = d / rel
        gz = src.with_name(src.name + ".gz")
        gz.write_bytes(gzip.compress(src.read_bytes()))
        how(gz)
        text = (d / toml).read_text()
        text = text.replace(str(src), str(gz)) if str(src) in text else text.replace(rel, rel + ".gz")
        (d / toml).write_text(text)
        return d / toml, [str(gz), "gzip"]
    return mutate


def _long_value(rel: str, sep: str, column: str, toml: str):
    def mutate(d: Path):
        _lines(d, rel, lambda ls: set_cell(ls, sep, column, 1, "x" * 2_000_000))
        return d / toml, [str(d / rel), repr(column), "row 1", "[...]"]
    return mutate


def _vcf(fn, mention=()):
    """TWAS lookup through a private copy of the world's dbSNP VCF, damaged by ``fn``."""
    def mutate(d: Path):
        toml = d / "twas-af-demo.toml"
        text = toml.read_text()
        world_vcf = Path(text.split('vcf = "', 1)[1].split('"', 1)[0])
        vcf = d / "dbsnp.vcf.gz"
        shutil.copy(world_vcf, vcf)
        fn(vcf)
        toml.write_text(text.replace(str(world_vcf), str(vcf)))
        return toml, [str(vcf), *mention]
    return mutate


def _vcf_line(new_line: str, at: int = 50):
    def fn(vcf: Path):
        def edit(ls):
            first = next(i for i, ln in enumerate(ls) if not ln.startswith("#"))
            ls[first + at] = new_line
            return ls
        rewrite_lines(vcf, edit)
    return fn


def _vcf_header_line(line: str):
    def fn(vcf: Path):
        rewrite_lines(vcf, lambda ls: [ls[0], line, *ls[1:]])
    return fn


def _fasta(fn, toml="caqtl-cd4.toml", mention=()):
    """The QTL study's reference FASTA replaced by a private copy, damaged by ``fn``."""
    def mutate(d: Path):
        t = d / toml
        text = t.read_text()
        world_fa = Path(text.split('reference_fasta = "', 1)[1].split('"', 1)[0])
        fa = d / "ref.fa"
        shutil.copy(world_fa, fa)
        fn(fa)
        t.write_text(text.replace(str(world_fa), str(fa)))
        return t, [str(fa), *mention]
    return mutate


def _elements(fn, mention=()):
    return _file(ELEMENTS, fn, "mpra-demo.toml", mention)


def _hg19_generic(d: Path):
    """A generic QTL table whose positions are the world's *other-build* positions, declared hg38."""
    from standins.world import World

    text = (d / "caqtl-cd4.toml").read_text()
    world_dir = text.split('standin_world = "', 1)[1].split('"', 1)[0]
    w = World.load(world_dir)
    v = (w.variants.filter((pl.col("status") == "ok") & (pl.col("kind") == "snv") & pl.col("hg19_pos").is_not_null())
         .unique("rsid", keep="first", maintain_order=True).head(60))
    w.close()
    tab = v.select(chrom="chrom", pos="hg19_pos", ref="ref", alt="alt",
                   beta=pl.int_range(60, eager=True).cast(pl.Float64) / 10 - 3, build=pl.lit("hg38"))
    tab.write_csv(d / "hg19.tsv", separator="\t")
    toml = d / "hg19.toml"
    toml.write_text(text.replace('table = "caqtl-cd4/ATAC-QTLs.csv"', 'table = "hg19.tsv"')
                    .replace('format = "gse86886"', 'format = "generic"')
                    .replace('kind = "caqtl"', 'kind = "caqtl"\nallele_route = "coordinates"', 1))
    return toml, [str(d / "hg19.tsv"), "hg19", "REF"]


CASES: list[tuple[str, str, object]] = [
    # ---- study TOML -----------------------------------------------------------------------
    ("toml-syntax", "qtl", _toml("caqtl-cd4.toml", replace={r"^seed = 0$": "seed = = 0"}, mention=["TOML"])),
    ("toml-unknown-field", "qtl", _toml("caqtl-cd4.toml", section_add={"study": "colour = 'red'"}, mention=["colour"])),
    ("toml-missing-table", "qtl", _toml("caqtl-cd4.toml", replace={r"^table = .*$": ""}, mention=["study.table"])),
    ("toml-wrong-type", "qtl", _toml("caqtl-cd4.toml", replace={r"^n_boot = .*$": 'n_boot = "many"'},
                                     mention=["study.n_boot"])),
    ("toml-name-escapes", "qtl", _toml("caqtl-cd4.toml", replace={r"^name = .*$": 'name = "../../escape"'},
                                       mention=["[study] name", "../../escape"])),
    ("toml-name-absolute", "qtl", _toml("caqtl-cd4.toml", replace={r"^name = .*$": 'name = "/tmp/agval-escape"'},
                                        mention=["[study] name"])),
    ("toml-name-empty", "qtl", _toml("caqtl-cd4.toml", replace={r"^name = .*$": 'name = ""'}, mention=["name"])),
    ("toml-name-dots", "qtl", _toml("caqtl-cd4.toml", replace={r"^name = .*$": 'name = ".."'},
                                    mention=["[study] name"])),
    ("toml-not-utf8", "qtl", _file("caqtl-cd4.toml", lambda p: p.write_bytes(b"[study]\nname = \"\xff\xfe\"\n"),
                                   "caqtl-cd4.toml", ["UTF-8"])),
    ("toml-binary", "qtl", _file("caqtl-cd4.toml", _write(bytes(range(256)) * 4), "caqtl-cd4.toml")),
    ("toml-backend-kind", "qtl", _toml("caqtl-cd4.toml", replace={r'^kind = "standin"$': 'kind = "oracle"'},
                                       mention=["backend.kind"])),
    ("toml-lookup-source", "qtl", _toml("caqtl-cd4.toml", replace={r'^source = "myvariant"$': 'source = "ftp"'},
                                        mention=["lookup.source"])),
    ("toml-effect-allele", "qtl", _toml("caqtl-cd4.toml", replace={r"^effect_allele = .*$": 'effect_allele = "up"'},
                                        mention=["effect_allele"])),
    ("toml-format", "qtl", _toml("caqtl-cd4.toml", replace={r"^format = .*$": 'format = "xlsx"'},
                                 mention=["study.format"])),
    ("toml-mpra-no-inputs", "mpra", _toml("mpra-demo.toml", replace={r"^counts = .*$": "counts = []"},
                                          mention=["mpra-demo.toml"])),
    ("toml-twas-pip", "twas", _toml("twas-af-demo.toml", replace={r"^pip_threshold = .*$": "pip_threshold = 2"},
                                    mention=["study.pip_threshold"])),
    # ---- QTL tables -------------------------------------------------------------------------
    ("qtl-table-missing", "qtl", _file(CAQTL, lambda p: p.unlink(), "caqtl-cd4.toml", ["not found"])),
    ("qtl-table-is-folder", "qtl", _file(CAQTL, lambda p: (p.unlink(), p.mkdir()), "caqtl-cd4.toml", ["folder"])),
    ("qtl-table-empty", "qtl", _file(CAQTL, _write(b""), "caqtl-cd4.toml", ["empty"])),
    ("qtl-table-binary", "qtl", _file(CAQTL, _write(bytes(range(1, 256)) * 64), "caqtl-cd4.toml")),
    ("qtl-missing-beta", "qtl", _header(CAQTL, ",", "beta", "effect", "caqtl-cd4.toml", ["'beta'", "missing"])),
    ("qtl-duplicated-beta", "qtl", _header(CAQTL, ",", "t-stat", "beta", "caqtl-cd4.toml", ["'beta'", "twice"])),
    ("qtl-duplicated-beta-quoted", "qtl", _header(CAQTL, ",", "FDR", '"beta"', "caqtl-cd4.toml", ["'beta'"])),
    ("qtl-malformed-beta", "qtl", _cell(CAQTL, ",", "beta", 7, "abc", "caqtl-cd4.toml")),
    ("qtl-10mb-value", "qtl", _long_value(CAQTL, ",", "beta", "caqtl-cd4.toml")),
    ("qtl-one-line-10mb", "qtl", _file(CAQTL, _write(b"col," * 2_600_000), "caqtl-cd4.toml", ["twice"])),
    ("qtl-ragged-row", "qtl", _file(CAQTL, lambda p: p.write_text(p.read_text().replace("\n", ",extra,cells\n", 3)
                                                                  .replace(",extra,cells\n", "\n", 1)),
                                    "caqtl-cd4.toml")),
    ("qtl-truncated-gz", "qtl", _gzip_table(CAQTL, "caqtl-cd4.toml", truncate_gzip)),
    ("qtl-corrupt-gz", "qtl", _gzip_table(CAQTL, "caqtl-cd4.toml", corrupt_gzip)),
    ("qtl-not-utf8", "qtl", _file(CAQTL, lambda p: p.write_bytes(p.read_bytes().replace(b"chr", b"\xff\xfe", 1)),
                                  "caqtl-cd4.toml")),
    ("hqtl-malformed-pos", "qtl", _cell(HQTL, ",", "Bp (hg19)", 3, "12x", "hqtl-lcl.toml")),
    ("hqtl-missing-rsid-col", "qtl", _header(HQTL, ",", "epiQTL rsID", "snp", "hqtl-lcl.toml", ["missing"])),
    ("hqtl-malformed-effect", "qtl", _cell(HQTL, ",", "log2 (effect size)", 5, "1.2.3", "hqtl-lcl.toml")),
    ("qtl-hg19-declared-hg38", "qtl", _hg19_generic),
    # ---- TWAS tables ------------------------------------------------------------------------
    ("gwas-missing", "twas", _file(GWAS, lambda p: p.unlink(), "twas-af-demo.toml", ["not found"])),
    ("gwas-truncated-gz", "twas", _file(GWAS, truncate_gzip, "twas-af-demo.toml", ["gzip", "truncated"])),
    ("gwas-corrupt-gz", "twas", _file(GWAS, corrupt_gzip, "twas-af-demo.toml", ["gzip"])),
    ("gwas-duplicated-beta", "twas", _header(GWAS, "\t", "n", "beta", "twas-af-demo.toml", ["'beta'", "twice"])),
    ("gwas-missing-alleles", "twas", _header(GWAS, "\t", "other_allele", "the_other_one", "twas-af-demo.toml",
                                             ["missing"])),
    ("gwas-malformed-se", "twas", _file(GWAS, lambda p: rewrite_lines(p, lambda ls: [ls[0]] + [
        "\t".join(c if j != 5 else "1,5" for j, c in enumerate(x.split("\t"))) for x in ls[1:] if x]),
        "twas-af-demo.toml", ["'standard_error'", "row "])),
    ("gwas-empty", "twas", _file(GWAS, lambda p: p.write_bytes(gzip.compress(b"")), "twas-af-demo.toml", ["empty"])),
    ("susie-missing-pip", "twas", lambda d: _susie_header(d, "pip", "prob")),
    ("susie-pip-above-1", "twas", lambda d: _susie_cell(d, "pip", "1.7", ["'pip'"])),
    ("susie-malformed-pip", "twas", lambda d: _susie_cell(d, "pip", "high", ["'pip'", "row 2"])),
    ("susie-duplicated", "twas", lambda d: _susie_header(d, "cs_size", "pip", ["twice"])),
    ("susie-folder-empty", "twas", lambda d: _empty_folder(d, "susie")),
    ("fusion-missing-twas-z", "twas", lambda d: _fusion_header(d, "TWAS.Z", "Z")),
    ("fusion-malformed-twas-p", "twas", lambda d: _fusion_cell(d, "TWAS.P", "tiny")),
    ("fusion-folder-empty", "twas", lambda d: _empty_folder(d, "fusion")),
    ("tissue-map-bad-assay", "twas", _file("tissue_map.tsv", lambda p: p.write_text(
        "tissue\tassay\tontology_curie\nLung\tMICROARRAY\tUBERON:0002048\n"), "twas-af-demo.toml", ["MICROARRAY"])),
    ("tissue-map-missing", "twas", _file("tissue_map.tsv", lambda p: p.unlink(), "twas-af-demo.toml", ["not found"])),
    # ---- VCF (dbSNP lookup) -----------------------------------------------------------------
    ("vcf-truncated", "twas", _vcf(truncate_gzip, ["gzip", "truncated"])),
    ("vcf-corrupt", "twas", _vcf(corrupt_gzip, ["gzip"])),
    ("vcf-bad-pos", "twas", _vcf(_vcf_line("chr1\tabc\trs1\tA\tG\t.\t.\tAF=0.1"), ["line", "'POS'"])),
    ("vcf-cut-line", "twas", _vcf(_vcf_line("chr1\t12345"), ["line", "fewer than 5"])),
    ("vcf-bad-ref", "twas", _vcf(_vcf_line("chr1\t12345\trs1\t12\tG\t.\t.\t."), ["line", "'REF'"])),
    ("vcf-hg19", "twas", _vcf(_vcf_header_line("##reference=GRCh37"), ["GRCh37"])),
    ("vcf-not-vcf", "twas", _vcf(lambda p: p.write_bytes(gzip.compress(b"rsid\tchrom\tpos\nrs1\t1\t2\n")),
                                 ["not a VCF"])),
    ("vcf-missing", "twas", _vcf(lambda p: p.unlink(), ["not found"])),
    # ---- MPRA tables ------------------------------------------------------------------------
    ("mpra-counts-missing", "mpra", _file(POOL1, lambda p: p.unlink(), "mpra-demo.toml", ["not found"])),
    ("mpra-negative-count", "mpra", _cell(POOL1, "\t", "counts.rna", 4, "-3", "mpra-demo.toml")),
    ("mpra-malformed-count", "mpra", _cell(POOL1, "\t", "counts.plasmid", 9, "12..", "mpra-demo.toml")),
    ("mpra-missing-column", "mpra", _header(POOL1, "\t", "counts.rna", "rna", "mpra-demo.toml",
                                            ["'counts.rna'", "missing"])),
    ("mpra-duplicated-column", "mpra", _header(POOL1, "\t", "tags", "counts.rna", "mpra-demo.toml",
                                               ["'counts.rna'", "twice"])),
    ("mpra-truncated-gz", "mpra", _gzip_table(POOL1, "mpra-demo.toml", truncate_gzip)),
    # ---- FASTA ----------------------------------------------------------------------------
    ("elements-missing", "mpra", _elements(lambda p: p.unlink(), ["not found"])),
    ("elements-bad-letters", "mpra", _elements(lambda p: rewrite_lines(
        p, lambda ls: [ls[0], "ACGT" * 5 + "ZZ<>" + ls[1][24:], *ls[2:]]))),
    ("elements-empty", "mpra", _elements(_write(b""))),
    ("reference-fasta-missing", "qtl", _fasta(lambda p: p.unlink(), mention=["not found"])),
    ("reference-fasta-garbage", "qtl", _fasta(lambda p: (p.write_bytes(b"\x00\x01garbage" * 100),
                                                        Path(str(p) + ".fai").unlink(missing_ok=True)))),
    ("reference-fasta-stale-fai", "qtl", _fasta(lambda p: Path(str(p) + ".fai").write_text(
        "chr1\t999999999\t6\t60\t61\n"))),
]


def _susie_file(d: Path) -> Path:
    return sorted((d / "susie").glob("*.tsv"))[0]


def _susie_header(d, old, new, mention=("missing",)):
    f = _susie_file(d)
    rewrite_lines(f, lambda ls: ["\t".join(new if c == old else c for c in ls[0].split("\t")), *ls[1:]])
    return d / "twas-af-demo.toml", [str(f), *mention]


def _susie_cell(d, col, value, mention):
    f = _susie_file(d)
    rewrite_lines(f, lambda ls: set_cell(ls, "\t", col, 2, value))
    return d / "twas-af-demo.toml", [str(f), *mention]


def _fusion_file(d: Path) -> Path:
    return sorted((d / "fusion").glob("*.dat"))[0]


def _fusion_header(d, old, new):
    f = _fusion_file(d)
    rewrite_lines(f, lambda ls: ["\t".join(new if c == old else c for c in ls[0].split("\t")), *ls[1:]])
    return d / "twas-af-demo.toml", [str(f), "missing"]


def _fusion_cell(d, col, value):
    f = _fusion_file(d)
    rewrite_lines(f, lambda ls: set_cell(ls, "\t", col, 1, value))
    return d / "twas-af-demo.toml", [str(f), repr(col), "row 1"]


def _empty_folder(d, name):
    shutil.rmtree(d / name)
    (d / name).mkdir()
    return d / "twas-af-demo.toml", [str(d / name)]


@pytest.mark.parametrize("case_id,kind,mutate", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_error(case_id, kind, mutate, study, prefect_api, capfd):
    d = study(kind)
    toml, mentions = mutate(d)
    before = manifests()
    res = run_agval(["run", kind, toml], capfd)
    assert_one_clear_error(res, mentions, before=before)


def test_there_are_at_least_60_cases():
    assert len(CASES) >= 60
    assert {k for _, k, _ in CASES} == {"qtl", "twas", "mpra"}


# --------------------------------------------------------------------------- deployments config

DEPLOY_CASES = [
    ("deploy-toml-syntax", "[watch]\ncron = \n", ["TOML"]),
    ("deploy-bad-cron", "[watch]\ncron = \"61 * * * *\"\n", ["invalid cron"]),
    ("deploy-bad-timezone", "[watch]\ncron = \"*/5 * * * *\"\ntimezone = \"Mars/Olympus\"\n", ["Mars/Olympus"]),
    ("deploy-unknown-key", "[watch]\ncron = \"*/5 * * * *\"\ncolour = 1\n", ["colour"]),
    ("deploy-unknown-kind", "[[studies]]\nname = \"x\"\nkind = \"gwas\"\nfile = \"x.toml\"\n", ["gwas"]),
    ("deploy-unset-variable", "[[backends]]\nname = \"b\"\nkind = \"standin\"\naddress = \"${AGVAL_NOPE_UNSET}\"\n",
     ["AGVAL_NOPE_UNSET", "backends[0].address"]),
    ("deploy-duplicate-study", "[[studies]]\nname = \"x\"\nkind = \"qtl\"\nfile = \"a.toml\"\n"
                               "[[studies]]\nname = \"x\"\nkind = \"qtl\"\nfile = \"b.toml\"\n", ["unique"]),
]


@pytest.mark.parametrize("case_id,text,mentions", DEPLOY_CASES, ids=[c[0] for c in DEPLOY_CASES])
def test_bad_deployments_config_gives_one_clear_error(case_id, text, mentions, tmp_path, capfd):
    cfg = tmp_path / "agval.toml"
    cfg.write_text("[demo]\nenabled = false\n" + text)
    before = manifests()
    res = run_agval(["prefect-yaml", "--config", cfg, "--out", tmp_path / "prefect.yaml"], capfd)
    named = [] if case_id == "deploy-unset-variable" else [str(cfg)]  # that one names the config field
    assert_one_clear_error(res, [*named, *mentions], before=before)
    assert not (tmp_path / "prefect.yaml").exists()


# --------------------------------------------------------------------------- counted drops, not errors

def test_non_finite_beta_is_a_counted_drop(study, prefect_api, capfd):
    """``beta = inf`` is not silently left out of the statistics: dropped.parquet counts it."""
    d = study("qtl")
    rewrite_lines(d / CAQTL, lambda ls: set_cell(set_cell(ls, ",", "beta", 3, "inf"), ",", "beta", 5, "-Infinity"))
    res = run_agval(["run", "qtl", d / "caqtl-cd4.toml", "--json"], capfd)
    assert res.code == 0, res.err
    folder = Path(json.loads(res.out)["run_folder"])
    assert json.loads((folder / "manifest.json").read_text())["status"] == "completed"
    drops = pl.read_parquet(folder / "dropped.parquet").filter(pl.col("reason") == "non_finite_beta")
    assert sorted(drops["source_row"].to_list()) == [3, 5]
    assert drops["detail"].to_list() == ["beta is inf", "beta is -inf"]


# --------------------------------------------------------------------------- unusable results / state folders

@pytest.mark.parametrize("which", ["AGVAL_SIM_RESULTS", "AGVAL_HOME"])
def test_results_or_state_folder_that_is_a_file_is_named(which, study, prefect_api, capfd, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    d = study("qtl")
    monkeypatch.setenv(which, str(blocker / "sub") if which == "AGVAL_HOME" else str(blocker))
    before = manifests()
    res = run_agval(["run", "qtl", d / "caqtl-cd4.toml"], capfd)
    assert_one_clear_error(res, [str(blocker)], before=before)
