"""AlphaGenome Atlas backend: precomputed SNV scores through the SDK's ``AtlasClient``.

* SNVs scored with recommended scorers (the Atlas's scorer names, ``'DNASE'``,
  ``'RNA_SEQ'``...) are looked up with ``GetDenseVariantScores`` (one unary call per
  variant, isolated and retried like live calls);
* indels, non-recommended scorers and non-human organisms (custom contexts) fall back
  to ``fallback`` (normally an :class:`~agval.scoring.alphagenome.AlphaGenomeBackend`),
  or fail with UNIMPLEMENTED when there is none.

The channel is built as ``atlas.create()`` builds it (the SDK's bundled gRPC service
config with its native retries), plus agval's per-call deadline interceptor. The
Atlas AnnData is converted to the same long table as live scores (tidy semantics:
versioned gene ids stripped, strand-mismatched cells dropped); the scorer column holds
the full scorer repr (``str(RECOMMENDED_VARIANT_SCORERS[name])``) so track selections
written for live scores apply unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import polars as pl

from agval.coords import Variant
from agval.genes import strip_gene_version
from agval.scoring.alphagenome import DEFAULT_ADDRESS, deadline_interceptor, tracks_to_polars
from agval.scoring.backend import (GENE_COLUMNS, SCORE_COLUMNS, TRACK_COLUMNS, BackendCallError,
                                   ScoringBackend, metadata_is_simulated, normalize_organism, scorer_id)
from agval.sdk import is_loopback


def _recommended() -> dict[str, Any]:
    from alphagenome.models import variant_scorers as vs

    return dict(vs.RECOMMENDED_VARIANT_SCORERS)


def atlas_channel(address: str | None, *, secure: bool | None = None, deadline_s: float | None = 60.0,
                  connect_timeout: float | None = 10.0):
    import importlib.resources

    import grpc

    address = address or DEFAULT_ADDRESS
    if secure is None:
        secure = not is_loopback(address)
    service_config = (importlib.resources.files("alphagenome") / "protos/grpc_service_config.json").read_text()
    opts = (("grpc.service_config", service_config),)
    raw = (grpc.secure_channel(address, grpc.ssl_channel_credentials(), options=opts) if secure
           else grpc.insecure_channel(address, options=opts))
    if connect_timeout is not None:
        grpc.channel_ready_future(raw).result(timeout=connect_timeout)
    return raw, (grpc.intercept_channel(raw, deadline_interceptor(deadline_s)) if deadline_s else raw)


class AtlasBackend(ScoringBackend):
    """Atlas lookups for SNVs; everything else through ``fallback``."""

    name = "atlas"

    def __init__(self, address: str | None = None, *, api_key: str | None = None, secure: bool | None = None,
                 deadline_s: float = 60.0, connect_timeout: float | None = 10.0,
                 metadata: Sequence[tuple[str, str]] = (), fallback: ScoringBackend | None = None,
                 ontology_terms: Sequence[str] | None = None, channel=None, canary=None, world_dir=None):
        from alphagenome.atlas import atlas as atlas_lib
        from alphagenome.protos import atlas_service_pb2_grpc

        self.address = address
        self.fallback = fallback
        self.ontology_terms = list(ontology_terms) if ontology_terms else None
        from agval.scoring.alphagenome import call_metadata

        self._live, md = call_metadata(address, channel, api_key, metadata)
        md = list(md)
        if channel is not None:
            self._raw, self._channel = channel, channel
        else:
            self._raw, self._channel = atlas_channel(address, secure=secure, deadline_s=deadline_s,
                                                     connect_timeout=connect_timeout)
        self.client = atlas_lib.AtlasClient(atlas_service_pb2_grpc.AtlasServiceStub(self._channel), metadata=md)
        self._meta: pl.DataFrame | None = None
        self._fp_options = {"canary": canary, "world_dir": world_dir}
        rec = _recommended()
        self._name_of = {scorer_id(v): k for k, v in rec.items()}
        self._obj_of = rec

    # -- identity -------------------------------------------------------------------
    @property
    def model_version_name(self) -> str:
        fb = f"+{self.fallback.name}-{self.fallback.model_version_name}" if self.fallback is not None else ""
        return f"ATLAS{fb}"

    def output_metadata(self, organism: str = "HOMO_SAPIENS") -> pl.DataFrame | None:
        if normalize_organism(organism) != "HOMO_SAPIENS":
            return None
        if self._meta is None:
            frames = []
            for name, m in self.client.scorer_metadata().items():
                if m.track_metadata is None or len(m.track_metadata) == 0:
                    continue
                obj = self._obj_of.get(name)
                ot = obj.requested_output.name if obj is not None else name
                frames.append(tracks_to_polars(m.track_metadata).with_columns(
                    pl.lit(ot).alias("output_type"), pl.lit(name).alias("atlas_scorer")))
            df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(
                schema={"output_type": pl.String, **TRACK_COLUMNS})
            self._meta = df.select("output_type", *TRACK_COLUMNS,
                                   *[c for c in df.columns if c not in TRACK_COLUMNS and c != "output_type"])
        return self._meta

    @property
    def simulated(self) -> bool:
        """True when the atlas metadata or the fallback backend is a stand-in."""
        cached = getattr(self, "_simulated_cache", None)
        if cached is None:
            cached = metadata_is_simulated(self.output_metadata("HOMO_SAPIENS")) or (
                self.fallback is not None and bool(self.fallback.simulated))
            self._simulated_cache = cached
        return cached

    def describe(self) -> dict[str, Any]:
        d = {"backend": self.name, "address_kind": "atlas", "model_version": self.model_version_name,
             "ontology_terms": self.ontology_terms, "simulated": self.simulated,
             "fallback": self.fallback.describe() if self.fallback is not None else None}
        if not self._live:
            d["address"] = self.address
        return d

    def fingerprint(self, **kwargs):
        fp = super().fingerprint(**kwargs)
        if self.fallback is not None and "fallback" not in fp:
            from agval.scoring.fingerprint import fingerprint_digest

            fp = dict(fp)
            fp["extra"] = {"fallback_digest": self.fallback.fingerprint().get("digest")}
            fp["fallback"] = fp["extra"]["fallback_digest"]
            fp["digest"] = fingerprint_digest(fp)
        return fp

    def close(self) -> None:
        self.closed = True
        try:
            self._raw.close()
        except Exception:  # pragma: no cover
            pass
        if self.fallback is not None:
            self.fallback.close()

    # -- scoring --------------------------------------------------------------------
    def validate(self, scorers: Sequence[Any], *, interval_width: int, organism: str) -> None:
        if self.fallback is not None:
            if not all(scorer_id(s) in self._name_of for s in scorers) or normalize_organism(organism) != "HOMO_SAPIENS":
                self.fallback.validate(scorers, interval_width=interval_width, organism=organism)

    def supports(self, variant: Variant, scorers: Sequence[Any], organism: str = "HOMO_SAPIENS") -> bool:
        return (variant.is_snv and normalize_organism(organism) == "HOMO_SAPIENS"
                and all(scorer_id(s) in self._name_of for s in scorers))

    def score_one(self, variant: Variant, scorers: Sequence[Any], *, interval_width: int,
                  organism: str) -> pl.DataFrame:
        if not self.supports(variant, scorers, organism):
            if self.fallback is None:
                raise BackendCallError("UNIMPLEMENTED", f"{variant.key}: the Atlas holds SNVs scored with "
                                                        "recommended scorers only, and no fallback is set")
            return self.fallback.score_one(variant, scorers, interval_width=interval_width, organism=organism)
        names = [self._name_of[scorer_id(s)] for s in scorers]
        try:
            res = self.client.query_variant(variant.to_sdk(), requested_scorers=names,
                                            ontology_terms=self.ontology_terms)
        except (ValueError, TimeoutError, PermissionError, NotImplementedError, IndexError) as e:
            cause = e.__cause__
            if cause is not None and callable(getattr(cause, "code", None)):
                raise cause from None  # keep the gRPC status (NOT_FOUND vs INVALID_ARGUMENT ...)
            raise
        frames = []
        for name in names:
            ad = res.get(name)
            if ad is None:
                raise BackendCallError("NOT_FOUND", f"the Atlas returned no {name} scores for {variant.key}")
            frames.append(anndata_to_long(ad, scorer_id(self._obj_of[name]),
                                          self._obj_of[name].requested_output.name, variant.key))
        frames = [f for f in frames if f.height]
        return pl.concat(frames) if frames else pl.DataFrame(schema=SCORE_COLUMNS)


def anndata_to_long(ad, scorer: str, output_type: str, variant_key: str) -> pl.DataFrame:
    """An Atlas AnnData (one variant) -> the long table (tidy semantics)."""
    x = np.asarray(ad.X, dtype=np.float32)
    q = np.asarray(ad.layers["quantiles"], dtype=np.float32) if "quantiles" in ad.layers else None
    n_obs, n_tracks = x.shape
    tracks = tracks_to_polars(ad.var).select(list(TRACK_COLUMNS))
    obs = ad.obs
    if "gene_id" in obs.columns:
        def col(name):
            return [None if (v is None or (isinstance(v, float) and v != v)) else v
                    for v in (obs[name].tolist() if name in obs.columns else [None] * n_obs)]
        genes = pl.DataFrame({
            "gene_id": [strip_gene_version(g) for g in col("gene_id")],
            "gene_name": [None if g is None else str(g) for g in col("gene_name")],
            "gene_type": [None if g is None else str(g) for g in col("gene_type")],
            "gene_strand": [None if g is None else str(g) for g in col("strand")],
            "junction_start": col("junction_Start"), "junction_end": col("junction_End"),
        }, schema=GENE_COLUMNS)
    else:
        genes = pl.DataFrame({c: [None] * n_obs for c in GENE_COLUMNS}, schema=GENE_COLUMNS)
    ti = np.repeat(np.arange(n_tracks), n_obs)
    gi = np.tile(np.arange(n_obs), n_tracks)
    ts = np.asarray(tracks["track_strand"].fill_null("").to_list(), dtype=object)[ti]
    gs = np.asarray(genes["gene_strand"].fill_null("").to_list(), dtype=object)[gi]
    keep = ~(((gs == "+") & (ts == "-")) | ((gs == "-") & (ts == "+")))
    ti, gi = ti[keep], gi[keep]
    df = pl.concat([tracks[ti], genes[gi]], how="horizontal").with_columns(
        pl.lit(variant_key).alias("variant_key"), pl.lit(scorer).alias("scorer"),
        pl.lit(output_type).alias("output_type"),
        pl.Series("raw_score", x.T.reshape(-1)[keep], dtype=pl.Float32),
        (pl.Series("quantile_score", q.T.reshape(-1)[keep], dtype=pl.Float32) if q is not None
         else pl.lit(None, dtype=pl.Float32).alias("quantile_score")))
    return df.select(list(SCORE_COLUMNS))
