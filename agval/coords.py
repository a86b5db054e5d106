"""Genomic coordinates: one convention, enforced by types.

Convention (the AlphaGenome SDK's own for variants):

* ``chrom`` carries the ``chr`` prefix (``chr1``, ``chrX``);
* ``pos`` is **1-based**: the first base of REF is ``genome[chrom][pos - 1]`` in a
  0-based Python string;
* alleles are upper-case ``ACGT`` strings; REF is never empty (VCF style anchoring
  for indels), ALT is never empty;
* the build is GRCh38 (hg38) for human unless stated; coordinates from another build
  are refused, never silently used (:class:`~agval.errors.BuildMismatchError`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from agval.errors import BuildMismatchError, InputError

_BASES = re.compile(r"^[ACGT]+$")
_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


class Build(str, enum.Enum):
    """Genome assemblies agval knows by name."""

    GRCh38 = "hg38"
    GRCh37 = "hg19"
    GRCm39 = "mm39"
    GRCm38 = "mm10"
    NCBIm37 = "mm9"

    @classmethod
    def parse(cls, value: "str | Build") -> "Build":
        if isinstance(value, Build):
            return value
        v = str(value).strip().lower()
        aliases = {"grch38": "hg38", "b38": "hg38", "grch37": "hg19", "b37": "hg19",
                   "grcm38": "mm10", "grcm39": "mm39", "ncbim37": "mm9"}
        v = aliases.get(v, v)
        for b in cls:
            if b.value == v:
                return b
        raise InputError(f"unknown genome build {value!r}")


def require_build(found: Build | str, expected: Build | str = Build.GRCh38, *, what: str = "coordinates") -> None:
    """Raise :class:`BuildMismatchError` unless ``found`` is ``expected``."""
    f, e = Build.parse(found), Build.parse(expected)
    if f is not e:
        raise BuildMismatchError(
            f"{what} are on {f.value} but {e.value} is required; liftover is not done "
            f"implicitly (a {f.value} position scored on {e.value} is a different base)")


#: The one chromosome alias table: a name without its ``chr`` prefix, upper-cased, ->
#: the canonical name without the prefix. PLINK codes 23/24/25/26 are X, Y, X's
#: pseudo-autosomal part (PLINK ``XY``, scored on chrX) and the mitochondrion; ``MT``
#: and ``M`` are both ``chrM``. Any other name keeps its spelling (``chr1``, ``chr17``,
#: ``chrUn_...``).
CHROM_ALIASES: dict[str, str] = {"X": "X", "Y": "Y", "XY": "X", "M": "M", "MT": "M",
                                 "23": "X", "24": "Y", "25": "X", "26": "M"}

#: RefSeq accessions of the GRCh38 primary chromosomes (version suffix ignored):
#: ``NC_000001`` .. ``NC_000022`` -> ``chr1`` .. ``chr22``, ``NC_000023``/``24`` -> X/Y,
#: ``NC_012920`` (the rCRS mitochondrion) -> ``chrM``.
REFSEQ_CHROMS: dict[str, str] = {**{f"NC_{i:06d}": f"chr{i}" for i in range(1, 23)},
                                 "NC_000023": "chrX", "NC_000024": "chrY", "NC_012920": "chrM"}

#: Other RefSeq contigs (``NT_``/``NW_``/unplaced ``NC_``) are not chromosomes: they keep
#: their name, without a ``chr`` prefix (so a :class:`Variant` refuses them).
_REFSEQ_PREFIXES = ("NC_", "NT_", "NW_")
_ACC_LEN = 9  # len("NC_000001")


def normalize_chrom(chrom: str | int) -> str:
    """Canonical chromosome name, by :data:`CHROM_ALIASES` and :data:`REFSEQ_CHROMS`.

    ``1``, ``'1'``, ``'chr1'``, ``'CHR1'`` -> ``'chr1'``; ``x`` -> ``chrX``; ``MT``/``M``/``26``
    -> ``chrM``; ``23``/``25`` -> ``chrX``; ``24`` -> ``chrY``; ``NC_000001.11`` -> ``chr1``;
    ``NT_187361.1`` stays as written. :func:`chrom_expr` is the same rule on a polars column.
    """
    c = str(chrom).strip()
    acc = c.split(".", 1)[0]
    if acc in REFSEQ_CHROMS:
        return REFSEQ_CHROMS[acc]
    if c.startswith(_REFSEQ_PREFIXES):
        return c
    if c[:3].lower() == "chr":
        c = c[3:]
    return "chr" + CHROM_ALIASES.get(c.upper(), c)


def _case_variants(word: str) -> list[str]:
    """Every upper/lower spelling of ``word`` (``mt`` -> ``mt``, ``mT``, ``Mt``, ``MT``)."""
    import itertools

    return ["".join(t) for t in itertools.product(*({ch.lower(), ch.upper()} for ch in word))]


def chrom_expr(e, *, fast: bool = False):
    """:func:`normalize_chrom` on a polars expression (same table, same result; a parity
    test checks every alias). Missing stays null.

    ``fast=False`` casts to text and strips whitespace first. ``fast=True`` is for tens of
    millions of rows: the input must already be text with missing values null, and the
    expression uses only cheap, streaming-friendly operations (equality, ``starts_with``,
    ``slice``; no regex, no stripping, no ``str.replace``, which made the streaming engine
    hold the whole column).
    """
    import polars as pl

    if not fast:
        e = e.cast(pl.Utf8).str.strip_chars()
    pre = pl.lit(False)
    for v in _case_variants("chr"):
        pre = pre | e.str.starts_with(v)
    core = pl.when(pre).then(e.str.slice(3)).otherwise(e)
    out = pl.lit("chr") + core
    by_canon: dict[str, list[str]] = {}
    for alias, canon in CHROM_ALIASES.items():
        by_canon.setdefault(canon, []).extend(_case_variants(alias))
    chain = pl
    for canon, spellings in by_canon.items():
        chain = chain.when(core.is_in(spellings)).then(pl.lit("chr" + canon))
    out = chain.otherwise(out)
    acc = e.str.slice(0, _ACC_LEN)
    whole_acc = (e.str.len_bytes() == _ACC_LEN) | (e.str.slice(_ACC_LEN, 1) == ".")
    refseq = acc.replace_strict(REFSEQ_CHROMS, default=None, return_dtype=pl.Utf8)
    other = pl.lit(False)
    for p in _REFSEQ_PREFIXES:
        other = other | e.str.starts_with(p)
    return (pl.when(whole_acc & refseq.is_not_null()).then(refseq)
            .when(other).then(e)
            .otherwise(out))


def revcomp(seq: str) -> str:
    """Reverse complement (keeps case, N stays N)."""
    return seq.translate(_COMPLEMENT)[::-1]


def complement(seq: str) -> str:
    """Complement without reversing (strand flip of an allele)."""
    return seq.translate(_COMPLEMENT)


def is_palindromic(ref: str, alt: str) -> bool:
    """A/T or C/G SNV: the strand cannot be told from the alleles alone."""
    return len(ref) == 1 and len(alt) == 1 and complement(ref) == alt


@dataclass(frozen=True, slots=True, order=True)
class Variant:
    """A variant on hg38, 1-based, VCF-style alleles. Immutable and hashable."""

    chrom: str
    pos: int
    ref: str
    alt: str

    def __post_init__(self):
        if not self.chrom.startswith("chr"):
            raise InputError(f"chromosome {self.chrom!r} must carry the 'chr' prefix (use normalize_chrom)")
        if not isinstance(self.pos, int) or self.pos < 1:
            raise InputError(f"position {self.pos!r} must be a 1-based integer >= 1")
        for name, allele in (("ref", self.ref), ("alt", self.alt)):
            if not _BASES.match(allele or ""):
                raise InputError(f"{name} allele {allele!r} must be a non-empty ACGT string")
        if self.ref == self.alt:
            raise InputError(f"ref and alt are identical ({self.ref}) at {self.chrom}:{self.pos}")

    @property
    def key(self) -> str:
        """Canonical string key, ``chr1:12345:A>G`` (1-based)."""
        return f"{self.chrom}:{self.pos}:{self.ref}>{self.alt}"

    @property
    def is_snv(self) -> bool:
        return len(self.ref) == 1 and len(self.alt) == 1

    @property
    def start0(self) -> int:
        """0-based start of REF (for slicing a Python string)."""
        return self.pos - 1

    @property
    def end0(self) -> int:
        """0-based exclusive end of REF."""
        return self.pos - 1 + len(self.ref)

    @classmethod
    def parse(cls, key: str) -> "Variant":
        """Parse ``chr1:12345:A>G`` (also accepts ``chr1:12345_A_G`` / ``chr1_12345_A_G_b38``)."""
        m = re.match(r"^(chr\w+)[:_](\d+)[:_]([ACGT]+)[>_]([ACGT]+)(?:_b38)?$", key.strip())
        if not m:
            raise InputError(f"cannot parse variant {key!r}; expected chr1:12345:A>G")
        return cls(m.group(1), int(m.group(2)), m.group(3), m.group(4))

    def to_sdk(self, name: str = ""):
        """The AlphaGenome SDK's ``genome.Variant`` (same 1-based convention)."""
        from alphagenome.data import genome

        return genome.Variant(chromosome=self.chrom, position=self.pos,
                              reference_bases=self.ref, alternate_bases=self.alt, name=name)

    def interval(self, width: int):
        """An SDK ``genome.Interval`` of ``width`` bp centred on the variant's REF."""
        return self.to_sdk().reference_interval.resize(width)
