"""Loading and checking the TWAS study inputs (STUDIES.md §2.1): SuSiE and FUSION files,
the tissue map, SuSiE retention and the TWAS significance filter. Plain functions.

Every function returns frames carrying the loaders' ``row_id`` and adds what it drops to
a :class:`~agval.drops.DropLog` (stage and reason, see ``docs/metrics-twas.md``).
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Literal, Sequence

import polars as pl

from agval.drops import DropLog
from agval.errors import InputError
from agval.io._common import record_drops, split_drops
from agval.io.twas import TissueMap, UnknownTissueError, load_fusion_dat, load_susie, load_tissue_map

__all__ = ["expand_paths", "load_susie_files", "load_twas_files", "check_tissues", "retain_susie",
           "significant_pairs", "dedupe_twas_pairs", "resolve_tissue_map", "DEFAULT_PIP_THRESHOLD",
           "load_eqtl_slopes", "attach_eqtl"]

#: SuSiE variants are kept when in a credible set (``cs >= 0``) or with ``pip`` above this.
DEFAULT_PIP_THRESHOLD = 0.01

_DATA_SUFFIXES = (".tsv", ".tsv.gz", ".txt", ".txt.gz", ".dat", ".dat.gz", ".csv", ".csv.gz", ".tab", ".tab.gz")
_ENSG = re.compile(r"ENS[A-Z]*G\d+(?:\.\d+)?")
_GLOB_CHARS = set("*?[")


def expand_paths(spec: str | Path | Sequence[str | Path], *, what: str) -> list[Path]:
    """Files named by ``spec``: a file, a folder (its data files: ``.tsv``, ``.txt``, ``.dat``,
    ``.csv``, plain or ``.gz``, recursively, sorted), a glob pattern, or a list of these.

    Raises :class:`InputError` for a path that does not exist or when nothing is found.
    """
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    out: list[Path] = []
    for item in items:
        s = str(item)
        if _GLOB_CHARS & set(s):
            hits = sorted(Path(p) for p in glob.glob(s, recursive=True) if Path(p).is_file())
            if not hits:
                raise InputError(f"no {what} files match the pattern", file=s)
            out.extend(hits)
            continue
        p = Path(s)
        if p.is_dir():
            hits = sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(_DATA_SUFFIXES))
            if not hits:
                raise InputError(f"the {what} folder holds no data files ({', '.join(_DATA_SUFFIXES)})", file=p)
            out.extend(hits)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{what} file or folder not found", file=p)
    return list(dict.fromkeys(out))


def _name_parts(path: Path) -> tuple[str | None, str | None]:
    """(gene id, tissue) from a file name like ``<tissue>.<ENSG...>.susie.tsv``; the tissue is the
    part before the gene id, else the parent folder's name."""
    m = _ENSG.search(path.name)
    gene = m.group(0) if m else None
    tissue = None
    if m:
        tissue = path.name[:m.start()].strip("._- ") or None
    if tissue is None and path.parent.name:
        tissue = path.parent.name
    return gene, tissue


def load_susie_files(spec: str | Path | Sequence[str | Path], *, drops: DropLog | None = None,
                     pip_tolerance: float = 1e-9) -> pl.DataFrame:
    """Every SuSiE file of ``spec`` (see :func:`expand_paths`) through
    :func:`agval.io.twas.load_susie`, concatenated.

    Gene and tissue come from the files' columns; a file without them takes them from its
    name (``<tissue>.<ENSG id>[...]`` or ``<tissue>/<ENSG id>[...]``). A PIP outside [0, 1]
    raises :class:`InputError` naming the file, column and row.
    """
    drops = drops if drops is not None else DropLog()
    parts = []
    for f in expand_paths(spec, what="SuSiE"):
        gene, tissue = _name_parts(f)
        df, d = load_susie(f, gene_id=gene, tissue=tissue, pip_tolerance=pip_tolerance)
        drops.extend(d)
        parts.append(df)
    return _concat_unique_ids(parts)



def _concat_unique_ids(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Stack per-file tables; when two files share a name (different folders) their row ids
    collide, so ids become ``<source_file>:<source_row>``."""
    df = pl.concat(parts, how="vertical_relaxed")
    if df["row_id"].is_duplicated().any():
        df = df.with_columns((pl.col("source_file") + ":" + pl.col("source_row").cast(pl.Utf8)).alias("row_id"))
    return df

def load_twas_files(spec: str | Path | Sequence[str | Path], *, drops: DropLog | None = None) -> pl.DataFrame:
    """Every FUSION ``.dat`` file of ``spec`` through :func:`agval.io.twas.load_fusion_dat`
    (tissue from a ``tissue`` column, else the file name without extensions)."""
    drops = drops if drops is not None else DropLog()
    parts = []
    for f in expand_paths(spec, what="TWAS (FUSION .dat)"):
        stem = f.name
        for ext in (".gz", ".dat", ".tsv", ".txt", ".csv", ".tab"):
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
        df, d = load_fusion_dat(f, tissue=stem)
        drops.extend(d)
        parts.append(df)
    return _concat_unique_ids(parts)


def resolve_tissue_map(path: str | Path | None = None) -> TissueMap:
    """The spec's default map (:data:`agval.io.twas.DEFAULT_TISSUE_MAP`) with the study's
    override file (``path``: TOML or CSV, see :func:`agval.io.twas.load_tissue_map`) applied."""
    return load_tissue_map(path) if path else load_tissue_map()


def check_tissues(frames: dict[str, pl.DataFrame], tissue_map: TissueMap, *,
                  policy: Literal["error", "drop"] = "error", drops: DropLog | None = None,
                  ) -> dict[str, pl.DataFrame]:
    """Every tissue of the TWAS / SuSiE tables must be in the tissue map.

    ``policy="error"`` raises :class:`~agval.io.twas.UnknownTissueError` naming the unknown
    tissues and the known ones; ``"drop"`` drops their rows (stage ``load``, reason
    ``tissue_not_in_map``). ``frames``: ``{label: frame with tissue}``.
    """
    drops = drops if drops is not None else DropLog()
    unknown = sorted({t for df in frames.values() for t in df["tissue"].drop_nulls().unique().to_list()
                      if t not in tissue_map})
    if unknown and policy == "error":
        files = sorted({f for df in frames.values()
                        for f in df.filter(pl.col("tissue").is_in(unknown))["source_file"].unique().to_list()})
        raise UnknownTissueError(
            f"tissue(s) {unknown} are not in the tissue map ({tissue_map.source}); known tissues: "
            f"{', '.join(tissue_map.tissues)}. Add them through a tissue-map override (study field "
            f"'tissue_map', TOML or CSV), or set unmapped_tissues='drop'", file=files[0] if files else None)
    out = {}
    for label, df in frames.items():
        out[label] = split_drops(df, pl.col("tissue").is_in(unknown), drops, "tissue_not_in_map",
                                 detail=pl.format("tissue {} is not in the tissue map", pl.col("tissue")))
    return out


def dedupe_twas_pairs(twas: pl.DataFrame, *, drops: DropLog | None = None) -> pl.DataFrame:
    """One FUSION row per (gene_id, tissue): the smallest TWAS.P wins; the others are counted
    drops (``duplicate_twas_pair``, e.g. the same gene from two weight panels)."""
    drops = drops if drops is not None else DropLog()
    ranked = twas.with_columns(
        pl.col("twas_p").rank("ordinal").over("gene_id", "tissue").alias("_r"))
    dup = ranked.filter(pl.col("_r") > 1)
    if dup.height:
        record_drops(drops, dup, "duplicate_twas_pair",
                     detail=pl.format("another row of {} / {} has a smaller TWAS.P", pl.col("gene_id"),
                                      pl.col("tissue")))
    return ranked.filter(pl.col("_r") == 1).drop("_r")


def significant_pairs(twas: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """FUSION rows with ``TWAS.P < threshold`` (the spec's 4.7e-6 ≈ 0.05 / 10,600 tests)."""
    return twas.filter(pl.col("twas_p") < threshold)


def retain_susie(susie: pl.DataFrame, *, pip_threshold: float = DEFAULT_PIP_THRESHOLD,
                 keep_credible_sets: bool = True) -> pl.DataFrame:
    """SuSiE rows kept for triplets: ``cs >= 0`` (in a 95 % credible set, when
    ``keep_credible_sets``) or ``pip > pip_threshold``."""
    keep = pl.col("pip") > pip_threshold
    if keep_credible_sets:
        keep = keep | (pl.col("cs") >= 0)
    return susie.filter(keep)


def load_eqtl_slopes(spec: str | Path | Sequence[str | Path], *, tissues: Sequence[str] | None = None,
                     drops: DropLog | None = None) -> pl.DataFrame:
    """The marginal eQTL effects for Q1's primary estimand: GTEx v8
    ``<Tissue>.v8.signif_variant_gene_pairs.txt.gz`` files (a file, folder, glob or list;
    :func:`agval.io.load_gtex_signif_pairs`, P1: by header name).

    The tissue is the file name up to ``.v8.`` (GTEx's naming), or the file's ``tissue``
    column. ``slope`` is the effect of the ALT allele of ``variant_id`` (GTEx convention), so
    it is already oriented like the scored variant ``chrom:pos:ref>alt``.

    Returns ``variant_key, gene_id, tissue, eqtl_slope`` (one row per key; a duplicated
    (variant, gene, tissue) keeps the first row), restricted to ``tissues`` when given.
    Loader drops (malformed ids, missing slopes) go to ``drops`` under stage ``eqtl``.
    """
    from agval.io import load_gtex_signif_pairs

    drops = drops if drops is not None else DropLog()
    parts = []
    for f in expand_paths(spec, what="eQTL"):
        tissue = f.name.split(".v8.")[0] if ".v8." in f.name else None
        df, d = load_gtex_signif_pairs(f, tissue=tissue)
        drops.extend(d)
        if "tissue" not in df.columns or df["tissue"].null_count() == df.height:
            raise InputError("cannot tell the eQTL file's tissue: name it <Tissue>.v8.<...> (GTEx) or give a "
                             "'tissue' column", file=f)
        parts.append(df.select(pl.format("{}:{}:{}>{}", "chrom", "pos", "ref", "alt").alias("variant_key"),
                               "gene_id", pl.col("tissue").cast(pl.Utf8),
                               pl.col("beta").cast(pl.Float64).alias("eqtl_slope")))
    out = pl.concat(parts) if parts else pl.DataFrame(
        schema={"variant_key": pl.Utf8, "gene_id": pl.Utf8, "tissue": pl.Utf8, "eqtl_slope": pl.Float64})
    if tissues is not None:
        out = out.filter(pl.col("tissue").is_in(list(tissues)))
    return out.filter(pl.col("eqtl_slope").is_finite()).unique(["variant_key", "gene_id", "tissue"], keep="first",
                                                                maintain_order=True)


def attach_eqtl(triplets: pl.DataFrame, eqtl: pl.DataFrame | None) -> pl.DataFrame:
    """``triplets`` with an ``eqtl_slope`` column (ALT of ``variant_key``; null where the
    eQTL table has no row for the (variant, gene, tissue), or when ``eqtl`` is None). A row
    listed with REF and ALT swapped is used with its slope negated."""
    if eqtl is None or eqtl.height == 0:
        return triplets.drop("eqtl_slope", strict=False).with_columns(
            pl.lit(None, dtype=pl.Float64).alias("eqtl_slope"))
    parts = eqtl["variant_key"].str.split_exact(":", 2).struct.unnest()
    al = parts["field_2"].str.split_exact(">", 1).struct.unnest()
    swapped = eqtl.with_columns((parts["field_0"] + ":" + parts["field_1"] + ":" + al["field_1"] + ">"
                                 + al["field_0"]).alias("variant_key"), -pl.col("eqtl_slope"))
    both = pl.concat([eqtl, swapped]).unique(["variant_key", "gene_id", "tissue"], keep="first",
                                              maintain_order=True)
    return triplets.drop("eqtl_slope", strict=False).join(both, on=["variant_key", "gene_id", "tissue"],
                                                          how="left")
