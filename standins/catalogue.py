"""The stand-in AlphaGenome service's hand-written track catalogue (SIMULATED).

Real ontology CURIEs, biosample names and track-name styles of the AlphaGenome catalogue
for the biosamples the three studies use; every track's ``data_source`` is
:data:`standins.SIMULATED_DATA_SOURCE`. Columns are those of ``tracks.parquet``
(docs/ARCHITECTURE.md): ``organism`` (``HOMO_SAPIENS`` / ``MUS_MUSCULUS``, the SDK's
``Organism`` names), ``output_type`` (SDK ``OutputType`` names), ``name``, ``strand``
(``+``, ``-`` or ``.``), ``ontology_curie``, ``biosample_name``, ``biosample_type``
(proto enum names: ``PRIMARY_CELL``, ``CELL_LINE``, ``TISSUE``, ...), ``assay_title``,
``histone_mark``, ``transcription_factor``, ``gtex_tissue``, ``data_source``,
``nonzero_mean``. Nulls where a field does not apply.

Availability follows the real catalogue (docs STUDIES.md §1.3, §2.3): e.g. no tissue-level
ATAC or DNase for Whole_Blood, no ATAC for Prostate or skin, heart-atrium ATAC only on the
atrium terms UBERON:0002078/0002079. One deliberate difference: the GTEx RNA_SEQ tracks
are stranded (``+`` and ``-``), as the project's brief asks, where the real ones are
unstranded.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import polars as pl

from standins import SIMULATED_DATA_SOURCE

COLUMNS: dict[str, pl.DataType] = {
    "organism": pl.Utf8, "output_type": pl.Utf8, "name": pl.Utf8, "strand": pl.Utf8,
    "ontology_curie": pl.Utf8, "biosample_name": pl.Utf8, "biosample_type": pl.Utf8,
    "assay_title": pl.Utf8, "histone_mark": pl.Utf8, "transcription_factor": pl.Utf8,
    "gtex_tissue": pl.Utf8, "data_source": pl.Utf8, "nonzero_mean": pl.Float64,
}

HUMAN, MOUSE = "HOMO_SAPIENS", "MUS_MUSCULUS"
_ORGANISM_ALIASES = {"homo_sapiens": HUMAN, "human": HUMAN, "hs": HUMAN, "9606": HUMAN,
                     "organism_homo_sapiens": HUMAN, "hg38": HUMAN,
                     "mus_musculus": MOUSE, "mouse": MOUSE, "mm": MOUSE, "10090": MOUSE,
                     "organism_mus_musculus": MOUSE, "mm10": MOUSE}

#: GTEx tissue -> (UBERON CURIE, biosample name) as in AlphaGenome's gtex RNA_SEQ tracks
GTEX_TISSUES: dict[str, tuple[str, str]] = {
    "Heart_Atrial_Appendage": ("UBERON:0006631", "right atrium auricular region"),
    "Heart_Left_Ventricle": ("UBERON:0006566", "left ventricle myocardium"),
    "Whole_Blood": ("UBERON:0013756", "venous blood"),
    "Esophagus_Mucosa": ("UBERON:0006920", "esophagus squamous epithelium"),
    "Skin_Sun_Exposed_Lower_leg": ("UBERON:0004264", "lower leg skin"),
    "Prostate": ("UBERON:0002367", "prostate gland"),
    "Muscle_Skeletal": ("UBERON:0011907", "gastrocnemius medialis"),
    "Adipose_Subcutaneous": ("UBERON:0002190", "subcutaneous adipose tissue"),
    "Artery_Tibial": ("UBERON:0007610", "tibial artery"),
    "Lung": ("UBERON:0008952", "upper lobe of left lung"),
}

_BASE_MEAN = {"ATAC": 0.9, "DNASE": 0.7, "CHIP_HISTONE": 1.1, "CHIP_TF": 0.9, "RNA_SEQ": 0.12,
              "CAGE": 40.0, "PROCAP": 15.0}

#: human biosamples: curie -> (biosample_name, biosample_type, assays)
#: assays: list of (output_type, variant) with variant = mark / TF / RNA kind / strand spec
_HUMAN: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("CL:0000624", "CD4-positive, alpha-beta T cell", "PRIMARY_CELL",
     [("ATAC", ""), ("DNASE", "")]
     + [("CHIP_HISTONE", m) for m in ("H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3")]
     + [("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("RNA_SEQ", "polyA.")]
     + [("CHIP_TF", "CTCF")]),
    ("CL:0000236", "B cell", "PRIMARY_CELL",
     [("ATAC", ""), ("DNASE", "")]
     + [("CHIP_HISTONE", m) for m in ("H2AFZ", "H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me2",
                                      "H3K4me3", "H3K79me2", "H3K9ac", "H3K9me3")]
     + [("RNA_SEQ", "polyA+"), ("RNA_SEQ", "total+"), ("RNA_SEQ", "polyA-"), ("RNA_SEQ", "total-")]
     + [("CHIP_TF", "CTCF")]),
    ("EFO:0002784", "GM12878", "CELL_LINE",
     [("ATAC", ""), ("DNASE", "")]
     + [("CHIP_HISTONE", m) for m in ("H2AFZ", "H3K27ac", "H3K36me3", "H3K4me1", "H3K4me2", "H3K4me3",
                                      "H3K79me2", "H3K9ac")]
     + [("RNA_SEQ", "polyA+"), ("RNA_SEQ", "total+"), ("RNA_SEQ", "polyA-"), ("RNA_SEQ", "total-"),
        ("RNA_SEQ", "polyA.")]
     + [("CAGE", "+"), ("CAGE", "-")]
     + [("CHIP_TF", t) for t in ("CTCF", "EBF1", "SPI1", "POLR2A")]),
    ("EFO:0002067", "K562", "CELL_LINE",
     [("ATAC", ""), ("DNASE", "")]
     + [("CHIP_HISTONE", m) for m in ("H2AFZ", "H3K27ac", "H3K27me3", "H3K36me3", "H3K4me1", "H3K4me2",
                                      "H3K4me3", "H3K79me2", "H3K9ac", "H4K20me1")]
     + [("RNA_SEQ", "polyA+"), ("RNA_SEQ", "total+"), ("RNA_SEQ", "polyA-"), ("RNA_SEQ", "total-"),
        ("RNA_SEQ", "polyA.")]
     + [("CAGE", "+"), ("CAGE", "-"), ("PROCAP", "+"), ("PROCAP", "-")]
     + [("CHIP_TF", t) for t in ("CTCF", "GATA1", "JUND", "NRF1", "POLR2A")]),
    # ---- heart
    ("UBERON:0006631", "right atrium auricular region", "TISSUE",
     [("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-")]
     + [("CHIP_HISTONE", m) for m in ("H3K27ac", "H3K4me1", "H3K4me3")]),
    ("UBERON:0002078", "right cardiac atrium", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"),
      ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me1")]),
    ("UBERON:0002079", "left cardiac atrium", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("CAGE", "+"), ("CAGE", "-"), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-")]),
    ("UBERON:0000948", "heart", "TISSUE",
     [("DNASE", ""), ("CAGE", "+"), ("CAGE", "-")]),
    ("UBERON:0006566", "left ventricle myocardium", "TISSUE", []),
    ("UBERON:0002084", "heart left ventricle", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("CAGE", "+"), ("CAGE", "-"), ("RNA_SEQ", "polyA+"), ("RNA_SEQ", "polyA-")]
     + [("CHIP_HISTONE", m) for m in ("H3K27ac", "H3K4me1")]),
    # ---- blood
    ("UBERON:0013756", "venous blood", "TISSUE", []),
    ("UBERON:0000178", "blood", "PRIMARY_CELL", [("CAGE", "+"), ("CAGE", "-")]),
    # ---- esophagus
    ("UBERON:0006920", "esophagus squamous epithelium", "TISSUE",
     [("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me1")]),
    ("CL:0002252", "epithelial cell of esophagus", "PRIMARY_CELL", [("DNASE", "")]),
    ("UBERON:0002469", "esophagus mucosa", "TISSUE", [("ATAC", "")]),
    ("UBERON:0001043", "esophagus", "TISSUE", [("CAGE", "+"), ("CAGE", "-")]),
    # ---- skin
    ("UBERON:0004264", "lower leg skin", "TISSUE", [("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-")]),
    ("UBERON:0000014", "zone of skin", "TISSUE", [("CAGE", "+"), ("CAGE", "-")]),
    # ---- prostate (no ATAC)
    ("UBERON:0002367", "prostate gland", "TISSUE",
     [("DNASE", ""), ("CAGE", "+"), ("CAGE", "-"), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me3")]),
    # ---- muscle
    ("UBERON:0011907", "gastrocnemius medialis", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me1")]),
    ("UBERON:0001134", "skeletal muscle tissue", "TISSUE", [("CAGE", "+"), ("CAGE", "-")]),
    # ---- the three unnamed-in-the-write-up GTEx tissues
    ("UBERON:0002190", "subcutaneous adipose tissue", "TISSUE", [("ATAC", "")]),
    ("UBERON:0007610", "tibial artery", "TISSUE", [("ATAC", ""), ("DNASE", ""), ("CHIP_HISTONE", "H3K27ac")]),
    ("UBERON:0008952", "upper lobe of left lung", "TISSUE",
     [("ATAC", ""), ("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("CHIP_HISTONE", "H3K27ac")]),
]

_MOUSE: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("CL:0000136", "adipocyte", "IN_VITRO_DIFFERENTIATED_CELLS",
     [("ATAC", ""), ("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("RNA_SEQ", "polyA."),
      ("CAGE", "+"), ("CAGE", "-"), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_TF", "PPARG")]),
    ("EFO:0001084", "3T3-L1", "CELL_LINE",
     [("ATAC", ""), ("DNASE", ""), ("RNA_SEQ", "polyA+"), ("RNA_SEQ", "polyA-"),
      ("CAGE", "+"), ("CAGE", "-"), ("CHIP_HISTONE", "H3K27ac"), ("CHIP_HISTONE", "H3K4me1")]),
    ("UBERON:0002107", "liver", "TISSUE",
     [("DNASE", ""), ("RNA_SEQ", "total+"), ("RNA_SEQ", "total-"), ("CAGE", "+"), ("CAGE", "-")]),
]


def normalize_organism(organism: str | int) -> str:
    """``human``/``HOMO_SAPIENS``/``9606``/``Organism.HOMO_SAPIENS`` -> ``HOMO_SAPIENS`` (same for mouse)."""
    s = str(getattr(organism, "name", organism)).strip().lower()
    if s.startswith("organism."):
        s = s.split(".", 1)[1]
    if s not in _ORGANISM_ALIASES:
        raise ValueError(f"unknown organism {organism!r}; expected HOMO_SAPIENS or MUS_MUSCULUS")
    return _ORGANISM_ALIASES[s]


def _nonzero_mean(output_type: str, name: str, strand: str) -> float:
    h = int.from_bytes(hashlib.blake2b(f"{output_type}|{name}".encode(), digest_size=4).digest(), "little")
    return round(_BASE_MEAN[output_type] * (0.5 + (h % 10_000) / 10_000), 6)


def _rows(organism: str, spec) -> list[dict]:
    rows = []
    cage = "hCAGE" if organism == HUMAN else "mCAGE"
    for curie, bname, btype, assays in spec:
        for ot, var in assays:
            r = dict(organism=organism, output_type=ot, strand=".", ontology_curie=curie,
                     biosample_name=bname, biosample_type=btype, histone_mark=None,
                     transcription_factor=None, gtex_tissue=None, data_source=SIMULATED_DATA_SOURCE)
            if ot == "ATAC":
                r.update(name=f"{curie} ATAC-seq", assay_title="ATAC-seq")
            elif ot == "DNASE":
                r.update(name=f"{curie} DNase-seq", assay_title="DNase-seq")
            elif ot == "CHIP_HISTONE":
                r.update(name=f"{curie} Histone ChIP-seq {var}", assay_title="Histone ChIP-seq", histone_mark=var)
            elif ot == "CHIP_TF":
                r.update(name=f"{curie} TF ChIP-seq {var}", assay_title="TF ChIP-seq", transcription_factor=var)
            elif ot == "RNA_SEQ":
                kind, strand = var[:-1], var[-1]
                title = "total RNA-seq" if kind == "total" else "polyA plus RNA-seq"
                r.update(name=f"{curie} {title}", assay_title=title, strand=strand)
            elif ot == "CAGE":
                r.update(name=f"{cage} {curie}", assay_title=cage, strand=var)
            elif ot == "PROCAP":
                r.update(name="ENCSR740IPL", assay_title="PRO-cap", strand=var)
            else:  # pragma: no cover - table typo guard
                raise ValueError(ot)
            r["nonzero_mean"] = _nonzero_mean(ot, r["name"], r["strand"])
            rows.append(r)
    return rows


def _gtex_rows() -> list[dict]:
    rows = []
    for tissue, (curie, bname) in GTEX_TISSUES.items():
        for strand in ("+", "-"):
            name = f"{curie} gtex {tissue} polyA plus RNA-seq"
            rows.append(dict(organism=HUMAN, output_type="RNA_SEQ", name=name, strand=strand,
                             ontology_curie=curie, biosample_name=bname, biosample_type="TISSUE",
                             assay_title="polyA plus RNA-seq", histone_mark=None, transcription_factor=None,
                             gtex_tissue=tissue, data_source=SIMULATED_DATA_SOURCE,
                             nonzero_mean=_nonzero_mean("RNA_SEQ", name, strand) * 0.4))
    return rows


_OT_ORDER = ["ATAC", "CAGE", "DNASE", "RNA_SEQ", "CHIP_HISTONE", "CHIP_TF", "SPLICE_SITES", "SPLICE_SITE_USAGE",
             "SPLICE_JUNCTIONS", "CONTACT_MAPS", "PROCAP"]


def catalogue(organism: str = HUMAN) -> pl.DataFrame:
    """The track catalogue of one organism (``HOMO_SAPIENS`` or ``MUS_MUSCULUS``, aliases
    accepted), ordered by output type (the SDK's OutputType order) then as listed."""
    org = normalize_organism(organism)
    rows = _rows(HUMAN, _HUMAN) + _gtex_rows() if org == HUMAN else _rows(MOUSE, _MOUSE)
    df = pl.DataFrame(rows, schema=COLUMNS)
    order = {ot: i for i, ot in enumerate(_OT_ORDER)}
    df = df.with_row_index("_i").with_columns(pl.col("output_type").replace_strict(order).alias("_o"))
    return df.sort(["_o", "_i"]).drop(["_i", "_o"])


#: splicing and contact-map tracks the stand-in serves when a world's catalogue has none
#: (worlds built before they existed; the demo catalogue lists only the computed 1-D
#: outputs): real track-name styles of the AlphaGenome catalogue, SIMULATED data source.
_SUPPLEMENT: dict[str, list[tuple[str, str, str, str, str]]] = {
    # (curie, biosample_name, biosample_type, assay, contact-map name)
    HUMAN: [("EFO:0002784", "GM12878", "CELL_LINE", "polyA plus RNA-seq", "4dn:4DNFIXP4QG5B"),
            ("EFO:0002067", "K562", "CELL_LINE", "total RNA-seq", "4dn:4DNFI18UHVRO"),
            ("UBERON:0002084", "heart left ventricle", "TISSUE", "total RNA-seq", ""),
            ("UBERON:0008952", "upper lobe of left lung", "TISSUE", "total RNA-seq", "")],
    MOUSE: [("UBERON:0002107", "liver", "TISSUE", "total RNA-seq", "4dn:4DNFIMOUSE01")],
}
SUPPLEMENT_OUTPUTS = ("SPLICE_SITES", "SPLICE_SITE_USAGE", "SPLICE_JUNCTIONS", "CONTACT_MAPS")


def supplementary_tracks(organism: str = HUMAN) -> pl.DataFrame:
    """The organism's SPLICE_SITES (donor/acceptor on each strand), SPLICE_SITE_USAGE
    (``usage_<curie> <assay>``, both strands), SPLICE_JUNCTIONS (``junction_<curie>
    <assay>``, unstranded) and CONTACT_MAPS (Micro-C) tracks in ``tracks.parquet`` form."""
    org = normalize_organism(organism)
    base = dict(organism=org, histone_mark=None, transcription_factor=None, gtex_tissue=None,
                data_source=SIMULATED_DATA_SOURCE, nonzero_mean=None)
    rows = [dict(base, output_type="SPLICE_SITES", name=n, strand=s, ontology_curie=None, biosample_name=None,
                 biosample_type=None, assay_title=None) for s in ("+", "-") for n in ("donor", "acceptor")]
    bios = _SUPPLEMENT[org]
    for s in ("+", "-"):
        rows += [dict(base, output_type="SPLICE_SITE_USAGE", name=f"usage_{c} {a}", strand=s, ontology_curie=c,
                      biosample_name=b, biosample_type=t, assay_title=a) for c, b, t, a, _ in bios]
    rows += [dict(base, output_type="SPLICE_JUNCTIONS", name=f"junction_{c} {a}", strand=".", ontology_curie=c,
                  biosample_name=b, biosample_type=t, assay_title=a) for c, b, t, a, _ in bios]
    rows += [dict(base, output_type="CONTACT_MAPS", name=m, strand=".", ontology_curie=c, biosample_name=b,
                  biosample_type=t, assay_title="Micro-C") for c, b, t, _, m in bios if m]
    return pl.DataFrame(rows, schema=COLUMNS)


def full_catalogue() -> pl.DataFrame:
    """Human then mouse: the content of the world's ``tracks.parquet``."""
    return pl.concat([catalogue(HUMAN), catalogue(MOUSE)])


# ----------------------------------------------------------------------------- the real catalogue

#: environment variable naming the real human track-metadata CSV
REAL_CATALOGUE_ENV = "AGVAL_TRACK_METADATA"
#: where the real catalogue is looked for by default, relative to the repository root
REAL_CATALOGUE_DEFAULT = Path("..") / "shared" / "data" / "alphagenome" / "human_track_metadata_parsed.csv"
CATALOGUES = ("demo", "real")
_REAL_COLUMNS = ("output_type", "name", "strand", "ontology_curie", "biosample_type", "biosample_name", "assay",
                 "gtex_tissue", "histone_mark", "transcription_factor", "data_source", "nonzero_mean")
_STRANDS = {"POSITIVE": "+", "NEGATIVE": "-", "UNSTRANDED": ".", "+": "+", "-": "-", ".": "."}


def real_catalogue_path(path: str | Path | None = None) -> Path:
    """The real human track-metadata CSV: ``path`` if given, else ``$AGVAL_TRACK_METADATA``,
    else :data:`REAL_CATALOGUE_DEFAULT` under the repository root. Not checked for existence."""
    from agval.errors import ConfigError

    if path is None:
        path = os.environ.get(REAL_CATALOGUE_ENV) or None
    if path is None:
        root = Path(__file__).resolve().parents[1]
        return (root / REAL_CATALOGUE_DEFAULT).resolve()
    p = Path(path).expanduser()
    if not str(p).strip():
        raise ConfigError(f"empty path for the real track catalogue (${REAL_CATALOGUE_ENV})")
    return p


def real_catalogue(path: str | Path | None = None) -> pl.DataFrame:
    """The real AlphaGenome human track catalogue (5,563 tracks) in ``tracks.parquet`` form.

    Read from the real metadata CSV (:func:`real_catalogue_path`; never copied into the
    repository). Columns of :data:`COLUMNS`; one row per CSV row, in CSV order within
    the SDK's output-type order. Conversions: ``strand`` POSITIVE/NEGATIVE/UNSTRANDED ->
    ``+``/``-``/``.`` (missing -> ``.``); ``assay`` -> ``assay_title``; ``histone_mark``
    and ``transcription_factor`` (empty in the CSV) are parsed from the track name
    (``... Histone ChIP-seq H3K27ac``, ``... TF ChIP-seq CTCF ...``); a backslash-escaped quote in biosample
    names -> ``'``; ``data_source`` is :data:`standins.SIMULATED_DATA_SOURCE` (the scores
    are simulated even though the metadata is real).

    Raises :class:`agval.errors.InputError` when the file is absent or lacks a column.
    """
    from agval.errors import InputError

    p = real_catalogue_path(path)
    if not p.is_file():
        raise InputError(f"the real track catalogue is not there (set ${REAL_CATALOGUE_ENV} or pass "
                         f"--track-metadata to point at AlphaGenome's human_track_metadata_parsed.csv)", file=p)
    try:
        raw = pl.read_csv(p, infer_schema_length=0)
    except Exception as e:  # noqa: BLE001 - polars raises several kinds
        raise InputError(f"cannot read the track catalogue CSV ({e})", file=p) from None
    missing = [c for c in _REAL_COLUMNS if c not in raw.columns]
    if missing:
        raise InputError(f"the track catalogue CSV lacks column(s) {', '.join(missing)}", file=p, column=missing[0])
    bad = sorted(set(raw["output_type"].drop_nulls().unique().to_list()) - set(_OT_ORDER))
    if bad or raw["output_type"].null_count():
        raise InputError(f"unknown output_type value(s) {bad or ['<empty>']} (expected {', '.join(_OT_ORDER)})",
                         file=p, column="output_type")
    ot = pl.col("output_type")
    df = raw.select(
        organism=pl.lit(HUMAN),
        output_type=ot,
        name=pl.col("name"),
        strand=pl.col("strand").str.to_uppercase().replace_strict(_STRANDS, default=".").fill_null("."),
        ontology_curie=pl.col("ontology_curie"),
        biosample_name=pl.col("biosample_name").str.replace_all("\\'", "'", literal=True),
        biosample_type=pl.col("biosample_type"),
        assay_title=pl.col("assay"),
        histone_mark=pl.coalesce(pl.col("histone_mark"),
                                 pl.when(ot == "CHIP_HISTONE").then(
                                     pl.col("name").str.extract(r"Histone ChIP-seq (\S+)"))),
        transcription_factor=pl.coalesce(pl.col("transcription_factor"),
                                         pl.when(ot == "CHIP_TF").then(
                                             pl.col("name").str.extract(r"TF ChIP-seq (\S+)"))),
        gtex_tissue=pl.col("gtex_tissue"),
        data_source=pl.lit(SIMULATED_DATA_SOURCE),
        nonzero_mean=pl.col("nonzero_mean").cast(pl.Float64, strict=False),
    ).cast(COLUMNS)
    order = {t: i for i, t in enumerate(_OT_ORDER)}
    df = df.with_row_index("_i").with_columns(pl.col("output_type").replace_strict(order).alias("_o"))
    return df.sort(["_o", "_i"]).drop(["_i", "_o"])


def world_catalogue(kind: str = "demo", path: str | Path | None = None) -> pl.DataFrame:
    """The content of a world's ``tracks.parquet``: ``demo`` = the hand-written human and
    mouse catalogue (:func:`full_catalogue`); ``real`` = the real human catalogue
    (:func:`real_catalogue`) then the hand-written mouse tracks."""
    from agval.errors import InputError

    if kind == "demo":
        return full_catalogue()
    if kind == "real":
        return pl.concat([real_catalogue(path), catalogue(MOUSE)])
    raise InputError(f"unknown track catalogue {kind!r}; choose one of: {', '.join(CATALOGUES)}")


# ----------------------------------------------------------------------------- model contexts

#: generic contexts that real biosamples with no keyword match are spread over
N_GENERIC_CONTEXTS = 24
#: biosample-name keywords -> a known context (a CURIE of ``seqmodel.KNOWN_CONTEXTS``); first match wins
_KEYWORD_CONTEXTS: list[tuple[str, str]] = [
    (r"\bt[- ]cell|thym|\bcd4\b|\bcd8\b|natural killer|\bnk\b|jurkat", "CL:0000624"),
    (r"\bb[- ]cell|^gm\d|lymphoblast|spleen|lymph node|tonsil|peyer", "CL:0000236"),
    (r"k562|erythro|hematopoietic|bone marrow|megakaryo", "EFO:0002067"),
    (r"blood|monocyte|macrophage|neutrophil|leukocyte|myeloid|dendritic|mononuclear|hl-60", "UBERON:0000178"),
    (r"heart|cardi|atri|ventric", "UBERON:0000948"),
    (r"adipo|\bfat\b", "UBERON:0002190"),
    (r"arter|aorta|\bvein\b|endotheli|vascular|umbilical|smooth muscle", "UBERON:0007610"),
    (r"muscle|myotube|myoblast|gastrocnemius|psoas|skeletal", "UBERON:0001134"),
    (r"lung|bronch|alveol|trachea|imr-90|a549", "UBERON:0008952"),
    (r"prostate|lncap|pc-3|vcap|22rv1", "UBERON:0002367"),
    (r"skin|keratinocyte|melanocyte|foreskin|fibroblast|dermis", "UBERON:0000014"),
    (r"esophag|stomach|gastr|colon|intestin|rect|epitheli|mammary|breast|mcf-7|caco|kidney|hek293", "CL:0002252"),
]


def model_curie(curie: str | None, biosample_name: str | None) -> str:
    """The sequence-model context of a real catalogue track: its own CURIE when the model
    knows it (``seqmodel.KNOWN_CONTEXTS``), else a known context picked by biosample-name
    keywords (heart tissues -> the heart context, ...), else one of
    :data:`N_GENERIC_CONTEXTS` deterministic generic contexts (``generic:NN``, by a hash of
    the CURIE). Tracks that share a context share their signal, so the stand-in computes
    ~60 contexts for the 5,563 real tracks instead of ~700."""
    import re

    from standins.seqmodel import KNOWN_CONTEXTS

    if curie and curie in KNOWN_CONTEXTS:
        return curie
    name = (biosample_name or "").lower()
    for pattern, known in _KEYWORD_CONTEXTS:
        if re.search(pattern, name):
            return known
    h = int.from_bytes(hashlib.blake2b(str(curie or name).encode(), digest_size=4).digest(), "little")
    return f"generic:{h % N_GENERIC_CONTEXTS:02d}"


def world_catalogue_kind(meta: dict | None) -> str:
    """``"real"`` or ``"demo"``: the catalogue a world was built with (``world.json``)."""
    return str(((meta or {}).get("catalogue") or {}).get("kind", "demo"))


def model_curies(tracks: pl.DataFrame, kind: str = "demo") -> list[str | None] | None:
    """Per-track model-context CURIEs for a world's catalogue ``kind``: ``None`` for the
    demo catalogue (tracks use their own ``ontology_curie``), :func:`model_curie` of each
    row for the real one."""
    if kind != "real":
        return None
    names = tracks["biosample_name"].to_list() if "biosample_name" in tracks.columns else [None] * tracks.height
    return [model_curie(c, n) for c, n in zip(tracks["ontology_curie"].to_list(), names)]
