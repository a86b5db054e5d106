"""Model fingerprint: what identifies the model behind a backend (``agval model fingerprint``).

Nothing on the AlphaGenome wire names the weights (SERVICES.md section 1.5), so the
fingerprint combines three kinds of evidence:

1. **static**: the SDK version, a sha256 of the proto descriptors
   (``DESCRIPTOR.serialized_pb`` of the DNA model, service, tensor and Atlas protos),
   the ``ModelVersion`` member names and a sha256 of ``RECOMMENDED_VARIANT_SCORERS``;
2. **live metadata**: per organism, the track count and a sha256 of the sorted
   ``output_metadata()`` table (``nonzero_mean`` included: the field most likely to move
   when data or normalisation change);
3. **canary scores**: a small fixed panel of variants scored with a fixed scorer on a
   16 kb interval; raw and quantile scores rounded to 4 significant digits and hashed.
   This is the only signal that catches a silent change of weights.

``digest`` (sha256 over all of the above plus the configured model version name) goes
into every cache key and every run manifest: a different model version, a new stand-in
revision or new weights change it, and the cache misses; the same model hits.

The canary panel must be valid on the genome the backend serves:

* pass ``canary=[Variant, ...]`` (or keys ``"chr1:123:A>G"``) explicitly; or
* pass ``world_dir=`` for the stand-in: the first ``n`` catalogue SNVs (status ``ok``,
  sorted by chromosome and position) of the synthetic world's ``variants.parquet``
  (:func:`canary_panel_from_world`); or
* leave both unset for the real service: :data:`HG38_CANARY` (well-known hg38 SNVs;
  their REF alleles are from dbSNP and could not be re-checked offline).

A canary variant the service refuses is recorded with its error code (the digest then
still changes if the refusal changes). A canary variant that fails with a transient code
(UNAVAILABLE, DEADLINE_EXCEEDED, ...) after its retries is recorded under ``failed`` and
left out of the canary hash: the fingerprint is then ``partial`` (its digest differs from
the full panel's, so the score cache is not shared with it) and the run goes on. Only when
every canary variant fails transiently is the fingerprint an error (:class:`ScoringError`):
nothing then says which model answered.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from agval.coords import Variant

#: Well-known hg38 SNVs: the SDK quickstart's APOL1 example, HBB rs334, SORT1 rs12740374,
#: FTO rs1421085.
HG38_CANARY: tuple[str, ...] = (
    "chr22:36201698:A>C",
    "chr11:5227002:T>A",
    "chr1:109274968:G>T",
    "chr16:53767042:T>C",
)
CANARY_WIDTH = 16_384
CANARY_SCORER = "DNASE"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def static_parts() -> dict[str, Any]:
    """SDK version, proto descriptor hash, ModelVersion names, recommended scorer hash."""
    try:
        sdk = version("alphagenome")
    except PackageNotFoundError:  # pragma: no cover
        sdk = None
    parts: dict[str, Any] = {"sdk_version": sdk}
    try:
        from alphagenome.models import dna_client
        from alphagenome.models import variant_scorers as vs
        from alphagenome.protos import atlas_service_pb2, tensor_pb2
        from alphagenome.protos.v1 import dna_model_pb2, dna_model_service_pb2

        h = hashlib.sha256()
        for mod in (dna_model_pb2, dna_model_service_pb2, tensor_pb2, atlas_service_pb2):
            h.update(mod.DESCRIPTOR.name.encode() + b"\0" + mod.DESCRIPTOR.serialized_pb)
        parts["proto_sha256"] = h.hexdigest()
        parts["model_versions"] = [m.name for m in dna_client.ModelVersion]
        rec = "\n".join(f"{k}={v!r}" for k, v in sorted(vs.RECOMMENDED_VARIANT_SCORERS.items()))
        parts["recommended_scorers_sha256"] = _sha(rec.encode())
    except Exception as e:  # pragma: no cover - SDK absent
        parts["sdk_error"] = repr(e)
    return parts


def metadata_digest(meta: pl.DataFrame | None) -> dict[str, Any]:
    """Track count and sha256 of the sorted metadata table (as CSV)."""
    if meta is None:
        return {"n_tracks": None, "sha256": None}
    cols = sorted(meta.columns)
    df = meta.select(cols).with_columns(pl.all().cast(pl.String)).sort(cols, nulls_last=True)
    return {"n_tracks": meta.height, "sha256": _sha(df.write_csv().encode())}


def canary_panel_from_world(world_dir: str | Path, n: int = 4) -> list[Variant]:
    """The first ``n`` SNVs (status ok) of a synthetic world's catalogue, by position."""
    df = pl.read_parquet(Path(world_dir) / "variants.parquet")
    if "kind" in df.columns:
        df = df.filter(pl.col("kind") == "snv")
    if "status" in df.columns:
        df = df.filter(pl.col("status") == "ok")
    df = df.filter((pl.col("ref").str.len_chars() == 1) & (pl.col("alt").str.len_chars() == 1))
    df = df.unique(["chrom", "pos", "ref", "alt"]).sort(["chrom", "pos", "ref", "alt"]).head(n)
    return [Variant(r["chrom"], int(r["pos"]), r["ref"], r["alt"]) for r in df.iter_rows(named=True)]


def _panel(canary, world_dir, n) -> list[Variant]:
    if canary is not None:
        return [v if isinstance(v, Variant) else Variant.parse(str(v)) for v in canary]
    if world_dir is not None:
        return canary_panel_from_world(world_dir, n)
    return [Variant.parse(k) for k in HG38_CANARY]


def _round(x: float | None) -> float | None:
    if x is None or x != x:
        return None
    return float(f"{x:.4g}")


def canary_scores(backend, panel: Sequence[Variant], *, scorer: Any = CANARY_SCORER,
                  organism: str = "HOMO_SAPIENS", interval_width: int = CANARY_WIDTH,
                  policy=None) -> dict[str, Any]:
    """Score the canary panel; rounded scores, errors and their digest."""
    from agval.errors import ScoringError
    from agval.scoring.backend import (TRANSIENT_CODES, RetryPolicy, call_with_retries, resolve_scorers,
                                       scorer_id)

    scorers = resolve_scorers([scorer])
    policy = policy or RetryPolicy(max_attempts=4, initial_backoff=0.5)
    rows: list[list] = []
    errors: dict[str, str] = {}
    failed: dict[str, str] = {}
    for v in panel:
        out = call_with_retries(lambda v=v: backend.score_one(v, scorers, interval_width=interval_width,
                                                              organism=organism), policy=policy)
        if out.error is not None:
            code = out.error[0]
            if code in TRANSIENT_CODES:  # an outage is not evidence about the model: left out of the hash
                failed[v.key] = code
                continue
            errors[v.key] = code
            continue
        df = out.value.sort(["scorer", "track_name", "track_strand", "gene_id"], nulls_last=True)
        for r in df.select("variant_key", "scorer", "track_name", "track_strand", "gene_id",
                           "raw_score", "quantile_score").iter_rows():
            rows.append([r[0], r[1], r[2], r[3], r[4], _round(r[5]), _round(r[6])])
    if panel and len(failed) == len(panel):
        codes = ", ".join(sorted(set(failed.values())))
        raise ScoringError(f"the model fingerprint could not be computed: every canary variant failed "
                           f"({len(panel)} variants, {codes}); the service looks unavailable: retry later",
                           hint="retry later, or check the backend address and its quota")
    used = [v.key for v in panel if v.key not in failed]
    body = {"variants": used, "scorer": scorer_id(scorers[0]),
            "interval_width": interval_width, "rows": rows, "errors": errors}
    out = {"variants": [v.key for v in panel], "scorer": body["scorer"], "interval_width": interval_width,
           "n_scores": len(rows), "errors": errors, "sha256": _sha(_canon(body)),
           "scores": rows}
    if failed:
        out["failed"] = failed
        out["partial"] = True
    return out


def compute_fingerprint(backend, *, canary: Sequence[Variant | str] | None = None,
                        world_dir: str | Path | None = None, n_canary: int = 4,
                        organism: str = "HOMO_SAPIENS", canary_scorer: Any = CANARY_SCORER,
                        include_canary: bool = True) -> dict[str, Any]:
    """The fingerprint of ``backend`` (a dict; ``digest`` identifies the model)."""
    from agval.scoring.backend import normalize_organism

    organism = normalize_organism(organism)
    fp: dict[str, Any] = {
        "backend": backend.name,
        "model_version": backend.model_version_name,
        **static_parts(),
    }
    fp["metadata"] = {organism: metadata_digest(backend.output_metadata(organism))}
    if include_canary:
        panel = _panel(canary, world_dir, n_canary)
        fp["canary"] = canary_scores(backend, panel, scorer=canary_scorer, organism=organism)
    fp["digest"] = fingerprint_digest(fp)
    return fp


def fingerprint_digest(fp: dict[str, Any]) -> str:
    parts = {k: fp.get(k) for k in ("backend", "model_version", "sdk_version", "proto_sha256",
                                     "model_versions", "recommended_scorers_sha256")}
    parts["metadata"] = {o: m.get("sha256") for o, m in (fp.get("metadata") or {}).items()}
    canary = fp.get("canary")
    parts["canary"] = canary.get("sha256") if canary else None
    for k in ("table_sha256", "extra"):
        if k in fp:
            parts[k] = fp[k]
    return _sha(_canon(parts))


def summarize(fp: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint without the canary's score rows (for manifests and logs)."""
    out = dict(fp)
    if "canary" in out and out["canary"]:
        out["canary"] = {k: v for k, v in out["canary"].items() if k != "scores"}
    return out


def compare(a: dict[str, Any], b: dict[str, Any], *, tol: float = 1e-3) -> dict[str, Any]:
    """Which parts differ between two fingerprints; canary scores within ``tol`` count as equal."""
    diff: dict[str, Any] = {}
    for k in ("model_version", "sdk_version", "proto_sha256", "model_versions", "recommended_scorers_sha256"):
        if a.get(k) != b.get(k):
            diff[k] = (a.get(k), b.get(k))
    if (a.get("metadata") or {}) != (b.get("metadata") or {}):
        diff["metadata"] = True
    ca, cb = a.get("canary") or {}, b.get("canary") or {}
    if ca.get("sha256") != cb.get("sha256"):
        sa = {tuple(r[:5]): r[5] for r in ca.get("scores", [])}
        sb = {tuple(r[:5]): r[5] for r in cb.get("scores", [])}
        skipped = set(ca.get("failed") or {}) | set(cb.get("failed") or {})  # transient failures prove nothing
        if skipped:
            sa = {k: v for k, v in sa.items() if k[0] not in skipped}
            sb = {k: v for k, v in sb.items() if k[0] not in skipped}
        if set(sa) != set(sb) or ca.get("errors") != cb.get("errors"):
            diff["canary"] = "different rows or errors"
        else:
            worst = max((abs((sa[k] or 0) - (sb[k] or 0)) for k in sa), default=0.0)
            if worst > tol:
                diff["canary"] = f"max |diff| {worst:.3g} > {tol}"
    return diff
