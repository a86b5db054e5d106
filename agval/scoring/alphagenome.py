"""The AlphaGenome backend: the SDK's client against the live service, the stand-in, or a
self-hosted model.

* **Channel**: exactly the options ``dna_client.create()`` uses (unlimited message sizes),
  TLS for remote addresses (``create()``'s default address when none is given), plain
  for loopback; plus a client interceptor that puts a **per-call deadline** on every
  RPC (the SDK sets none, so a hung server would hang the run).
* **Transport**: ``transport="aio"`` (default when the backend makes its own channel)
  reads ScoreVariant streams on one ``grpc.aio`` event loop per process
  (:mod:`agval.scoring.streams`): about half the client CPU of the synchronous API for a
  many-scorer answer. ``transport="sync"``, or a caller-supplied ``channel``, uses the
  synchronous stub. Metadata, predictions and the SDK-decode path always use the
  synchronous channel.
* **One call per variant**: ``ScoreVariant`` with all requested scorers (at most 20 per
  request, as the SDK allows), never ``score_variants`` (which discards every finished
  result when one variant fails). The SDK's own retry decorator is bypassed: the engine
  retries (only transient codes) and its limiter hears about every RESOURCE_EXHAUSTED.
* **Decoding**: ``decode="fast"`` (default) reads the response stream with the SDK's
  tensor code (``tensor_utils.unpack_proto``, bf16/f16 upcast) and builds the long
  polars table directly, converting each distinct track-metadata block with the SDK's
  ``metadata_from_proto`` once and reusing it; no AnnData and no pandas per variant.
  ``decode="sdk"`` goes through ``DnaClient.score_variant`` + ``tidy_scores`` (the
  reference; the tests assert both give identical tables).

Long table semantics follow ``tidy_scores(match_gene_strand=True)``: gene ids without
their version suffix, strand-mismatched (gene, track) cells dropped, raw scores from
``values[0]`` and quantiles from ``values[1]`` (null when the server sends none).
Variant and interval objects never reach the table (``variant_key`` is a string).
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Sequence

import numpy as np
import polars as pl

from agval.coords import Variant
from agval.scoring.backend import (GENE_COLUMNS, SCORE_COLUMNS, TRACK_COLUMNS, BackendCallError,
                                   ScoringBackend, SequencePrediction, conform_scores, metadata_is_simulated,
                                   normalize_organism, scorer_id)
from agval.sdk import is_loopback, read_tensor_chunks, unretried

DEFAULT_ADDRESS = "dns:///gdmscience.googleapis.com:443"
#: ``dna_client.create()``'s channel options, verbatim.
CREATE_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
MAX_SCORERS_PER_REQUEST = 20

_SDK_TRACK_RENAME = {"name": "track_name", "strand": "track_strand", "Assay title": "assay"}


# ----------------------------------------------------------------------------------
# Channel: create()'s options + a per-call deadline.
# ----------------------------------------------------------------------------------

def _grpc():
    import grpc

    return grpc


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"))):
    pass


def deadline_interceptor(timeout_s: float):
    """A client interceptor that gives every call without a deadline ``timeout_s``."""
    grpc = _grpc()

    class DeadlineInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
        def _d(self, d):
            if d.timeout is not None:
                return d
            return _CallDetails(d.method, timeout_s, d.metadata, d.credentials,
                                getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

        def intercept_unary_unary(self, continuation, d, request):
            return continuation(self._d(d), request)

        def intercept_unary_stream(self, continuation, d, request):
            return continuation(self._d(d), request)

        def intercept_stream_unary(self, continuation, d, request_iterator):
            return continuation(self._d(d), request_iterator)

        def intercept_stream_stream(self, continuation, d, request_iterator):
            return continuation(self._d(d), request_iterator)

    return DeadlineInterceptor()


def make_channel(address: str | None = None, *, secure: bool | None = None, deadline_s: float | None = 120.0,
                 connect_timeout: float | None = 10.0, options: Sequence[tuple[str, Any]] = ()):
    """A channel with ``create()``'s options (and TLS unless the address is loopback),
    wrapped with :func:`deadline_interceptor`. Waits ``connect_timeout`` s to connect."""
    grpc = _grpc()
    address = address or DEFAULT_ADDRESS
    if secure is None:
        secure = not is_loopback(address)
    opts = [*CREATE_OPTIONS, *options]
    if secure:
        raw = grpc.secure_channel(address, grpc.ssl_channel_credentials(), options=opts)
    else:
        raw = grpc.insecure_channel(address, options=opts)
    if connect_timeout is not None:
        try:
            grpc.channel_ready_future(raw).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            raw.close()
            from agval.errors import ConfigError
            from agval.secrets import redact

            raise ConfigError(redact(f"cannot connect to the AlphaGenome service at {address} "
                                     f"within {connect_timeout} s")) from None
    channel = grpc.intercept_channel(raw, deadline_interceptor(deadline_s)) if deadline_s else raw
    return raw, channel


def call_metadata(address: str | None, channel, api_key: str | None,
                  metadata: Sequence[tuple[str, str]]) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """``(live, metadata)`` for a backend's calls: the API key header first, then ``metadata``.

    The key store (environment, then a Prefect Secret block) is consulted only for the
    live Google endpoint; for the stand-in or a self-hosted address only the environment
    is read (a Secret lookup would start a Prefect server just to find nothing).
    """
    live = channel is None and (address is None or "googleapis.com" in address)
    if api_key is None:
        if live:
            from agval.secrets import get_api_key

            api_key = get_api_key(required=True)
        else:
            import os

            api_key = os.environ.get("ALPHAGENOME_API_KEY") or None
    md = list(metadata)
    if api_key:
        from agval.secrets import register

        register(api_key)
        md.insert(0, ("x-goog-api-key", api_key))
    return live, tuple(md)


def _pd_to_pl(df) -> pl.DataFrame:
    """pandas metadata frame -> polars, NaN/None -> null, every non-numeric column as str."""
    import pandas as pd

    cols = {}
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            cols[str(c)] = pl.Series(str(c), s.to_numpy(dtype=float, na_value=np.nan), nan_to_null=True)
        else:
            cols[str(c)] = pl.Series(str(c), [None if (v is None or (isinstance(v, float) and v != v))
                                              else str(getattr(v, "name", v)) if not isinstance(v, str) else v
                                              for v in s.tolist()], dtype=pl.String)
    return pl.DataFrame(cols)


def tracks_to_polars(meta_pd) -> pl.DataFrame:
    """SDK track metadata (pandas, ``metadata_from_proto``) -> :data:`TRACK_COLUMNS` (+ extras)."""
    df = _pd_to_pl(meta_pd.reset_index(drop=True)).rename(
        {k: v for k, v in _SDK_TRACK_RENAME.items() if k in meta_pd.columns})
    for c, t in TRACK_COLUMNS.items():
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=t).alias(c))
    return df


# ----------------------------------------------------------------------------------
# The backend.
# ----------------------------------------------------------------------------------

class AlphaGenomeBackend(ScoringBackend):
    """AlphaGenome through the SDK (live service, stand-in or self-hosted model).

    ``address=None`` is the live service (``create()``'s default address; the API key
    comes from ``api_key=`` or :func:`agval.secrets.get_api_key`). Any other address
    (the stand-in, a self-hosted model) gets a channel with the same options.
    ``metadata``: extra gRPC metadata sent with every call (the stand-in's fault
    headers in tests). ``canary`` / ``world_dir``: the fingerprint's canary panel
    (see :mod:`agval.scoring.fingerprint`). ``channel``: use this channel as is (no
    deadline interceptor is added; the caller owns it; ScoreVariant then goes through it
    synchronously). ``transport``: ``"aio"`` or ``"sync"`` for ScoreVariant on a channel the
    backend makes (see the module notes).
    """

    name = "alphagenome"

    def __init__(self, address: str | None = None, *, api_key: str | None = None, model_version=None,
                 secure: bool | None = None, deadline_s: float = 120.0, connect_timeout: float | None = 10.0,
                 metadata: Sequence[tuple[str, str]] = (), decode: str = "fast",
                 merge_stranded_gene_tracks: bool = True, canary=None, world_dir=None, channel=None,
                 transport: str = "aio"):
        from alphagenome.models import dna_client
        from alphagenome.protos.v1 import dna_model_service_pb2_grpc

        if decode not in ("fast", "sdk"):
            raise ValueError("decode must be 'fast' or 'sdk'")
        if transport not in ("aio", "sync"):
            raise ValueError("transport must be 'aio' or 'sync'")
        self.address = address
        self.decode = decode
        self.deadline_s = deadline_s
        self.merge_stranded_gene_tracks = merge_stranded_gene_tracks
        if model_version is not None and not hasattr(model_version, "name"):
            model_version = dna_client.ModelVersion[str(model_version).upper()]
        self._model_version = model_version
        live, self._metadata = call_metadata(address, channel, api_key, metadata)
        self._live = live
        self._streams = None  # ScoreVariant over grpc.aio (agval.scoring.streams) when we own the channel
        if channel is not None:  # an existing channel (tests; a caller-managed connection)
            self._raw_channel, self._channel = channel, channel
        else:
            self._raw_channel, self._channel = make_channel(address, secure=secure, deadline_s=deadline_s,
                                                            connect_timeout=connect_timeout)
            if transport == "aio":
                from agval.scoring.streams import AioStreams

                self._streams = AioStreams(address or DEFAULT_ADDRESS,
                                           secure=not is_loopback(address or DEFAULT_ADDRESS) if secure is None
                                           else secure, options=CREATE_OPTIONS)
        self.client = dna_client.DnaClient(channel=self._channel, model_version=model_version,
                                           metadata=self._metadata)
        self._stub = dna_model_service_pb2_grpc.DnaModelServiceStub(self._channel)
        self._track_memo: dict[tuple, pl.DataFrame] = {}
        self._memo_lock = threading.Lock()
        self._meta: dict[str, pl.DataFrame] = {}
        self._fp_options = {"canary": canary, "world_dir": world_dir}

    # -- identity -------------------------------------------------------------------
    @property
    def model_version_name(self) -> str:
        return self._model_version.name if self._model_version is not None else "default"

    def with_metadata(self, extra: Sequence[tuple[str, str]]) -> "AlphaGenomeBackend":
        """A shallow copy sending ``extra`` gRPC metadata too (same channel)."""
        import copy

        self.output_metadata("HOMO_SAPIENS")  # fetched once, without the extra metadata, and shared
        _ = self.simulated
        b = copy.copy(self)
        b._metadata = (*self._metadata, *extra)
        from alphagenome.models import dna_client

        b.client = dna_client.DnaClient(channel=self._channel, model_version=self._model_version,
                                        metadata=b._metadata)
        return b

    def output_metadata(self, organism: str = "HOMO_SAPIENS") -> pl.DataFrame:
        organism = normalize_organism(organism)
        if organism not in self._meta:
            from alphagenome.models import dna_client

            from agval.scoring.backend import RetryPolicy, call_with_retries

            # the SDK does not retry GetMetadata; transient errors are retried here
            out = call_with_retries(lambda: self.client.output_metadata(dna_client.Organism[organism]),
                                    policy=RetryPolicy(max_attempts=4))
            if out.error is not None:
                raise BackendCallError(*out.error)
            om = out.value.concatenate()
            om = om.assign(output_type=[getattr(o, "name", str(o)) for o in om["output_type"]])
            df = tracks_to_polars(om)
            self._meta[organism] = df.select("output_type", *TRACK_COLUMNS,
                                             *[c for c in df.columns if c not in TRACK_COLUMNS and c != "output_type"])
        return self._meta[organism]

    def address_kind(self) -> str:
        if self._live:
            return "live"
        return "standin" if self.simulated else "self-hosted"

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import version

        d = {"backend": self.name, "address_kind": self.address_kind(),
             "model_version": self.model_version_name, "sdk_version": version("alphagenome"),
             "decode": self.decode, "deadline_s": self.deadline_s,
             "merge_stranded_gene_tracks": self.merge_stranded_gene_tracks, "simulated": self.simulated}
        if not self._live:
            d["address"] = self.address
        return d

    def close(self) -> None:
        self.closed = True
        if self._streams is not None:
            self._streams.close()
        try:
            self._raw_channel.close()
        except Exception:  # pragma: no cover
            pass

    # -- scoring --------------------------------------------------------------------
    def _check(self, scorers, organism: str, interval_width: int):
        from alphagenome.models import dna_client
        from alphagenome.models import variant_scorers as vs

        dna_client.validate_sequence_length(interval_width)
        org = dna_client.Organism[organism]
        for s in scorers:
            if isinstance(s, str):
                raise BackendCallError("INVALID_ARGUMENT", f"{s!r} is not an AlphaGenome scorer")
            if org.to_proto() not in vs.SUPPORTED_ORGANISMS[s.base_variant_scorer]:
                raise BackendCallError("INVALID_ARGUMENT", f"scorer {s} does not support {organism}")
        return org

    def validate(self, scorers: Sequence[Any], *, interval_width: int, organism: str) -> None:
        from agval.errors import ScoringError

        try:
            self._check(scorers, normalize_organism(organism), interval_width)
        except BackendCallError as e:
            raise ScoringError(e.message) from None
        except ValueError as e:  # validate_sequence_length
            raise ScoringError(f"interval width: {e}") from None

    def score_one(self, variant: Variant, scorers: Sequence[Any], *, interval_width: int,
                  organism: str) -> pl.DataFrame:
        organism = normalize_organism(organism)
        org = self._check(scorers, organism, interval_width)
        frames = []
        for i in range(0, len(scorers), MAX_SCORERS_PER_REQUEST):
            batch = list(scorers[i:i + MAX_SCORERS_PER_REQUEST])
            if self.decode == "sdk":
                frames.append(self._score_sdk(variant, batch, interval_width, org))
            else:
                frames.append(self._score_fast(variant, batch, interval_width, org))
        return frames[0] if len(frames) == 1 else pl.concat(frames)

    def _score_sdk(self, variant: Variant, scorers, width: int, org) -> pl.DataFrame:
        from alphagenome.models import dna_client
        from alphagenome.models import variant_scorers as vs

        fn = unretried(dna_client.DnaClient.score_variant)
        adatas = fn(self.client, variant.interval(width), variant.to_sdk(), scorers, organism=org,
                    merge_stranded_gene_tracks=self.merge_stranded_gene_tracks)
        if len(adatas) != len(scorers):
            raise BackendCallError("INTERNAL", f"expected {len(scorers)} outputs, got {len(adatas)}")
        tidy = vs.tidy_scores(adatas)
        if tidy is None or len(tidy) == 0:
            return pl.DataFrame(schema=SCORE_COLUMNS)
        tidy = tidy.drop(columns=[c for c in ("variant_id", "scored_interval") if c in tidy.columns])
        df = _pd_to_pl(tidy).rename({k: v for k, v in {
            "variant_scorer": "scorer", "Assay title": "assay", "junction_Start": "junction_start",
            "junction_End": "junction_end"}.items() if k in tidy.columns})
        return conform_scores(df.with_columns(pl.lit(variant.key).alias("variant_key")))

    def _score_fast(self, variant: Variant, scorers, width: int, org) -> pl.DataFrame:
        return self.decode_score_stream(self._request(variant, scorers, width, org), scorers, variant.key)

    def score_answers(self, variant: Variant, scorers: Sequence[Any], *, interval_width: int,
                      organism: str):
        """One attempt at one variant, kept whole and compact (:class:`~agval.scoring.answers.VariantAnswers`):
        no long row is built (``decode="sdk"`` has no compact form: None)."""
        if self.decode != "fast":
            return None
        from agval.scoring.answers import VariantAnswers

        organism = normalize_organism(organism)
        org = self._check(scorers, organism, interval_width)
        parts = []
        for i in range(0, len(scorers), MAX_SCORERS_PER_REQUEST):
            batch = list(scorers[i:i + MAX_SCORERS_PER_REQUEST])
            parts.append(self._answers_fast(variant, batch, interval_width, org))
        if len(parts) == 1:
            return parts[0]
        return VariantAnswers(variant.key, [r for p in parts for r in p.records],
                              {k: v for p in parts for k, v in p.blocks.items()})

    def _request(self, variant: Variant, scorers, width: int, org):
        from alphagenome.protos.v1 import dna_model_service_pb2

        req = dna_model_service_pb2.ScoreVariantRequest(
            interval=variant.interval(width).to_proto(), variant=variant.to_sdk().to_proto(),
            organism=org.to_proto(), variant_scorers=[s.to_proto() for s in scorers],
            model_version=self._model_version.name if self._model_version is not None else None,
            merge_stranded_gene_tracks=self.merge_stranded_gene_tracks)
        if self._streams is not None:
            return iter(self._streams.score_variant(req, metadata=self._metadata, timeout_s=self.deadline_s))
        return self._stub.ScoreVariant(iter([req]), metadata=self._metadata)

    def _answers_fast(self, variant: Variant, scorers, width: int, org):
        return self.decode_answers(self._request(variant, scorers, width, org), scorers, variant.key)

    def decode_score_stream(self, responses, scorers, variant_key: str) -> pl.DataFrame:
        """Decode a ScoreVariant response stream into the long table (tidy semantics)."""
        return self.decode_answers(responses, scorers, variant_key).to_long()

    def decode_answers(self, responses, scorers, variant_key: str):
        """Decode a ScoreVariant response stream into whole answers (bulk: one tensor and
        one gene list per scorer; the track metadata block is converted once and reused)."""
        from alphagenome import tensor_utils

        from agval.scoring.answers import VariantAnswers, answer_row

        rows, blocks = [], {}
        ix = 0
        for resp in responses:
            kind = resp.WhichOneof("payload")
            if kind != "output":
                raise BackendCallError("INTERNAL", f"unexpected {kind!r} message before an output")
            if ix >= len(scorers):
                ix += 1
                continue  # the SDK silently ignores extra outputs too
            vd = resp.output.variant_data
            chunks = read_tensor_chunks(responses, vd.values.chunk_count)
            values = tensor_utils.upcast_floating(tensor_utils.unpack_proto(vd.values, chunks))
            md = vd.metadata
            block = self._track_block(md.track_metadata)
            blocks[block.id] = block
            values = np.asarray(values, dtype=np.float32)
            if values.size and values.ndim != 3:
                raise BackendCallError("INTERNAL", f"scores of shape {values.shape}, expected [2, n_obs, n_tracks]")
            if values.size and values.shape[2] != block.frame.height:
                raise BackendCallError("INTERNAL", f"{values.shape[2]} score columns for {block.frame.height} tracks")
            genes = None
            if md.gene_metadata:
                genes = self._genes(md.gene_metadata)
                if values.size and values.shape[1] != len(genes["gene_id"]):
                    raise BackendCallError("INTERNAL", "score rows do not match the gene metadata")
            elif values.size and values.shape[1] != 1:
                raise BackendCallError("INTERNAL", "scores with several rows but no gene metadata")
            s = scorers[ix]
            rows.append(answer_row(variant_key, scorer_id(s), s.requested_output.name, block, values, genes))
            ix += 1
        if ix < len(scorers):
            raise BackendCallError("INTERNAL", f"expected {len(scorers)} outputs, got {ix}")
        return VariantAnswers(variant_key, rows, blocks)  # plain records: no polars frame in a scoring thread

    _STRANDS = {1: "+", 2: "-", 3: "."}

    def _genes(self, genes) -> dict[str, list]:
        out: dict[str, list] = {c: [] for c in GENE_COLUMNS}
        for g in genes:
            out["gene_id"].append(g.gene_id)  # the version is stripped when rows are built
            if g.HasField("strand"):
                st = self._STRANDS.get(int(g.strand))
                if st is None:
                    raise BackendCallError("INTERNAL", f"gene {g.gene_id} has an unspecified strand")
            else:
                st = None
            out["gene_strand"].append(st)
            out["gene_name"].append(g.name if g.HasField("name") else None)
            out["gene_type"].append(g.type if g.HasField("type") else None)
            out["junction_start"].append(g.junction_start if g.HasField("junction_start") else None)
            out["junction_end"].append(g.junction_end if g.HasField("junction_end") else None)
        return out

    def _track_block(self, track_metadata):
        """Track metadata block -> :class:`TrackBlock` (memoised on the serialized protos)."""
        from agval.scoring.answers import TrackBlock

        raw = b"".join(t.SerializeToString() for t in track_metadata)
        got = self._track_memo.get(raw)
        if got is not None:
            return got
        from alphagenome.models.v1 import track_data_utils
        from alphagenome.protos.v1 import dna_model_pb2

        meta = track_data_utils.metadata_from_proto(dna_model_pb2.TracksMetadata(metadata=track_metadata))
        block = TrackBlock(TrackBlock.make_id(raw), tracks_to_polars(meta).select(list(TRACK_COLUMNS)))
        with self._memo_lock:
            if len(self._track_memo) > 512:
                self._track_memo.clear()
            self._track_memo[raw] = block
        return block

    # -- sequences ------------------------------------------------------------------
    def predict_one(self, sequence: str, *, requested_outputs: Sequence[str], ontology_terms,
                    organism: str) -> list[SequencePrediction]:
        from alphagenome.models import dna_client

        fn = unretried(dna_client.DnaClient.predict_sequence)
        outs = [dna_client.OutputType[o] for o in requested_outputs]
        res = fn(self.client, sequence, organism=dna_client.Organism[normalize_organism(organism)],
                 requested_outputs=outs, ontology_terms=list(ontology_terms) if ontology_terms else None)
        preds = []
        for o in outs:
            td = getattr(res, o.name.lower())
            if td is None:
                raise BackendCallError("INTERNAL", f"no {o.name} in the response")
            if not hasattr(td, "resolution"):
                raise BackendCallError("INVALID_ARGUMENT", f"{o.name} is not a 1-D track output")
            preds.append(SequencePrediction(o.name, np.asarray(td.values, dtype=np.float32),
                                            tracks_to_polars(td.metadata).select(list(TRACK_COLUMNS)),
                                            int(td.resolution)))
        return preds


def is_simulated(backend: AlphaGenomeBackend) -> bool:
    return metadata_is_simulated(backend.output_metadata("HOMO_SAPIENS"))
