"""myvariant.info client on httpx: rsIDs -> all hg38 allele records.

What it does (facts in ``../shared/docs/SERVICES.md`` part 2):

* ``POST {base_url}/v1/query`` form-encoded: ``q=<comma-joined rsIDs>``,
  ``scopes=dbsnp.rsid``, ``assembly=hg38``, explicit hg38 ``fields`` (:data:`HG38_FIELDS`)
  and ``size`` (hits per term; default 1000, the service maximum);
* at most ``batch_size`` (<= 1000) ids per request, sequential, with a polite pace
  (default one request per second; ``pace=0`` in tests and against the stand-in);
* results are matched to ids by ``query``, never by position, and **all** hits are kept
  (one per ALT allele for multi-allelic rsIDs); every id of a batch must come back
  (a hit or ``notfound``), otherwise :class:`MyVariantError`;
* retries on HTTP 429 and 5xx and on transport errors/timeouts, with exponential backoff
  plus jitter, never shorter than the server's ``Retry-After``; other 4xx (e.g. 400 for
  more than 1000 ids) are not retried and raise :class:`MyVariantError` with the body;
  a batch that still fails after ``max_retries`` raises too - nothing is dropped silently;
* ``data_version()`` reads ``GET /v1/metadata?assembly=hg38`` (dbSNP source version and
  build version) so the cache notices a new release.

Coordinates are taken only from the requested assembly's fields: a document without an
``hg38`` / ``dbsnp.hg38`` block (an hg19-only record, or the hg19 index when
``assembly`` was forgotten) gets ``status='no_hg38'`` and null ``chrom``/``pos``, even
when its ``_id`` or ``vcf`` carry another build's position (pitfall P8). REF/ALT/POS come
from ``vcf.{position,ref,alt}`` (VCF-anchored; ``position`` is a string); an SNV without
``vcf`` falls back to ``dbsnp.hg38.start`` + ``dbsnp.ref/alt``.

Output: the lookup table documented in :mod:`agval.alleles` (``source='myvariant'``).
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
from typing import Any, Callable, Iterable

import httpx
import polars as pl

from agval.alleles import LOOKUP_COLUMNS, Progress, conform_lookup
from agval.coords import normalize_chrom
from agval.errors import AgvalError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://myvariant.info"
BASE_URL_ENV = "AGVAL_MYVARIANT_URL"
MAX_IDS_PER_REQUEST = 1000
HG38_FIELDS = ("_id", "chrom", "dbsnp.rsid", "dbsnp.ref", "dbsnp.alt", "dbsnp.chrom", "dbsnp.hg38",
               "dbsnp.vartype", "dbsnp.alleles", "hg38", "vcf")
MERGE_SCOPE = "dbsnp.dbsnp_merges.merged_rsid"
_FREQ_PREFERENCE = ("GnomAD", "gnomAD", "GnomAD_exomes", "TOPMED", "1000Genomes", "ALSPAC", "TWINSUK")


class MyVariantError(AgvalError):
    """myvariant.info answered with an error that retries did not (or must not) fix."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None):
        self.status = status
        self.body = body
        super().__init__(message)


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _alt_freq(dbsnp: dict | None, alt: str | None) -> float | None:
    """ALT frequency from ``dbsnp.alleles`` (current ``{allele, <study>: f}`` or legacy ``{allele, freq}``)."""
    alleles = _get(dbsnp, "alleles")
    if not isinstance(alleles, list) or alt is None:
        return None
    for a in alleles:
        if not isinstance(a, dict) or a.get("allele") != alt:
            continue
        f = a.get("freq")
        if isinstance(f, (int, float)):
            return float(f)
        studies = f if isinstance(f, dict) else {k: v for k, v in a.items() if k not in ("allele", "freq")}
        for k in _FREQ_PREFERENCE:
            if isinstance(studies.get(k), (int, float)):
                return float(studies[k])
        for v in studies.values():
            if isinstance(v, (int, float)):
                return float(v)
    return None


def _spdi_alt(ref: str, alt: str) -> str:
    if (len(ref) > 1 or len(alt) > 1) and ref[:1] == alt[:1]:
        return alt[1:]
    return alt


def _hit_row(item: dict, assembly: str, source: str, source_version: str | None) -> dict[str, Any]:
    query = str(item.get("query")).strip()
    row: dict[str, Any] = {"query": query.lower(), "rsid": None, "chrom": None, "pos": None, "ref": None,
                           "alt": None, "af": None, "source": source, "source_version": source_version,
                           "assembly": assembly, "hgvs_id": None, "status": "notfound"}
    if item.get("notfound"):
        return row
    db = item.get("dbsnp")
    if isinstance(db, list):  # several source records merged into one _id: prefer the queried rsID
        db = next((d for d in db if isinstance(d, dict) and str(d.get("rsid", "")).lower() == row["query"]),
                  db[0] if db else None)
    rsid = _get(db, "rsid")
    row["rsid"] = str(rsid).lower() if rsid else None
    row["hgvs_id"] = item.get("_id")
    chrom = item.get("chrom") or _get(db, "chrom")
    if chrom is None and isinstance(item.get("_id"), str) and ":" in item["_id"]:
        chrom = item["_id"].split(":", 1)[0]
    has_build = isinstance(item.get(assembly), dict) or isinstance(_get(db, assembly), dict)
    vcf = item.get("vcf")
    if isinstance(vcf, list):
        vcf = vcf[0] if vcf else None
    pos = ref = alt = None
    if has_build and isinstance(vcf, dict) and str(vcf.get("position") or "").strip():
        pos, ref, alt = int(str(vcf["position"]).strip()), vcf.get("ref"), vcf.get("alt")
    elif has_build:
        start = _get(item, assembly, "start") or _get(db, assembly, "start")
        ref, alt = _get(db, "ref"), _get(db, "alt")
        if start is not None:
            pos = int(start)
    else:
        ref, alt = _get(db, "ref"), _get(db, "alt")
    row["ref"] = str(ref).upper() if ref not in (None, "") else None
    row["alt"] = str(alt).upper() if alt not in (None, "") else None
    if has_build and pos is not None and chrom is not None:
        row["chrom"], row["pos"] = normalize_chrom(chrom), pos
        row["status"] = "merged" if row["rsid"] and row["rsid"] != row["query"] else "ok"
    else:
        row["status"] = "no_hg38"
    if row["ref"] and row["alt"]:
        row["af"] = _alt_freq(db, _spdi_alt(row["ref"], row["alt"]))
        if row["af"] is None:
            row["af"] = _alt_freq(db, row["alt"])
    return row


def parse_query_response(items: list[dict] | dict, *, assembly: str = "hg38", source: str = "myvariant",
                         source_version: str | None = None) -> pl.DataFrame:
    """Turn a ``POST /v1/query`` (or ``/v1/variant``) JSON list into a lookup table.

    Every element becomes one row (hits and ``notfound`` alike), in response order.
    """
    if isinstance(items, dict):
        items = [items]
    rows = [_hit_row(it, assembly, source, source_version) for it in items if isinstance(it, dict)]
    return conform_lookup(pl.DataFrame(rows, schema=LOOKUP_COLUMNS)) if rows else conform_lookup(
        pl.DataFrame(schema=LOOKUP_COLUMNS))


def _retry_after(resp: httpx.Response) -> float | None:
    v = resp.headers.get("Retry-After")
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(v)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text[:500]


class MyVariantClient:
    """Sequential, paced, retrying myvariant.info client (see the module docstring).

    ``sleep``/``clock`` are injectable so tests run instantly; ``transport`` lets tests use
    ``httpx.MockTransport``. Counters: ``requests_made`` (HTTP attempts, retries included),
    ``retries``, ``sleeps`` (seconds slept for backoff).
    """

    name = "myvariant"

    def __init__(self, base_url: str | None = None, *, batch_size: int = MAX_IDS_PER_REQUEST,
                 pace: float = 1.0, timeout: float = 30.0, max_retries: int = 6, backoff: float = 1.0,
                 max_backoff: float = 120.0, size: int = 1000, assembly: str = "hg38",
                 fields: Iterable[str] = HG38_FIELDS, resolve_merged: bool = False,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 seed: int | None = None, transport: httpx.BaseTransport | None = None,
                 version_ttl: float = 3600.0, user_agent: str = "agval (+https://github.com/agval)"):
        if not 1 <= batch_size <= MAX_IDS_PER_REQUEST:
            raise ValueError(f"batch_size must be 1..{MAX_IDS_PER_REQUEST} (the service limit), not {batch_size}")
        if not 1 <= size <= 1000:
            raise ValueError("size must be 1..1000")
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.batch_size = batch_size
        self.pace = float(pace)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.size = size
        self.assembly = assembly
        self.fields = ",".join(fields)
        self.resolve_merged = resolve_merged
        self.version_ttl = version_ttl  # how long lookup_rsids trusts a remembered data version
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random(seed)
        self._last_start: float | None = None
        self.requests_made = 0
        self.retries = 0
        self.sleeps = 0.0
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), transport=transport,
                                  headers={"User-Agent": user_agent, "Accept": "application/json"})

    # -- plumbing -----------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "MyVariantClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def identity(self) -> str:
        return self.base_url

    def _wait_pace(self) -> None:
        if self.pace > 0 and self._last_start is not None:
            wait = self._last_start + self.pace - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_start = self._clock()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** attempt))
        jittered = base * (0.5 + 0.5 * self._rng.random())
        if retry_after is not None:
            return min(max(retry_after, jittered), max(self.max_backoff, retry_after))
        return jittered

    def _request(self, method: str, path: str, *, what: str, **kw) -> Any:
        url = f"{self.base_url}{path}"
        last: str = ""
        for attempt in range(self.max_retries + 1):
            self._wait_pace()
            self.requests_made += 1
            retry_after = None
            try:
                resp = self._http.request(method, url, **kw)
            except httpx.TransportError as e:  # timeouts, refused connections, resets
                last = f"{type(e).__name__}: {e}"
            else:
                if resp.status_code == 200:
                    try:
                        return resp.json()
                    except ValueError:
                        last = f"HTTP 200 with a body that is not JSON: {resp.text[:200]!r}"
                elif resp.status_code == 429 or resp.status_code >= 500:
                    retry_after = _retry_after(resp)
                    last = f"HTTP {resp.status_code}: {_body(resp)}"
                else:
                    body = _body(resp)
                    raise MyVariantError(
                        f"myvariant.info refused {what}: HTTP {resp.status_code} {body} ({method} {url}); "
                        "a client error, not retried", status=resp.status_code, body=body)
            if attempt == self.max_retries:
                break
            d = self._delay(attempt, retry_after)
            self.retries += 1
            self.sleeps += d
            log.warning("myvariant %s failed (%s); retry %d/%d in %.1f s", what, last, attempt + 1,
                        self.max_retries, d)
            self._sleep(d)
        raise MyVariantError(f"myvariant.info: {what} still failing after {self.max_retries + 1} attempts "
                             f"({last}); no result was dropped - rerun to resume from the cache")

    # -- API --------------------------------------------------------------------------------
    def metadata(self) -> dict:
        return self._request("GET", "/v1/metadata", what="metadata", params={"assembly": self.assembly})

    def data_version(self) -> str:
        md = self.metadata()
        src = _get(md, "src", "dbsnp", "version")
        build = md.get("build_version") if isinstance(md, dict) else None
        return f"dbsnp={src};build={build}"

    def query_batch(self, rsids: list[str], *, scopes: str = "dbsnp.rsid") -> list[dict]:
        """One ``POST /v1/query`` for at most ``batch_size`` ids; the raw JSON list."""
        if len(rsids) > self.batch_size:
            raise ValueError(f"{len(rsids)} ids in one request; at most {self.batch_size}")
        data = {"q": ",".join(rsids), "scopes": scopes, "fields": self.fields,
                "assembly": self.assembly, "size": str(self.size)}
        what = f"a query of {len(rsids)} ids ({rsids[0]}..{rsids[-1]})" if rsids else "an empty query"
        out = self._request("POST", "/v1/query", what=what, data=data)
        if not isinstance(out, list):
            raise MyVariantError(f"myvariant.info: {what} returned {type(out).__name__}, expected a list", body=out)
        return out

    def _check_complete(self, batch: list[str], items: list[dict]) -> None:
        seen: dict[str, int] = {}
        for it in items:
            if isinstance(it, dict):
                q = str(it.get("query", "")).strip().lower()
                seen[q] = seen.get(q, 0) + 1
        missing = [r for r in batch if r not in seen]
        if missing:
            raise MyVariantError(f"myvariant.info response lacks {len(missing)} of {len(batch)} queried ids "
                                 f"(e.g. {missing[:3]}); refusing to lose them")
        full = [q for q, n in seen.items() if n >= self.size]
        if full:
            log.warning("myvariant: %d ids returned size=%d hits (maybe truncated), e.g. %s", len(full),
                        self.size, full[:3])

    def lookup(self, rsids: list[str], *, progress: Progress | None = None,
               source_version: str | None = None) -> pl.DataFrame:
        """Look up normalised rsIDs (duplicates are asked once); the lookup table."""
        ids = list(dict.fromkeys(r.lower() for r in rsids))
        parts: list[pl.DataFrame] = []
        for i in range(0, len(ids), self.batch_size):
            batch = ids[i:i + self.batch_size]
            items = self.query_batch(batch)
            self._check_complete(batch, items)
            parts.append(parse_query_response(items, assembly=self.assembly, source=self.name,
                                              source_version=source_version))
            if progress:
                progress(min(i + len(batch), len(ids)), len(ids))
        df = pl.concat(parts) if parts else pl.DataFrame(schema=LOOKUP_COLUMNS)
        if self.resolve_merged and df.height:
            df = self._resolve_merged(df, source_version)
        return df

    def _resolve_merged(self, df: pl.DataFrame, source_version: str | None) -> pl.DataFrame:
        """Ask the merge-history scope for ids that were not found (one extra pass)."""
        missing = df.filter(pl.col("status") == "notfound")["query"].to_list()
        if not missing:
            return df
        found: list[pl.DataFrame] = []
        for i in range(0, len(missing), self.batch_size):
            batch = missing[i:i + self.batch_size]
            try:
                items = self.query_batch(batch, scopes=MERGE_SCOPE)
            except MyVariantError as e:
                if e.status is not None and 400 <= e.status < 500:
                    log.warning("myvariant: merged-rsID scope not supported (%s); ids stay notfound", e)
                    return df
                raise
            part = parse_query_response(items, assembly=self.assembly, source=self.name,
                                        source_version=source_version)
            found.append(part.filter(pl.col("status") != "notfound").with_columns(
                status=pl.when(pl.col("status") == "ok").then(pl.lit("merged")).otherwise(pl.col("status"))))
        hits = pl.concat(found) if found else pl.DataFrame(schema=LOOKUP_COLUMNS)
        resolved = set(hits["query"].to_list())
        keep = df.filter(~((pl.col("status") == "notfound") & pl.col("query").is_in(list(resolved))))
        return pl.concat([keep, hits])
