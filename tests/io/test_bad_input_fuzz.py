"""Property-based fuzzing of every table loader (issue 15): whatever the bytes, a loader
returns a result or raises an :class:`~agval.errors.AgvalError` - never an uncaught
exception (IndexError, polars' ComputeError, EOFError, UnicodeDecodeError, ...).

Tables are built from each format's own headers mixed with stray names, cells drawn from
the values that break parsers (numbers, NA tokens, inf, quotes, separators, rsIDs and
positions in odd shapes, non-ASCII, very long cells), a random separator, and sometimes
gzip, truncated gzip or raw bytes. Examples are bounded so the file runs in seconds.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agval.errors import AgvalError

pytestmark = pytest.mark.filterwarnings("ignore")

CELLS = st.one_of(
    st.sampled_from(["", "NA", "nan", ".", "inf", "-inf", "Infinity", "1e400", "0", "-0", "1.5", "-2",
                     "1,5", "1e-300", "abc", '"', '""', "\t", ",", ";", " ", "rs123", "RS9", "rs", "chr1",
                     "chr1:100_rs5", "chr1:100-200", "1:100", "chr1_100_A_G_b38", "chrX_5_AT_A_b37", "A", "G",
                     "ACGT", "N", "<DEL>", "ENSG00000141510.16", "Lung", "UBERON:0002048", "RNA_SEQ", "x" * 300,
                     "é", "\ufeff", "-1", "2", "0.5", "1.0000001", "hg19", "hg38", "GRCh37", "+", "-",
                     "PPREsyn_0_chr1_146008_146024_-_TAAGGTCAAAGGTCGT"]),
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)

HEADERS = {
    "gse86886": ["SNP", "gene", "beta", "Beta", "t-stat", "p-value", "FDR"],
    "gse116193": ["epiQTL rsID", "Chr", "Bp (hg19)", "Ref Allelec", "Alt Alleled", "log2 (effect size)",
                  "H3K27ac p-valueb", "H3K4me1 p-valueb", "H3K4me3 p-valueb"],
    "gtex": ["variant_id", "gene_id", "tss_distance", "ma_samples", "ma_count", "maf", "pval_nominal", "slope",
             "slope_se", "pval_nominal_threshold", "min_pval_nominal", "pval_beta"],
    "generic": ["rsid", "chrom", "pos", "ref", "alt", "beta", "se", "p", "effect_allele", "other_allele", "build",
                "trait_id", "cell_type"],
    "gwas": ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta", "standard_error",
             "effect_allele_frequency", "p_value", "rsid", "n", "z", "odds_ratio", "variant_id"],
    "susie": ["rsid", "pip", "cs", "cs_size", "gene_id", "tissue"],
    "fusion": ["FILE", "ID", "CHR", "P0", "P1", "HSQ", "BEST.GWAS.ID", "BEST.GWAS.Z", "EQTL.ID", "EQTL.R2",
               "EQTL.Z", "EQTL.GWAS.Z", "NSNP", "NWGT", "MODEL", "MODELCV.R2", "MODELCV.PV", "TWAS.Z", "TWAS.P",
               "tissue", "gene_id"],
    "tissue_map": ["tissue", "assay", "ontology_curie"],
    "gse84888": ["name", "tags", "counts.rna", "counts.plasmid"],
    "counts": ["element_id", "barcode", "rna", "dna", "tags", "element", "rna_count", "dna_count"],
    "elements": ["element_id", "sequence", "id", "seq"],
}


_NUM = st.floats(-50, 50, allow_nan=False).map(lambda x: f"{x:.4g}")
_P = st.floats(1e-30, 1.0).map(lambda x: f"{x:.3g}")
_INT = st.integers(1, 5_000_000).map(str)
_RS = st.integers(1, 10**9).map(lambda i: f"rs{i}")
_CHR = st.sampled_from(["1", "chr2", "X", "chrM", "22"])
_BASE = st.sampled_from(["A", "C", "G", "T", "AT", "G"])
#: plausible values per column, so that many examples get past the header and into the rows
VALID = {
    "SNP": st.builds(lambda c, p, r: f"chr{c}:{p}_{r}", st.integers(1, 22), st.integers(1, 10**6), _RS),
    "gene": st.builds(lambda p: f"chr1:{p}-{p + 500}", st.integers(1, 10**6)),
    "epiQTL rsID": _RS, "Chr": _CHR, "Bp (hg19)": _INT, "Ref Allelec": _BASE, "Alt Alleled": _BASE,
    "log2 (effect size)": _NUM, "variant_id": st.builds(lambda c, p: f"chr{c}_{p}_A_G_b38", st.integers(1, 22), _INT),
    "gene_id": st.sampled_from(["ENSG00000141510.16", "ENSG00000000003"]), "rsid": _RS, "chrom": _CHR,
    "pos": _INT, "ref": _BASE, "alt": _BASE, "effect_allele": _BASE, "other_allele": _BASE,
    "chromosome": _CHR, "base_pair_location": _INT, "build": st.sampled_from(["hg38", "hg19", "GRCh38"]),
    "pip": st.floats(0, 1).map(lambda x: f"{x:.3g}"), "cs": st.sampled_from(["-1", "0", "1", "2"]),
    "tissue": st.sampled_from(["Lung", "Whole_Blood", "Heart_Left_Ventricle"]),
    "assay": st.sampled_from(["RNA_SEQ", "DNASE", "ATAC", "CAGE"]),
    "ontology_curie": st.sampled_from(["UBERON:0002048", "CL:0000236", ""]),
    "name": st.sampled_from(["PPREsyn_0_chr1_146008_146024_-_TAAGGTCAAAGGTCGT",
                             "PPREsyn_0_chr1_146008_146024_-_TAAGGTCAAAGGTCGT_pparg_69_81_mut1", "bad_name"]),
    "element_id": st.sampled_from(["e1", "e2", "e3"]), "sequence": st.text("ACGT", min_size=1, max_size=30),
    "ID": st.sampled_from(["PITX2", "ENSG00000141510"]), "CHR": _CHR, "TWAS.Z": _NUM, "TWAS.P": _P,
}


def _valid(col: str):
    if col in VALID:
        return VALID[col]
    low = col.lower()
    if any(k in low for k in ("p_value", "p-value", "pval", "twas.p", "pv")):
        return _P
    if any(k in low for k in ("tags", "count", "rna", "dna", "plasmid", "n", "nsnp", "nwgt", "ma_")):
        return st.integers(0, 5000).map(str)
    return _NUM


@st.composite
def tables(draw, fmt: str) -> bytes:
    names = HEADERS[fmt]
    header = draw(st.lists(st.one_of(st.sampled_from(names), st.text(max_size=8)), min_size=0, max_size=10))
    if draw(st.integers(0, 3)):  # usually a plausible header: every known column, some shuffled/duplicated
        header = draw(st.permutations(names)) + header[:draw(st.integers(0, 2))]
    sep = draw(st.sampled_from(["\t", "\t", ",", ";", " ", "|"]))
    n_rows = draw(st.integers(0, 8))
    bad_share = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))

    def cell(col: str) -> str:
        if draw(st.floats(0, 1)) < bad_share:
            return draw(CELLS)
        return draw(_valid(col))

    rows = []
    for _ in range(n_rows):
        r = [cell(c) for c in header]
        if draw(st.floats(0, 1)) < bad_share:  # ragged
            r = r[:-1] if draw(st.booleans()) else r + [draw(CELLS)]
        rows.append(r)
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(sep.join(r) for r in [header, *rows]) + draw(st.sampled_from(["", eol]))
    data = text.encode("utf-8", errors="surrogatepass")
    how = draw(st.sampled_from(["plain", "plain", "plain", "gzip", "truncated-gzip", "bytes"]))
    if how == "gzip":
        data = gzip.compress(data)
    elif how == "truncated-gzip":
        g = gzip.compress(data)
        data = g[: draw(st.integers(0, max(len(g) - 1, 0)))]
    elif how == "bytes":
        data = draw(st.binary(max_size=200))
    return data


def _fasta(draw_seq) -> bytes:
    return draw_seq


@st.composite
def fastas(draw) -> bytes:
    recs = draw(st.lists(st.tuples(st.one_of(st.text(max_size=10), st.sampled_from(["e1", "e1", "e 2", ""])),
                                   st.text(alphabet="ACGTNacgtn-XZ* \r", max_size=40)), max_size=5))
    data = "".join(f">{h}\n{s}\n" for h, s in recs).encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        data = draw(st.binary(max_size=100)) + data
    return data


def _call(loader, data: bytes, suffix: str = ".txt"):
    fd, name = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            return loader(Path(name))
        except AgvalError:
            return None
    finally:
        os.unlink(name)


FUZZ = settings(max_examples=int(os.environ.get("AGVAL_FUZZ_EXAMPLES", "40")), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _loaders():
    from agval.io import (load_count_table, load_element_sequences, load_fusion_dat, load_generic_qtl,
                         load_gse84888_counts, load_gse86886_caqtl, load_gse86886_eqtl, load_gse116193_hqtl,
                         load_gtex_signif_pairs, load_gwas_sumstats, load_susie, load_tissue_map)

    return {
        "gse86886-caqtl": ("gse86886", load_gse86886_caqtl),
        "gse86886-eqtl": ("gse86886", load_gse86886_eqtl),
        "gse116193-hqtl": ("gse116193", load_gse116193_hqtl),
        "gtex": ("gtex", load_gtex_signif_pairs),
        "generic-qtl": ("generic", lambda p: load_generic_qtl(p, build="hg38")),
        "generic-qtl-nobuild": ("generic", load_generic_qtl),
        "gwas": ("gwas", lambda p: load_gwas_sumstats(p, build="hg38")),
        "gwas-lenient": ("gwas", lambda p: load_gwas_sumstats(p, build="hg19", strict=False, rsids=["rs123"])),
        "susie": ("susie", lambda p: load_susie(p, gene_id="ENSG1", tissue="Lung")),
        "fusion": ("fusion", lambda p: load_fusion_dat(p, tissue="Lung")),
        "tissue-map": ("tissue_map", lambda p: load_tissue_map(p)),
        "gse84888": ("gse84888", load_gse84888_counts),
        "count-table": ("counts", load_count_table),
        "element-table": ("elements", load_element_sequences),
    }


LOADERS = sorted(_loaders())


@pytest.mark.parametrize("name", LOADERS)
def test_loader_never_raises_an_uncaught_exception(name):
    fmt, loader = _loaders()[name]

    @FUZZ
    @given(tables(fmt))
    def run(data):
        _call(loader, data, ".tsv" if name != "tissue-map" else ".tsv")

    run()


def test_element_fasta_never_raises_an_uncaught_exception():
    from agval.io import load_element_sequences

    @FUZZ
    @given(fastas())
    def run(data):
        _call(load_element_sequences, data, ".fa")

    run()


def test_vcf_source_never_raises_an_uncaught_exception():
    from agval.alleles.vcf import VcfSource

    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"

    @FUZZ
    @given(st.lists(st.lists(CELLS, min_size=0, max_size=9), max_size=6), st.booleans(),
           st.sampled_from(["plain", "gzip", "truncated"]))
    def run(rows, with_header, how):
        text = (header if with_header else "") + "".join("\t".join(r) + "\n" for r in rows)
        data = text.encode("utf-8", errors="surrogatepass")
        if how != "plain":
            data = gzip.compress(data)
            if how == "truncated":
                data = data[: len(data) // 2]
        _call(lambda p: VcfSource(p).lookup(["rs123", "rs9"]), data, ".vcf.gz" if how != "plain" else ".vcf")

    run()


def test_reference_fasta_never_raises_an_uncaught_exception():
    from agval.genome import ReferenceGenome

    @FUZZ
    @given(fastas(), st.booleans())
    def run(data, fetch):
        def load(p):
            g = ReferenceGenome(p)
            try:
                if fetch and g.lengths:
                    name = next(iter(g.lengths))
                    g.fetch(name, 0, 5)
                    g.ref_matches(name, 1, "A")
            finally:
                g.close()
                Path(str(p) + ".fai").unlink(missing_ok=True)
        _call(load, data, ".fa")

    run()
