"""The stand-in AlphaGenome ``DnaModelService`` (SIMULATED; not product code).

Built on the SDK's generated ``DnaModelServiceServicer`` so the unmodified ``DnaClient``
works against it over a real gRPC channel. Answers are computed from the synthetic
world's DNA by :class:`standins.seqmodel.SequenceModel` with the stand-in's own weights
(``world.truth.perturbed(...)``); it never reads study files.

* ``ScoreVariant``: centre-mask scorers (every aggregation; widths 501 ... 200001) and the
  gene-mask LFC scorer for RNA_SEQ; one output per scorer in request order; values
  ``[2, n_obs, n_tracks]`` (raw, quantile); all tracks of the scorer's output type for the
  organism, in catalogue order; gene metadata with versioned ids;
  ``merge_stranded_gene_tracks`` honoured (the SDK's own algorithm).
* ``PredictSequence`` / ``PredictInterval``: per-base tracks (CHIP_HISTONE and CHIP_TF at
  128 bp), ontology filtering, supported lengths only.
* ``GetMetadata``: the world's track catalogue for the organism.

The model sees only the scored interval (bases outside it read as ``N``), like the real
model; gene-mask REF exon sums use the genome around each exon (exons clipped to the
interval).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator

import grpc
import ml_dtypes
import numpy as np
import pandas as pd
import polars as pl
from alphagenome import tensor_utils
from alphagenome.data import genome as ag_genome
from alphagenome.data import track_data as ag_track_data
from alphagenome.models.v1 import (dna_client, dna_output, junction_data_utils, track_data_utils,
                                   variant_scoring_utils)
from alphagenome.models.v1 import variant_scorers as vs_lib
from alphagenome.protos import tensor_pb2
from alphagenome.protos.v1 import dna_model_pb2 as pb
from alphagenome.protos.v1 import dna_model_service_pb2 as svc
from alphagenome.protos.v1 import dna_model_service_pb2_grpc as svc_grpc

from agval.coords import Variant
from agval.sdk import supported_sequence_lengths
from standins.alphagenome import extra_scorers, faults, quota
from standins.alphagenome.background import Background, BackgroundCache
from standins.alphagenome.faults import Abort

SUPPORTED_LENGTHS: tuple[int, ...] = supported_sequence_lengths()
MODEL_VERSIONS: tuple[str, ...] = tuple(m.name for m in dna_client.ModelVersion)
DEFAULT_MODEL_VERSION = "ALL_FOLDS"
ORGANISMS = {pb.ORGANISM_HOMO_SAPIENS: "HOMO_SAPIENS", pb.ORGANISM_MUS_MUSCULUS: "MUS_MUSCULUS"}
#: output types predicted at 128 bp resolution (the rest per base)
BINNED_OUTPUTS = {"CHIP_HISTONE": 128, "CHIP_TF": 128}
#: output types the stand-in computes (predictions and scorers); the real catalogue's other
#: types (splicing, contact maps) are listed by GetMetadata only
COMPUTED_OUTPUTS = ("ATAC", "CAGE", "DNASE", "RNA_SEQ", "CHIP_HISTONE", "CHIP_TF", "PROCAP")
#: output types whose metadata is junction metadata (``OutputMetadata.junctions``)
JUNCTION_OUTPUTS = frozenset({"SPLICE_JUNCTIONS"})
MAX_SCORERS = dna_client.MAX_VARIANT_SCORERS_PER_REQUEST
PREDICT_TILE = 1 << 17  # long sequences are predicted in tiles of this many bp
_ZSTD = tensor_pb2.CompressionType.COMPRESSION_TYPE_ZSTD
_NONE = tensor_pb2.CompressionType.COMPRESSION_TYPE_NONE
_VALID_SEQ = frozenset("ACGTN")


# --------------------------------------------------------------------------- configuration

@dataclasses.dataclass(frozen=True)
class StandinConfig:
    """Server-wide settings of the stand-in (all optional).

    * ``latency_ms``: added before every answer (a ``x-fake-latency-ms`` header overrides it).
    * ``revision``: changes the stand-in's weights (a simulated model update).
    * ``quota_tokens_per_minute`` / ``quota_burst_tokens``: token-bucket quota (see
      :mod:`standins.alphagenome.quota`); ``None`` = unlimited.
    * ``poison``: variant keys (``chr1:123:A>G``) always answered INVALID_ARGUMENT.
    * ``bytes_per_chunk`` / ``compression`` (``"zstd"``/``"none"``): tensor chunking.
    * ``score_dtype`` / ``predict_dtype``: ``"float32"`` or ``"bfloat16"`` on the wire.
    * ``background_size``: common variants per quantile background; ``heavy_background_size``
      for the costly scorers (CHIP_HISTONE, RNA_SEQ, gene masks, centre widths > 2001).
    * ``model_scale`` / ``fold_scale``: how far the stand-in's weights are from the truth,
      and FOLD_n from ALL_FOLDS.
    * ``required_api_key``: if set, calls without this ``x-goog-api-key`` get UNAUTHENTICATED.
    * ``atlas``: also serve the AtlasService; ``atlas_page_size``: its default page size.
    * ``call_log_size``: the call log keeps the most recent records only.
    * ``result_cache_size``: raw scores kept in an LRU cache (0 = off); answers are the
      same either way, only the stand-in's CPU time changes. ``result_cache_mb`` bounds
      its memory too (entries hold one column per distinct model context).
    * ``compute_threads``: variant scores computed at the same time (default half the
      CPUs, at least 1: the client usually shares the machine); more requests wait (numpy
      under the GIL gains nothing from more threads and loses to contention and memory churn).
    * ``response_cache_size``: whole ScoreVariant answers (the packed response messages)
      kept per request, oldest dropped first (0 = off): a repeated request costs the
      stand-in no compute and no packing, so a client benchmark measures the client
      (latency, quota, faults and the call log apply as usual).
    * ``prewarm``: before serving, compute what the first calls would otherwise pay for
      (every gene's REF exon sums for human RNA_SEQ and the recommended DNASE / RNA_SEQ
      quantile backgrounds, ALL_FOLDS), so benchmarks meet a warm stand-in.
    """

    latency_ms: float = 0.0
    revision: int = 0
    quota_tokens_per_minute: float | None = None
    quota_burst_tokens: float | None = None
    poison: tuple[str, ...] = ()
    bytes_per_chunk: int = 1 << 20
    compression: str = "zstd"
    score_dtype: str = "float32"
    predict_dtype: str = "bfloat16"
    background_size: int = 128
    heavy_background_size: int = 32
    model_scale: float = 0.25
    fold_scale: float = 0.05
    required_api_key: str | None = None
    max_workers: int = 128
    atlas: bool = True
    atlas_page_size: int = 32
    call_log_size: int = 200_000
    result_cache_size: int = 20_000
    result_cache_mb: float = 256.0
    compute_threads: int | None = None
    prewarm: bool = False
    response_cache_size: int = 0

    def __post_init__(self):
        if self.bytes_per_chunk and self.bytes_per_chunk < 4:
            raise ValueError("bytes_per_chunk must be 0 (no chunking) or >= 4")
        if self.compression not in ("zstd", "none"):
            raise ValueError("compression must be 'zstd' or 'none'")
        for name in ("score_dtype", "predict_dtype"):
            if getattr(self, name) not in ("float32", "bfloat16"):
                raise ValueError(f"{name} must be 'float32' or 'bfloat16'")
        object.__setattr__(self, "poison", tuple(self.poison))


@dataclasses.dataclass
class CallRecord:
    """One RPC as the stand-in saw it (``servicer.calls``).

    ``outcome``: ``"OK"``, a status-code name (``"INVALID_ARGUMENT"``, an injected
    ``"UNAVAILABLE"``, ...) or ``"CANCELLED"`` (the client went away, e.g. its deadline
    fired during a hang). ``injected``: the outcome was an injected fault.
    """

    method: str
    fingerprint: str
    attempt: int
    t: float                      # time.monotonic() at arrival
    outcome: str = "CANCELLED"
    model_version: str = ""
    n_variants: int = 0
    interval: str | None = None   # "chr1:0-1048576" (0-based half-open)
    variant: str | None = None    # "chr1:123:A>G"
    organism: str | None = None
    n_outputs: int = 0            # scorers or requested outputs
    cost: float = 0.0             # quota tokens charged
    injected: bool = False
    detail: str = ""
    t_end: float = 0.0

    @property
    def seconds(self) -> float:
        return self.t_end - self.t


@dataclasses.dataclass(frozen=True)
class ScorerSpec:
    """A variant scorer the stand-in can compute."""

    kind: str                  # "center_mask" | "gene_mask_lfc" | standins.alphagenome.extra_scorers.NEW_KINDS
    output_type: str           # "DNASE", ...
    width: int | None
    aggregation: str | None    # AggregationType name for centre masks
    signed: bool
    key: str                   # stable identity (background cache key part)


# --------------------------------------------------------------------------- helpers

def _seed(*parts) -> int:
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def _ot_name(value: int) -> str:
    try:
        return dna_output.OutputType(value).name
    except ValueError:
        return f"OUTPUT_TYPE_{value}"


def parse_scorer(proto: pb.VariantScorer) -> ScorerSpec:
    """Proto -> :class:`ScorerSpec`; Abort(INVALID_ARGUMENT) for invalid scorers and
    Abort(UNIMPLEMENTED) for valid ones the stand-in does not compute."""
    which = proto.WhichOneof("scorer")
    try:
        if which == "center_mask":
            cm = proto.center_mask
            width = cm.width if cm.HasField("width") else None
            obj = vs_lib.CenterMaskScorer(dna_output.OutputType(cm.requested_output), width,
                                          vs_lib.AggregationType(cm.aggregation_type))
            if width is None:
                raise Abort(grpc.StatusCode.UNIMPLEMENTED,
                            f"{obj}: width=None (whole interval) is not computed by the stand-in; "
                            "use a width of 501 ... 200001")
            ot = obj.requested_output.name
            if ot not in ("ATAC", "DNASE", "CAGE", "PROCAP", "RNA_SEQ", "CHIP_HISTONE", "CHIP_TF"):
                raise Abort(grpc.StatusCode.UNIMPLEMENTED, f"{obj}: output {ot} is not computed by the stand-in")
            agg = obj.aggregation_type.name
            return ScorerSpec("center_mask", ot, width, agg, obj.is_signed, f"center_mask/{ot}/{width}/{agg}")
        if which == "gene_mask":
            obj = vs_lib.GeneMaskLFCScorer(dna_output.OutputType(proto.gene_mask.requested_output))
            ot = obj.requested_output.name
            if ot != "RNA_SEQ":
                raise Abort(grpc.StatusCode.UNIMPLEMENTED,
                            f"{obj}: the stand-in computes gene-mask LFC for RNA_SEQ only")
            return ScorerSpec("gene_mask_lfc", ot, None, None, True, f"gene_mask_lfc/{ot}")
        if which == "gene_mask_active":
            obj = vs_lib.GeneMaskActiveScorer(dna_output.OutputType(proto.gene_mask_active.requested_output))
            ot = obj.requested_output.name
            if ot != "RNA_SEQ":
                raise Abort(grpc.StatusCode.UNIMPLEMENTED,
                            f"{obj}: the stand-in computes gene-mask active for RNA_SEQ only")
            return ScorerSpec("gene_mask_active", ot, None, None, False, f"gene_mask_active/{ot}")
        if which == "gene_mask_splicing":
            g = proto.gene_mask_splicing
            width = g.width if g.HasField("width") else None
            obj = vs_lib.GeneMaskSplicingScorer(dna_output.OutputType(g.requested_output), width)
            ot = obj.requested_output.name
            return ScorerSpec("gene_mask_splicing", ot, width, None, False, f"gene_mask_splicing/{ot}/{width}")
        if which == "splice_junction":
            return ScorerSpec("splice_junction", "SPLICE_JUNCTIONS", None, None, False, "splice_junction")
        if which == "pa_qtl":
            return ScorerSpec("pa_qtl", "RNA_SEQ", None, None, False, "pa_qtl")
        if which == "contact_map":
            return ScorerSpec("contact_map", "CONTACT_MAPS", None, None, False, "contact_map")
    except ValueError as e:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid variant scorer: {e}") from None
    if which is None:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "variant scorer with no scorer set")
    raise Abort(grpc.StatusCode.UNIMPLEMENTED, f"variant scorer {which!r} is not computed by the stand-in")


def aggregate_center(ref: np.ndarray, alt: np.ndarray, aggregation: str) -> np.ndarray:
    """Centre-mask aggregation of ``[w, T]`` REF and REF-aligned ALT signals -> ``[T]``.

    DIFF_LOG2_SUM = ``log2((sum ALT + 1) / (sum REF + 1))`` (as
    :func:`standins.scoring_math.center_mask_diff_log2_sum`); the others follow the SDK's
    ``AggregationType`` docstrings (log transforms use ``x + 1``).
    """
    if aggregation == "DIFF_LOG2_SUM":
        from standins.scoring_math import center_mask_diff_log2_sum

        w = ref.shape[0]
        return center_mask_diff_log2_sum(ref, alt, w, center=w // 2)
    if aggregation == "DIFF_SUM":
        return alt.sum(axis=0) - ref.sum(axis=0)
    if aggregation == "DIFF_MEAN":
        return alt.mean(axis=0) - ref.mean(axis=0)
    if aggregation == "DIFF_SUM_LOG2":
        return np.log2(alt + 1.0).sum(axis=0) - np.log2(ref + 1.0).sum(axis=0)
    if aggregation == "L2_DIFF":
        return np.sqrt(((alt - ref) ** 2).sum(axis=0))
    if aggregation == "L2_DIFF_LOG1P":
        return np.sqrt(((np.log1p(alt) - np.log1p(ref)) ** 2).sum(axis=0))
    if aggregation == "ACTIVE_SUM":
        return np.maximum(alt.sum(axis=0), ref.sum(axis=0))
    if aggregation == "ACTIVE_MEAN":
        return np.maximum(alt.mean(axis=0), ref.mean(axis=0))
    raise ValueError(aggregation)


class MemGenome:
    """The world genome held in memory (chromosomes loaded on first use); ``N`` outside."""

    def __init__(self, source, lengths: dict[str, int]):
        self._source = source
        self.lengths = dict(lengths)
        self._seqs: dict[str, str] = {}
        self._lock = threading.Lock()

    def chrom(self, chrom: str) -> str:
        s = self._seqs.get(chrom)
        if s is None:
            with self._lock:
                s = self._seqs.get(chrom)
                if s is None:
                    s = self._source.fetch(chrom, 0, self.lengths[chrom]).upper()
                    self._seqs[chrom] = s
        return s

    def fetch(self, chrom: str, start0: int, end0: int) -> str:
        s = self.chrom(chrom)
        n = len(s)
        lo, hi = max(0, start0), min(n, end0)
        core = s[lo:hi] if hi > lo else ""
        left = max(0, min(end0, 0) - start0)
        right = max(0, end0 - max(start0, n))
        return "N" * left + core + "N" * right

    def within(self, lo: int, hi: int) -> "_Clipped":
        """A view that reads ``N`` outside ``[lo, hi)`` (what a model on that interval sees)."""
        return _Clipped(self, lo, hi)


class _Clipped:
    def __init__(self, g: MemGenome, lo: int, hi: int):
        self._g, self._lo, self._hi = g, lo, hi

    def fetch(self, chrom: str, start0: int, end0: int) -> str:
        a, b = max(start0, self._lo), min(end0, self._hi)
        if b <= a:
            return "N" * (end0 - start0)
        return "N" * (a - start0) + self._g.fetch(chrom, a, b) + "N" * (end0 - b)


# --------------------------------------------------------------------------- the model core

class StandinCore:
    """Everything the stand-in computes: catalogue, weights per model version, scores,
    quantile backgrounds and sequence predictions. Shared by the DNA and Atlas services."""

    def __init__(self, world, config: StandinConfig):
        from standins.catalogue import model_curies, world_catalogue_kind
        from standins.scoring_math import LocalScorer
        from standins.seqmodel import SequenceModel

        self._LocalScorer = LocalScorer
        self._SequenceModel = SequenceModel
        self.world = world
        self.config = config
        meta = getattr(world, "meta", {}) or {}
        self.world_seed = meta.get("seed", 0)
        lengths = meta.get("chromosomes") or getattr(world.genome, "lengths", None)
        if not lengths:
            raise ValueError("world has no chromosome lengths (world.json 'chromosomes')")
        self.genome = MemGenome(world.genome, lengths)
        self.chrom_lengths: dict[str, int] = dict(lengths)
        self.genes: pl.DataFrame = world.genes
        self.exons: pl.DataFrame = world.exons
        self._exon_blocks = {gid: np.stack([sub["start"].to_numpy() - 1, sub["end"].to_numpy()], axis=1)
                             for (gid,), sub in self.exons.group_by(["gene_id"])}
        self._exon_index = self._build_exon_index()
        self._gene_info = {r["gene_id"]: r for r in self.genes.select(
            "gene_id", "gene_name", "gene_type", "strand").iter_rows(named=True)}
        tracks = world.tracks
        self.catalogue: dict[str, pl.DataFrame] = {}
        self._by_type: dict[tuple[str, str], pl.DataFrame] = {}
        self._contexts: dict[tuple[str, str], list] = {}
        #: (organism, output type) -> (distinct contexts, per-track index into them, first track of each)
        self._unique: dict[tuple[str, str], tuple[list, np.ndarray, np.ndarray]] = {}
        self.catalogue_kind = world_catalogue_kind(meta)
        self._track_pd: dict[tuple[str, str], pd.DataFrame] = {}
        self._track_protos: dict[tuple[str, str], list[pb.TrackMetadata]] = {}
        self._merge_masks: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._merged_protos: dict[tuple[str, str], list[pb.TrackMetadata]] = {}
        self._junction_protos: dict[tuple[str, str], pb.JunctionsMetadata] = {}
        self._md_templates: dict[tuple[str, str, bool], pb.VariantMetadata] = {}
        org_col = tracks["organism"].cast(pl.Utf8).str.to_uppercase().str.replace("^ORGANISM_", "")
        ot_col = tracks["output_type"].cast(pl.Utf8).str.to_uppercase().str.replace("^OUTPUT_TYPE_", "")
        tracks = tracks.with_columns(org_col.alias("organism"), ot_col.alias("output_type"))
        from standins.catalogue import SUPPLEMENT_OUTPUTS, supplementary_tracks

        for org in ORGANISMS.values():  # splicing / contact-map tracks for worlds that list none
            have = set(tracks.filter(pl.col("organism") == org)["output_type"].to_list())
            if have and not have & set(SUPPLEMENT_OUTPUTS):
                tracks = pl.concat([tracks, supplementary_tracks(org)], how="diagonal_relaxed")
        for org in ORGANISMS.values():
            cat = tracks.filter(pl.col("organism") == org)
            self.catalogue[org] = cat
            for ot in dict.fromkeys(cat["output_type"].to_list()):
                sub = cat.filter(pl.col("output_type") == ot)
                key = (org, ot)
                self._by_type[key] = sub
                ctxs = SequenceModel.contexts_of(sub, model_curies(sub, self.catalogue_kind))
                self._contexts[key] = ctxs
                uniq: dict = {}
                inv = np.array([uniq.setdefault(c, len(uniq)) for c in ctxs], dtype=np.int64)
                first = np.unique(inv, return_index=True)[1]
                self._unique[key] = (list(uniq), inv, first)
                pdf = self._to_sdk_metadata(sub)
                self._track_pd[key] = pdf
                if ot in JUNCTION_OUTPUTS:
                    self._junction_protos[key] = junction_data_utils.metadata_to_proto(pdf)
                    # junction scorers answer with (unstranded) track metadata
                    pdf = pdf.assign(strand=".")
                self._track_protos[key] = list(track_data_utils.metadata_to_proto(pdf).metadata)
                pos, neg = variant_scoring_utils._calculate_track_masks(pdf)  # the SDK's own merge masks
                self._merge_masks[key] = (pos, neg)
                merged = pdf[pos].reset_index(drop=True).copy()
                merged["strand"] = "."
                self._merged_protos[key] = list(track_data_utils.metadata_to_proto(merged).metadata)
        self._models: dict[str, object] = {}
        self._scorers: dict[str, object] = {}
        self._batch: dict[str, object] = {}
        self._engines: dict[str, object] = {}
        self._model_lock = threading.Lock()
        self.backgrounds = BackgroundCache(self._compute_background)
        self._predict_slots = threading.BoundedSemaphore(2)  # long predictions at a time (memory)
        self.stop_event = threading.Event()  # set when the server stops: long loops give up
        self._results: collections.OrderedDict = collections.OrderedDict()
        self._results_lock = threading.Lock()
        self._results_bytes = 0
        self._signals: collections.OrderedDict = collections.OrderedDict()  # recent centre-mask REF/ALT
        self._bg_variants: list[Variant] | None = None
        import os

        self._compute_slots = threading.BoundedSemaphore(max(1, config.compute_threads or (os.cpu_count() or 2) // 2))

    def _build_exon_index(self) -> dict[str, tuple[list[str], np.ndarray, np.ndarray, np.ndarray]]:
        """chrom -> (gene ids in genome order, exon starts0, exon ends0, exon gene index)."""
        out = {}
        genes = self.genes.with_row_index("_i").sort(["start", "_i"])
        for (chrom,), sub in genes.group_by(["chrom"], maintain_order=True):
            gids = sub["gene_id"].to_list()
            rows = [(gi, a, b) for gi, g in enumerate(gids) for a, b in self._exon_blocks.get(g, np.zeros((0, 2))).tolist()]
            arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
            out[chrom] = (gids, arr[:, 1], arr[:, 2], arr[:, 0])
        return out

    def genes_in(self, chrom: str, start0: int, end0: int) -> list[str]:
        """Gene ids with at least one exon base in ``[start0, end0)``, genome order (as
        ``LocalScorer.genes_in``)."""
        idx = self._exon_index.get(chrom)
        if idx is None:
            return []
        gids, s, e, gi = idx
        hit = np.unique(gi[(s < end0) & (e > start0)])
        return [gids[i] for i in hit.tolist()]

    # ---------------------------------------------------------------- catalogue
    @staticmethod
    def _to_sdk_metadata(df: pl.DataFrame) -> pd.DataFrame:
        """World catalogue rows -> the SDK's track-metadata frame (``metadata_to_proto`` input)."""
        rename = {"assay_title": "Assay title"}
        keep = ["name", "strand", "ontology_curie", "biosample_name", "biosample_type", "assay_title",
                "histone_mark", "transcription_factor", "gtex_tissue", "data_source", "nonzero_mean"]
        cols = [c for c in keep if c in df.columns]
        pdf = pd.DataFrame({rename.get(c, c): df[c].to_list() for c in cols})
        if "biosample_type" in pdf:
            pdf["biosample_type"] = [None if v is None else str(v).lower() for v in pdf["biosample_type"]]
        return pdf

    def output_types(self, organism: str, computed: bool = False) -> list[str]:
        """Output types in the organism's catalogue (``computed``: only those the stand-in
        predicts and scores, :data:`COMPUTED_OUTPUTS`)."""
        return [ot for (org, ot) in self._by_type if org == organism and (not computed or ot in COMPUTED_OUTPUTS)]

    def metadata_template(self, organism: str, output_type: str, merged: bool = False) -> pb.VariantMetadata:
        """A ``VariantMetadata`` holding only the track metadata of ``output_type`` (merged
        stranded tracks with ``merged``), built once; callers ``CopyFrom`` it."""
        key = (organism, output_type, merged)
        t = self._md_templates.get(key)
        if t is None:
            t = pb.VariantMetadata(track_metadata=self.track_protos(organism, output_type, merged=merged))
            self._md_templates[key] = t
        return t

    def junction_protos(self, organism: str, output_type: str) -> pb.JunctionsMetadata | None:
        return self._junction_protos.get((organism, output_type))

    def tracks(self, organism: str, output_type: str) -> pl.DataFrame:
        return self._by_type.get((organism, output_type), self.catalogue[organism].head(0))

    def track_protos(self, organism: str, output_type: str, merged: bool = False) -> list[pb.TrackMetadata]:
        d = self._merged_protos if merged else self._track_protos
        return d.get((organism, output_type), [])

    def contexts(self, organism: str, output_type: str) -> list:
        """The model context of each track (catalogue order)."""
        return self._contexts.get((organism, output_type), [])

    def unique_contexts(self, organism: str, output_type: str) -> tuple[list, np.ndarray, np.ndarray]:
        """``(distinct contexts, inv, first)``: tracks sharing a context share their signal,
        so scores are computed per distinct context and broadcast with ``values[..., inv]``;
        ``first[u]`` is the first track of context ``u``."""
        return self._unique.get((organism, output_type), ([], np.zeros(0, np.int64), np.zeros(0, np.int64)))

    # ---------------------------------------------------------------- weights
    def model(self, version: str):
        m = self._models.get(version)
        if m is None:
            with self._model_lock:
                m = self._models.get(version)
                if m is None:
                    c = self.config
                    params = self.world.truth.perturbed(_seed("agval-standin", self.world_seed, "rev", c.revision),
                                                        c.model_scale)
                    if version != DEFAULT_MODEL_VERSION:
                        params = params.perturbed(_seed("agval-standin", self.world_seed, "rev", c.revision,
                                                        "fold", version), c.fold_scale)
                    from standins.fastmodel import BatchModel, GeneMaskEngine

                    m = self._SequenceModel(params)
                    bm = BatchModel(m)
                    # publish everything else before the model: ``model()``'s lock-free fast
                    # path reads ``_models``, so a thread that sees the model must also see
                    # its scorer (concurrent first RNA_SEQ calls once failed with KeyError)
                    self._batch[version] = bm
                    self._engines[version] = GeneMaskEngine(bm, self.genome.fetch, self._exon_blocks)
                    self._scorers[version] = self._LocalScorer(m, self.genome, self.genes, self.exons,
                                                               tracks_fn=bm.tracks)
                    self._models[version] = m
        return m

    def gene_scorer(self, version: str):
        self.model(version)
        return self._scorers[version]

    def prewarm(self, version: str = DEFAULT_MODEL_VERSION, organism: str = "HOMO_SAPIENS") -> dict:
        """Compute every gene's REF exon sums (RNA_SEQ contexts) and the recommended DNASE and
        RNA_SEQ backgrounds now; returns ``{"genes": n, "seconds": s}``."""
        t0 = time.perf_counter()
        self.model(version)
        eng = self._engines[version]
        uctx, _, _ = self.unique_contexts(organism, "RNA_SEQ")
        curies = tuple(dict.fromkeys(c.curie for c in uctx))
        n = 0
        if curies:
            for gid, chrom in self.genes.select("gene_id", "chrom").iter_rows():
                self._check_stopping()
                if gid in self._exon_blocks:
                    eng.ref_sums(chrom, gid, -(1 << 62), 1 << 62, curies)
                    n += 1
        for name in ("DNASE", "RNA_SEQ"):
            if self._by_type.get((organism, name)) is not None:
                spec = parse_scorer(vs_lib.RECOMMENDED_VARIANT_SCORERS[name].to_proto())
                self.backgrounds.get((spec, organism, version, self.config.revision))
        return {"genes": n, "seconds": time.perf_counter() - t0}

    def batch_model(self, version: str):
        """The version's :class:`standins.fastmodel.BatchModel` (many contexts at once)."""
        self.model(version)
        return self._batch[version]

    def model_fingerprint(self, version: str = DEFAULT_MODEL_VERSION) -> str:
        return self.model(version).params.fingerprint()

    # ---------------------------------------------------------------- scoring
    def check_variant(self, v: pb.Variant) -> Variant:
        """Validate a proto variant against the world genome -> :class:`agval.coords.Variant`."""
        return self.check_ref(self.parse_variant(v))

    def parse_variant(self, v: pb.Variant) -> Variant:
        """A proto variant -> :class:`agval.coords.Variant` (chromosome and alleles checked)."""
        chrom = v.chromosome
        if chrom not in self.chrom_lengths:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"unknown chromosome {chrom!r} (this genome has {', '.join(self.chrom_lengths)})")
        ref, alt = v.reference_bases.upper(), v.alternate_bases.upper()
        try:
            var = Variant(chrom, int(v.position), ref, alt)
        except Exception as e:  # noqa: BLE001 - InputError from agval.coords
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid variant: {e}") from None
        if var.end0 > self.chrom_lengths[chrom]:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"variant {var.key} lies beyond the end of {chrom} ({self.chrom_lengths[chrom]} bp)")
        return var

    def check_ref(self, var: Variant) -> Variant:
        """INVALID_ARGUMENT unless REF matches the world genome."""
        chrom, ref = var.chrom, var.ref
        found = self.genome.fetch(chrom, var.start0, var.end0)
        if found != ref:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"reference allele mismatch for {var.key}: the reference genome has {found!r} at "
                        f"{chrom}:{var.pos} (wrong build, strand or allele order?)")
        return var

    def score(self, version: str, organism: str, variant: Variant, interval: tuple[str, int, int],
              spec: ScorerSpec) -> tuple[np.ndarray, list[str]]:
        """Raw scores ``[n_obs, n_tracks]`` (unmerged; NaN where gene and track strands
        differ) and the gene ids of the observations (empty for centre masks).

        Results are kept in an LRU cache (``config.result_cache_size``) keyed by everything
        they depend on, so the stand-in's own CPU time does not dominate client benchmarks;
        the returned arrays are read-only."""
        key = self._result_key(version, organism, variant, interval, spec)
        _, inv, first = self.unique_contexts(organism, spec.output_type)
        if spec.kind in extra_scorers.NEW_KINDS:  # values differ between tracks of one context
            inv = first = np.zeros(0, np.int64)
        if key is not None:
            with self._results_lock:
                hit = self._results.get(key)
                if hit is not None:
                    self._results.move_to_end(key)
            if hit is not None:
                compact, gids = hit
                raw = compact[:, inv] if len(inv) and compact.shape[1] != len(inv) else compact
                raw.flags.writeable = False
                return raw, gids
        with self._compute_slots:
            raw, gids = self._score(version, organism, variant, interval, spec)
        raw.flags.writeable = False
        if key is not None:
            # one column per distinct context (the rest are copies of it)
            compact = raw[:, first] if len(inv) and raw.shape[1] == len(inv) and len(first) < len(inv) else raw
            budget = self.config.result_cache_mb * (1 << 20)
            with self._results_lock:
                old = self._results.pop(key, None)
                if old is not None:
                    self._results_bytes -= old[0].nbytes
                self._results[key] = (compact, gids)
                self._results_bytes += compact.nbytes
                while self._results and (len(self._results) > self.config.result_cache_size
                                         or self._results_bytes > budget):
                    self._results_bytes -= self._results.popitem(last=False)[1][0].nbytes
        return raw, gids

    def _result_key(self, version, organism, variant: Variant, interval, spec: ScorerSpec):
        if self.config.result_cache_size <= 0:
            return None
        _, start, end = interval
        if spec.kind == "center_mask":
            # the interval matters only when it clips the window the model reads
            reach = self.model(version).reach_for({spec.output_type})
            pad = max(len(variant.ref), len(variant.alt)) + 1
            a = variant.start0 - spec.width // 2
            lo, hi = a - reach - pad, a + spec.width + reach + pad
            if start <= lo and hi <= end:
                start = end = None
        return (version, organism, spec, variant, start, end)

    def _score(self, version: str, organism: str, variant: Variant, interval: tuple[str, int, int],
               spec: ScorerSpec) -> tuple[np.ndarray, list[str]]:
        _, start, end = interval
        ctxs = self.contexts(organism, spec.output_type)
        uctx, inv, _ = self.unique_contexts(organism, spec.output_type)
        model = self.model(version)
        if not ctxs:
            n_obs = 1 if spec.kind in ("center_mask", "contact_map") else 0
            return np.zeros((n_obs, 0)), []
        if spec.kind == "contact_map":
            return extra_scorers.score_contact_map(self, organism, variant, interval, spec, version), []
        if spec.kind == "gene_mask_active":
            return extra_scorers.score_active(self, version, organism, variant, interval, spec)
        if spec.kind == "gene_mask_splicing":
            return extra_scorers.score_splicing(self, organism, variant, interval, spec)
        if spec.kind == "splice_junction":
            return extra_scorers.score_junctions(self, organism, variant, interval, spec)
        if spec.kind == "pa_qtl":
            return extra_scorers.score_polyadenylation(self, organism, variant, interval, spec)
        if spec.kind == "center_mask":
            from standins.scoring_math import center_window

            local = self._LocalScorer(model, self.genome.within(start, end),
                                      tracks_fn=self.batch_model(version).tracks)
            a, b = center_window(variant.start0, spec.width)
            reach = model.reach_for({c.output_type for c in uctx})
            # the REF/ALT signals are shared by every aggregation of one (output, width): the
            # recommended DIFF_LOG2_SUM and ACTIVE_SUM scorers of a request compute them once
            sig_key = (version, organism, variant, start, end, spec.output_type, spec.width)
            with self._results_lock:
                hit = self._signals.get(sig_key)
            if hit is None:
                hit = local.ref_alt(variant, uctx, a, b, reach=reach)
                with self._results_lock:
                    self._signals[sig_key] = hit
                    while len(self._signals) > 32:
                        self._signals.popitem(last=False)
            ref, alt = hit
            return aggregate_center(ref, alt, spec.aggregation)[inv][None, :], []
        gids, lfc = self._gene_scores(version, variant, uctx, start, end)
        lfc = lfc[:, inv]
        if gids:
            gs = np.array([self._gene_info[g]["strand"] for g in gids])[:, None]
            ts = np.array([c.strand for c in ctxs])[None, :]
            lfc = np.where((ts == ".") | (ts == gs), lfc, np.nan)
        return lfc, gids

    def _gene_scores(self, version: str, variant: Variant, ctxs: list, start: int, end: int):
        """Gene-mask LFC ``[n_genes, n_tracks]`` for the genes with exons in ``[start, end)``.

        Same numbers as ``LocalScorer.gene_scores``, but genes with no exon within the
        model's reach of the allele are 0 without computing their REF exon sums (their
        ALT and REF exon means are identical, so the LFC is exactly 0)."""
        scorer = self.gene_scorer(version)
        gids = self.genes_in(variant.chrom, start, end)
        out = np.zeros((len(gids), len(ctxs)))
        if not gids:
            return gids, out
        model = self.model(version)
        reach = model.reach_for({c.output_type for c in ctxs}) + 1
        lo, hi = variant.start0 - reach, variant.end0 + reach
        near = []
        for gi, gid in enumerate(gids):
            ex = self._exon_blocks.get(gid)
            if ex is not None and np.any((ex[:, 0] < hi) & (ex[:, 1] > lo)):
                near.append(gi)
        if not near:
            return gids, out
        if any(c.output_type != "RNA_SEQ" for c in ctxs):
            for gi in near:  # not expression tracks: the exact per-base path
                out[gi] = scorer.gene_lfc(variant, gids[gi], ctxs, (start, end))
            return gids, out
        from standins.fastmodel import lfc_from_sums

        eng = self._engines[version]
        curies = tuple(dict.fromkeys(c.curie for c in ctxs))
        col = np.array([curies.index(c.curie) for c in ctxs])
        use_p = np.array([c.strand in "+." for c in ctxs])[None, :]
        use_m = np.array([c.strand in "-." for c in ctxs])[None, :]
        blocks = [eng.blocks(gids[gi], start, end) for gi in near]
        if len(variant.ref) == len(variant.alt):
            dsp, dsm = eng.delta_sums(variant.chrom, variant.start0, variant.ref, variant.alt, blocks, curies)
            extra = 0.0
        else:
            dsp, dsm, ddot, offset = eng.delta_sums_indel(variant.chrom, variant.start0, variant.ref, variant.alt,
                                                          blocks, curies)
            extra = np.where(use_p & use_m, ddot[:, col], 0.0) + offset[:, None]
        refs = [eng.ref_sums(variant.chrom, gids[gi], start, end, curies) for gi in near]
        sp = np.stack([r[0] for r in refs])[:, col]
        sm = np.stack([r[1] for r in refs])[:, col]
        ref_s = np.where(use_p, sp, 0.0) + np.where(use_m, sm, 0.0)
        d_s = np.where(use_p, dsp[:, col], 0.0) + np.where(use_m, dsm[:, col], 0.0) + extra
        n = np.array([r[2] for r in refs])
        out[near] = lfc_from_sums(ref_s, d_s, n, model.params.output_gains.get("RNA_SEQ", 1.0))
        return gids, out

    def quantiles(self, version: str, organism: str, spec: ScorerSpec, raw: np.ndarray) -> np.ndarray:
        """Quantile scores of ``raw`` ``[n_obs, n_tracks]``; computed once per distinct
        context (tracks sharing a context have the same raw scores and background)."""
        if raw.size == 0:
            return np.zeros(raw.shape)
        bg = self.backgrounds.get((spec, organism, version, self.config.revision))
        _, inv, first = self.unique_contexts(organism, spec.output_type)
        if spec.kind in extra_scorers.NEW_KINDS or len(first) == raw.shape[1] or len(inv) != raw.shape[1]:
            return bg.quantiles(raw)
        return bg.quantiles(raw[:, first], columns=first)[:, inv]

    def merge(self, organism: str, spec: ScorerSpec, gids: list[str], *arrays: np.ndarray) -> list[np.ndarray]:
        """Server-side ``merge_stranded_gene_tracks`` (the SDK's algorithm)."""
        pos, neg = self._merge_masks[(organism, spec.output_type)]
        plus = np.array([self._gene_info[g]["strand"] == "+" for g in gids], dtype=bool)[:, None]
        return [np.where(plus, a[:, pos], a[:, neg]) for a in arrays]

    def gene_protos(self, gids: list) -> list[pb.GeneScorerMetadata]:
        """Gene metadata of the observations: gene ids, or ``(gene id, junction start,
        junction end)`` for junction scorers."""
        out = []
        for g in gids:
            junction = {}
            if isinstance(g, tuple):
                g, js, je = g
                junction = {"junction_start": js, "junction_end": je}
            info = self._gene_info[g]
            out.append(pb.GeneScorerMetadata(
                gene_id=g, name=info["gene_name"], type=info["gene_type"],
                strand=pb.STRAND_POSITIVE if info["strand"] == "+" else pb.STRAND_NEGATIVE, **junction))
        return out

    # ---------------------------------------------------------------- backgrounds
    def background_variants(self) -> list[Variant]:
        """Common variants (af > 0.01) of the world catalogue, a fixed pseudo-random order in
        which variants inside planted regulatory elements and variants outside alternate.

        The synthetic genome's model gives exactly zero effect to most variants far from
        any element, so a plain random sample of a few hundred would be nearly all zeros
        and every real effect would rank above all of it (quantiles saturated at
        +-0.99999). The real model's background of ~300K common variants is continuous; the
        stratified sample stands in for that.
        """
        if self._bg_variants is None:
            v = self.world.variants
            if "status" in v.columns:
                v = v.filter(pl.col("status") == "ok")
            v = v.filter((pl.col("af") > 0.01) & pl.col("chrom").is_in(list(self.chrom_lengths)))
            v = v.unique(["chrom", "pos", "ref", "alt"]).sort(["chrom", "pos", "ref", "alt"])
            rows = v.select("chrom", "pos", "ref", "alt").rows()
            rng = np.random.default_rng(_seed("agval-standin-background", self.world_seed))
            order = _interleave_by_element(rng.permutation(len(rows)), rows, self.world.elements)
            out = []
            for i in order:
                c, p, r, a = rows[int(i)]
                try:
                    out.append(Variant(c, int(p), r, a))
                except Exception:  # noqa: BLE001 - skip malformed rows
                    continue
            self._bg_variants = out
        return self._bg_variants

    def _compute_background(self, key) -> Background:
        spec, organism, version, _rev = key
        from standins.scoring_math import default_interval

        heavy = (spec.kind != "center_mask" or spec.output_type in ("CHIP_HISTONE", "RNA_SEQ")
                 or (spec.width or 0) > 2001)
        n = self.config.heavy_background_size if heavy else self.config.background_size
        rows = []
        used = 0
        for var in self.background_variants()[:n]:
            self._check_stopping()
            start, end = default_interval(var)
            raw, _ = self.score(version, organism, var, (var.chrom, start, end), spec)
            if raw.size:
                rows.append(raw)
            used += 1
        n_tracks = len(self.contexts(organism, spec.output_type))
        allrows = np.concatenate(rows, axis=0) if rows else np.zeros((0, n_tracks))
        return Background.from_rows(allrows, spec.signed, used)

    # ---------------------------------------------------------------- prediction
    def _check_stopping(self) -> None:
        if self.stop_event.is_set():
            raise Abort(grpc.StatusCode.UNAVAILABLE, "the stand-in is stopping")

    def _tiled_contexts(self, bm, seq: str, ctxs: list, res: int = 1) -> np.ndarray:
        """Signal ``[len(seq) // res, len(ctxs)]`` float32 of the batched model (per base, or
        the mean of ``res``-bp bins), computed per distinct context in tiles with ``reach``
        margins (the model is exactly local, so the result is identical) that shrink with
        the number of contexts, so a tile's arrays stay ~64 M values."""
        n = len(seq)
        uniq: dict = {}
        inv = np.array([uniq.setdefault(c, len(uniq)) for c in ctxs], dtype=np.int64)
        uctx = list(uniq)
        if not uctx:
            return np.zeros((n // res, 0), np.float32)
        tile = PREDICT_TILE
        while tile > 4096 and tile * len(uctx) > (1 << 26):
            tile //= 2
        margin = bm.model.reach_for({c.output_type for c in uctx}) + 1
        out = np.empty((n // res, len(uctx)), np.float32)

        def put(a: int, vals: np.ndarray) -> None:
            if res > 1:
                vals = vals.reshape(vals.shape[0] // res, res, vals.shape[1]).mean(axis=1)
            out[a // res:a // res + vals.shape[0]] = vals

        if n <= tile:
            put(0, bm.tracks(seq, uctx))
        else:
            with self._predict_slots:
                for a in range(0, n, tile):
                    self._check_stopping()
                    b = min(n, a + tile)
                    lo, hi = max(0, a - margin), min(n, b + margin)
                    put(a, bm.tracks(seq[lo:hi], uctx)[a - lo:b - lo])
        return out[:, inv]

    def predict(self, version: str, organism: str, seq: str, output_type: str,
                curies: set[str] | None) -> tuple[np.ndarray, pd.DataFrame, int]:
        """Per-base (or binned) signal ``[L / res, n]``, SDK track metadata and resolution."""
        df = self.tracks(organism, output_type)
        pdf = self._track_pd.get((organism, output_type))
        if pdf is None:
            pdf = pd.DataFrame(columns=["name", "strand"])
        ctxs = self.contexts(organism, output_type)
        if curies is not None:
            keep = np.array([c in curies for c in df["ontology_curie"].to_list()], dtype=bool)
            ctxs = [c for c, k in zip(ctxs, keep) if k]
            pdf = pdf[keep].reset_index(drop=True)
        res = BINNED_OUTPUTS.get(output_type, 1)
        values = self._tiled_contexts(self.batch_model(version), seq, ctxs, res)
        return values.astype(np.float32, copy=False), pdf, res


# --------------------------------------------------------------------------- runtime + call wrapper

class Runtime:
    """State shared by the services of one server: call log, attempt counters, quota, stop."""

    def __init__(self, config: StandinConfig, stop_event: threading.Event | None = None):
        self.config = config
        self.stop_event = stop_event or threading.Event()
        self.attempts = faults.AttemptCounter()
        self._calls: collections.deque[CallRecord] = collections.deque(maxlen=config.call_log_size)
        self._lock = threading.Lock()
        self.bucket = (quota.TokenBucket(config.quota_tokens_per_minute, config.quota_burst_tokens)
                       if config.quota_tokens_per_minute else None)
        self.poison = frozenset(config.poison)

    # call log
    def record(self, rec: CallRecord) -> None:
        with self._lock:
            self._calls.append(rec)

    @property
    def calls(self) -> list[CallRecord]:
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> list[CallRecord]:
        with self._lock:
            out = list(self._calls)
            self._calls.clear()
            return out

    def reset(self) -> None:
        self.clear_calls()
        self.attempts.clear()

    def charge(self, rec: CallRecord, cost: float) -> None:
        if self.bucket is None:
            return
        ok, wait_s = self.bucket.try_take(cost)
        if not ok:
            raise Abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"Quota exceeded for quota metric 'tokens' and limit 'tokens per minute' "
                        f"({self.bucket.tokens_per_minute:g}/min; this call costs {cost:.3g}); "
                        f"retry in {wait_s:.2f} s")
        rec.cost = cost

    # the call wrapper
    def _begin(self, method: str, request, context) -> tuple[CallRecord, faults.FaultSpec | None, Abort | None]:
        rec = CallRecord(method, faults.fingerprint(method, request), 0, time.monotonic())
        md = context.invocation_metadata() or ()
        try:
            spec = faults.parse_metadata(md)
        except Abort as e:
            rec.attempt = self.attempts.next((method, rec.fingerprint, "bad-headers"))
            return rec, None, e
        rec.attempt = self.attempts.next((method, rec.fingerprint, spec.key()))
        if self.config.required_api_key is not None:
            keys = [v for k, v in md if k.lower() == "x-goog-api-key"]
            if self.config.required_api_key not in keys:
                return rec, spec, Abort(grpc.StatusCode.UNAUTHENTICATED, "API key not valid. Please pass a valid API key.")
        return rec, spec, None

    def _wait(self, ms: float, context) -> bool:
        """Wait ``ms``; False if the client left; UNAVAILABLE if the server is stopping."""
        if faults.wait(ms / 1000.0, self.stop_event, context=context):
            return True
        if self.stop_event.is_set():
            raise Abort(grpc.StatusCode.UNAVAILABLE, "the stand-in is stopping")
        return False

    def _pre(self, rec: CallRecord, spec: faults.FaultSpec, context, stream: bool) -> tuple[bool, bool]:
        """Latency, hang and up-front faults. Returns (client_still_there, fail_midstream)."""
        latency = spec.latency_ms if spec.latency_ms is not None else self.config.latency_ms
        if not self._wait(latency, context):
            return False, False
        faulty = spec.is_faulty(rec.attempt)
        if not faulty:
            return True, False
        if spec.hang_ms > 0:
            if not self._wait(spec.hang_ms, context):
                return False, False
            if spec.fail_code is None and spec.fail_midstream <= 0:
                return True, False  # a hang that then answers
        if spec.fail_midstream > 0 and stream:
            return True, True
        raise Abort(spec.code, f"injected fault (stand-in): {spec.code.name} on attempt {rec.attempt}",
                    injected=True)

    def _finish(self, rec: CallRecord, outcome: str, detail: str = "", injected: bool = False) -> None:
        rec.outcome = outcome
        rec.detail = detail
        rec.injected = injected
        rec.t_end = time.monotonic()
        self.record(rec)

    def run_stream(self, method: str, request, context, body: Callable[[object, CallRecord], list]) -> Iterator:
        """Run a streaming handler: ``body(request, rec) -> list of response messages``."""
        rec, spec, err = self._begin(method, request, context)
        done = False
        try:
            if err is not None:
                raise err
            alive, midstream = self._pre(rec, spec, context, stream=True)
            if not alive:
                return
            msgs = body(request, rec)
            if midstream:
                k = spec.fail_midstream
                yield from msgs[:k]
                raise Abort(spec.code, f"injected mid-stream fault (stand-in): {spec.code.name} after "
                                       f"{min(k, len(msgs))} message(s) on attempt {rec.attempt}", injected=True)
            yield from msgs
            self._finish(rec, "OK")
            done = True
        except Abort as e:
            self._finish(rec, e.code.name, e.details, e.injected)
            done = True
            context.abort(e.code, e.details)
        except Exception as e:  # noqa: BLE001 - a stand-in bug: say so
            if isinstance(e, grpc.RpcError) or type(e).__name__ == "_AbortedError":
                raise
            traceback.print_exc(file=sys.stderr)
            self._finish(rec, "INTERNAL", f"stand-in error: {e!r}")
            done = True
            context.abort(grpc.StatusCode.INTERNAL, f"stand-in error: {type(e).__name__}: {e}")
        finally:
            if not done:
                self._finish(rec, "CANCELLED", "client went away")

    def run_unary(self, method: str, request, context, body: Callable[[object, CallRecord], object]):
        rec, spec, err = self._begin(method, request, context)
        try:
            if err is not None:
                raise err
            alive, _ = self._pre(rec, spec, context, stream=False)
            if not alive:
                self._finish(rec, "CANCELLED", "client went away")
                context.abort(grpc.StatusCode.CANCELLED, "cancelled")
            out = body(request, rec)
            self._finish(rec, "OK" if context.is_active() else "CANCELLED")
            return out
        except Abort as e:
            self._finish(rec, e.code.name, e.details, e.injected)
            context.abort(e.code, e.details)
        except Exception as e:  # noqa: BLE001
            if rec.t_end:  # already recorded (context.abort raised)
                raise
            traceback.print_exc(file=sys.stderr)
            self._finish(rec, "INTERNAL", f"stand-in error: {e!r}")
            context.abort(grpc.StatusCode.INTERNAL, f"stand-in error: {type(e).__name__}: {e}")


# --------------------------------------------------------------------------- the service

def _np_dtype(name: str):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(np.float32)


class DnaModelService(svc_grpc.DnaModelServiceServicer):
    """The stand-in DnaModelService. ``calls`` / ``clear_calls()`` / ``reset()`` expose the log."""

    def __init__(self, core: StandinCore, runtime: Runtime):
        self.core = core
        self.runtime = runtime
        self.config = runtime.config
        self._compression = _ZSTD if self.config.compression == "zstd" else _NONE
        self._responses: collections.OrderedDict = collections.OrderedDict()
        self._responses_lock = threading.Lock()

    # ------------------------------------------------------------ call log API
    @property
    def calls(self) -> list[CallRecord]:
        """A snapshot of the call log (both services), oldest first."""
        return self.runtime.calls

    def clear_calls(self) -> list[CallRecord]:
        """Empty the call log; returns what it held."""
        return self.runtime.clear_calls()

    def reset(self) -> None:
        """Empty the call log and forget fail-first attempt counts."""
        self.runtime.reset()

    # ------------------------------------------------------------ validation helpers
    @staticmethod
    def _version(value: str) -> str:
        v = value or DEFAULT_MODEL_VERSION
        if v not in MODEL_VERSIONS:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"unknown model_version {value!r}; known versions: {', '.join(MODEL_VERSIONS)}")
        return v

    @staticmethod
    def _organism(value: int) -> str:
        org = ORGANISMS.get(value)
        if org is None:
            name = pb.Organism.Name(value) if value in pb.Organism.values() else str(value)
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"unsupported organism {name}; supported: ORGANISM_HOMO_SAPIENS, ORGANISM_MUS_MUSCULUS")
        return org

    def _length(self, n: int, what: str) -> None:
        if n not in SUPPORTED_LENGTHS:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"{what} length {n} is not supported; supported lengths: "
                        f"{', '.join(map(str, SUPPORTED_LENGTHS))}")

    def _interval(self, iv: pb.Interval) -> tuple[str, int, int]:
        if iv.chromosome not in self.core.chrom_lengths:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"unknown chromosome {iv.chromosome!r} in interval (this genome has "
                        f"{', '.join(self.core.chrom_lengths)})")
        if iv.end <= iv.start:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"empty interval {iv.chromosome}:{iv.start}-{iv.end}")
        self._length(iv.end - iv.start, "interval")
        return iv.chromosome, int(iv.start), int(iv.end)

    def _pack(self, values: np.ndarray, dtype: str):
        return tensor_utils.pack_tensor(values.astype(_np_dtype(dtype)), bytes_per_chunk=self.config.bytes_per_chunk,
                                        compression_type=self._compression)

    # ------------------------------------------------------------ ScoreVariant
    def ScoreVariant(self, request_iterator, context):  # noqa: N802 - gRPC name
        request = next(iter(request_iterator), None)
        if request is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request sent")
        yield from self.runtime.run_stream("ScoreVariant", request, context, self._score_variant)

    def _score_variant(self, request: svc.ScoreVariantRequest, rec: CallRecord) -> list:
        core = self.core
        rec.model_version = request.model_version or DEFAULT_MODEL_VERSION
        version = self._version(request.model_version)
        rec.organism = organism = self._organism(request.organism)
        rec.n_variants = 1
        rec.variant = f"{request.variant.chromosome}:{request.variant.position}:" \
                      f"{request.variant.reference_bases}>{request.variant.alternate_bases}"
        iv = request.interval
        rec.interval = f"{iv.chromosome}:{iv.start}-{iv.end}"
        if not request.variant_scorers:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "no variant scorers requested")
        if len(request.variant_scorers) > MAX_SCORERS:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"too many variant scorers ({len(request.variant_scorers)}); maximum {MAX_SCORERS}")
        specs = [parse_scorer(s) for s in request.variant_scorers]
        if len(set(specs)) != len(specs):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "duplicate variant scorers requested")
        rec.n_outputs = len(specs)
        if organism != "HOMO_SAPIENS" and any(sp.kind == "pa_qtl" for sp in specs):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "PolyadenylationScorer supports ORGANISM_HOMO_SAPIENS only")
        chrom, start, end = self._interval(iv)
        var = core.parse_variant(request.variant)
        rec.variant = var.key
        if var.chrom != chrom or not (start <= var.start0 and var.end0 <= end):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"variant {var.key} is outside the interval {chrom}:{start}-{end} "
                        f"(0-based half-open; the variant's REF must lie inside it)")
        core.check_ref(var)
        if var.key in self.runtime.poison:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"variant {var.key} cannot be scored (poison variant, stand-in fault injection)",
                        injected=True)
        self.runtime.charge(rec, quota.call_cost(end - start, len(specs)))
        cache_key = request.SerializeToString(deterministic=True) if self.config.response_cache_size else None
        if cache_key is not None:
            with self._responses_lock:
                hit = self._responses.get(cache_key)
            if hit is not None:
                return hit
        msgs = []
        for spec in specs:
            raw, gids = core.score(version, organism, var, (chrom, start, end), spec)
            q = core.quantiles(version, organism, spec, raw)
            merged = (spec.kind in extra_scorers.GENE_KINDS and spec.kind != "splice_junction"
                      and request.merge_stranded_gene_tracks)
            if merged:
                raw, q = core.merge(organism, spec, gids, raw, q)
            values = np.stack([raw, q]).astype(np.float32)
            tensor, chunks = self._pack(values, self.config.score_dtype)
            resp = svc.ScoreVariantResponse()
            vd = resp.output.variant_data
            vd.values.CopyFrom(tensor)
            # the track metadata (hundreds of tracks) is copied from a prebuilt message
            vd.metadata.CopyFrom(core.metadata_template(organism, spec.output_type, merged))
            vd.metadata.variant.CopyFrom(request.variant)
            vd.metadata.gene_metadata.extend(core.gene_protos(gids))
            msgs.append(resp)
            msgs.extend(svc.ScoreVariantResponse(tensor_chunk=c) for c in chunks)
        if cache_key is not None:
            with self._responses_lock:
                self._responses[cache_key] = msgs
                while len(self._responses) > self.config.response_cache_size:
                    self._responses.popitem(last=False)
        return msgs

    # ------------------------------------------------------------ PredictSequence / PredictInterval
    def PredictSequence(self, request_iterator, context):  # noqa: N802
        request = next(iter(request_iterator), None)
        if request is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request sent")
        yield from self.runtime.run_stream("PredictSequence", request, context, self._predict_sequence)

    def PredictInterval(self, request_iterator, context):  # noqa: N802
        request = next(iter(request_iterator), None)
        if request is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request sent")
        yield from self.runtime.run_stream("PredictInterval", request, context, self._predict_interval)

    def _predict_interval(self, request: svc.PredictIntervalRequest, rec: CallRecord) -> list:
        iv = request.interval
        rec.interval = f"{iv.chromosome}:{iv.start}-{iv.end}"
        rec.model_version = self._version(request.model_version)
        rec.organism = self._organism(request.organism)
        chrom, start, end = self._interval(iv)
        seq = self.core.genome.fetch(chrom, start, end)
        interval = ag_genome.Interval.from_proto(iv)
        return self._predict(seq, request, rec, interval, svc.PredictIntervalResponse)

    def _predict_sequence(self, request: svc.PredictSequenceRequest, rec: CallRecord) -> list:
        rec.model_version = self._version(request.model_version)
        rec.organism = self._organism(request.organism)
        seq = request.sequence.upper()
        rec.interval = f"sequence:{len(seq)}"
        self._length(len(seq), "sequence")
        bad = set(seq) - _VALID_SEQ
        if bad:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"invalid sequence: only A, C, G, T and N are allowed (found {''.join(sorted(bad))[:10]})")
        return self._predict(seq, request, rec, None, svc.PredictSequenceResponse)

    def _predict(self, seq: str, request, rec: CallRecord, interval, response_cls) -> list:
        core = self.core
        version, organism = rec.model_version, rec.organism
        if not request.requested_outputs:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "no requested_outputs")
        outputs = []
        for o in dict.fromkeys(request.requested_outputs):
            name = _ot_name(o)
            if o == pb.OUTPUT_TYPE_UNSPECIFIED or name.startswith("OUTPUT_TYPE_"):
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid requested output {o}")
            if name not in core.output_types(organism, computed=True):
                raise Abort(grpc.StatusCode.UNIMPLEMENTED,
                            f"output {name} is not predicted by the stand-in for {organism} "
                            f"(available: {', '.join(core.output_types(organism, computed=True))})")
            outputs.append((o, name))
        curies = None
        if len(request.ontology_terms):
            from alphagenome.data import ontology

            curies = {ontology.from_proto(t).ontology_curie for t in request.ontology_terms}
        rec.n_outputs = len(outputs)
        self.runtime.charge(rec, quota.call_cost(len(seq), len(outputs)))
        comp = self._compression
        msgs = []
        for o, name in outputs:
            values, pdf, res = core.predict(version, organism, seq, name, curies)
            values = values.astype(_np_dtype(self.config.predict_dtype))
            td = ag_track_data.TrackData(values, pdf, resolution=res, interval=interval)
            proto, chunks = track_data_utils.to_protos(td, bytes_per_chunk=self.config.bytes_per_chunk,
                                                       compression_type=comp)
            msgs.append(response_cls(output=pb.Output(output_type=o, track_data=proto)))
            msgs.extend(response_cls(tensor_chunk=c) for c in chunks)
        return msgs

    # ------------------------------------------------------------ GetMetadata
    def GetMetadata(self, request, context):  # noqa: N802
        yield from self.runtime.run_stream("GetMetadata", request, context, self._metadata)

    def _metadata(self, request: svc.MetadataRequest, rec: CallRecord) -> list:
        rec.organism = organism = self._organism(request.organism)
        msgs = []
        for ot in self.core.output_types(organism):
            junctions = self.core.junction_protos(organism, ot)
            payload = ({"junctions": junctions} if junctions is not None
                       else {"tracks": pb.TracksMetadata(metadata=self.core.track_protos(organism, ot))})
            msgs.append(svc.MetadataResponse(output_metadata=[pb.OutputMetadata(
                output_type=dna_output.OutputType[ot].to_proto(), **payload)]))
        return msgs


def _interleave_by_element(order: np.ndarray, rows: list[tuple], elements) -> list[int]:
    """``order`` re-arranged so that variants inside a planted element (1-based inclusive
    ``start..end``) and outside alternate; within each group the order is kept."""
    if elements is None or elements.height == 0:
        return [int(i) for i in order]
    inside = np.zeros(len(rows), dtype=bool)
    chroms = np.array([r[0] for r in rows])
    pos = np.array([int(r[1]) for r in rows])
    for chrom, els in elements.group_by("chrom"):
        chrom = chrom[0] if isinstance(chrom, tuple) else chrom
        els = els.sort("start")
        starts = els["start"].to_numpy()
        ends_cummax = np.maximum.accumulate(els["end"].to_numpy())
        idx = np.flatnonzero(chroms == chrom)
        k = np.searchsorted(starts, pos[idx], side="right") - 1
        ok = k >= 0
        inside[idx[ok]] = pos[idx[ok]] <= ends_cummax[k[ok]]
    a = [int(i) for i in order if inside[i]]
    b = [int(i) for i in order if not inside[i]]
    out: list[int] = []
    for x, y in zip(a, b):
        out += [x, y]
    n = min(len(a), len(b))
    return out + a[n:] + b[n:]
