"""Stand-in myvariant.info HTTP service (SIMULATED), serving a world's ``variants.parquet``.

Endpoints (shapes follow ``../shared/docs/SERVICES.md`` part 2 and the real example
responses in ``../shared/data/myvariant/``):

* ``POST /v1/query`` (form or JSON): ``q`` (terms separated by comma, ``+`` or
  whitespace), ``scopes``, ``fields``, ``assembly`` (``hg19`` default, as the real
  service, or ``hg38``), ``size`` (hits per term, default 10, max 1000). Returns a
  **flat list**: one element per hit ``{"query": term, "_id", "_score", ...fields}``,
  one per ALT allele for multi-allelic rsIDs, and ``{"query": term, "notfound": true}``
  for a term without hits. More than 1000 terms, or ``size`` > 1000: HTTP 400 with the
  real body (``{"code": 400, "success": false, "error": "Bad Request", "keyword", "max",
  "size", ...}``).
* ``POST /v1/variant`` with ``ids`` (HGVS ``_id`` or rsIDs, which the real router sends
  to ``dbsnp.rsid``); same list shape; more than 1000 ids: 400 (keyword ``id``, alias ``ids``).
* ``GET /v1/variant/<id>``: one record (a list when an rsID has several), or 404
  ``{"success": false, "error": "ID '<id>' not found"}``.
* ``GET /v1/metadata``: ``build_version``, ``build_date`` and ``src.dbsnp.version``
  (the data version a cache keys on), ``stats.total``, and the SIMULATED label.

Documents with ``assembly=hg38``: ``_id`` is hg38 HGVS (``chr1:g.123A>G``,
``chr1:g.124_125del``, ``chr1:g.123_124insAT``, ``chr1:g.123_125delinsT``); ``chrom`` and
``dbsnp.chrom`` have no ``chr`` prefix; coordinates in ``dbsnp.hg38.{start,end}`` and
``hg38.{start,end}`` (HGVS span); ``vcf.position`` is a **string** with VCF-anchored
``vcf.ref``/``vcf.alt``; ``dbsnp.ref``/``dbsnp.alt`` are SPDI-trimmed (``""`` for the
missing side of an indel), as myvariant's dbSNP parser stores them; ``dbsnp.alleles`` lists
each allele with a frequency. With ``assembly=hg19`` the same fields are named
``hg19``/``dbsnp.hg19`` and carry the world's synthetic ``hg19_pos``.

Catalogue statuses:

* ``no_hg38``: the rsID exists but has no GRCh38 placement. Its record carries only hg19
  fields (``_id`` is the hg19 HGVS, ``dbsnp.hg19``, ``hg19``) and **no** ``hg38``,
  ``dbsnp.hg38`` or ``vcf`` - the trap of pitfall P8: a client must not use it on hg38.
* ``merged`` (a retired rsID, ``merged_into`` the current one). **Choice, following the
  real service:** dbSNP merges are stored in the *current* record as
  ``dbsnp.dbsnp_merges = [{"merged_rsid", "revision", "merge_date"}]`` (myvariant's
  dbSNP parser); the ``dbsnp.rsid`` scope matches current rsIDs only, so a retired rsID
  queried with ``scopes=dbsnp.rsid`` is ``notfound``. With the scope
  ``dbsnp.dbsnp_merges.merged_rsid`` the retired id finds the current record(s), whose
  ``dbsnp.rsid`` differs from ``query`` (on the real service that field may not be
  indexed; the client only uses it on request).

Faults (:class:`MyVariantConfig`, mutable on a running server via ``handle.config``):
``fail_first_n`` data requests answered with ``fail_status`` (429 or 5xx), every
``fail_every_k``-th data request likewise, ``Retry-After`` on those answers, added latency,
and a per-request ``x-fake-status: 503`` header. Data requests are the ``/v1/query`` and
``/v1/variant`` ones; ``/v1/metadata`` never fails.

``handle.requests`` logs every request as :class:`RequestRecord` ``(method, path, n_ids,
status, t)`` (``t`` in seconds since the server started).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import polars as pl

from agval.errors import ConfigError
from standins import SIMULATED_DATA_SOURCE

MAX_IDS = 1000
MAX_SIZE = 1000
DEFAULT_SIZE = 10
_SPLIT = re.compile(r"[,+\s]+")
_RSID_SCOPE = "dbsnp.rsid"
_MERGE_SCOPE = "dbsnp.dbsnp_merges.merged_rsid"


@dataclass
class MyVariantConfig:
    fail_first_n: int = 0            # the first N data requests fail with fail_status
    fail_status: int = 503           # 429, 500, 502, 503, 504 ...
    fail_every_k: int = 0            # additionally every k-th data request fails (0 = off)
    retry_after: float | None = 1.0  # Retry-After seconds sent with injected failures
    latency_ms: float = 0.0          # added to every data request
    data_version: str | None = None  # override the dbSNP version reported by /v1/metadata
    max_ids: int = MAX_IDS


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    n_ids: int
    status: int
    t: float


def _hgvs(chrom_bare: str, pos: int, ref: str, alt: str) -> tuple[str, int, int, str]:
    """myvariant-style HGVS id, HGVS span (start, end) and vartype from VCF alleles."""
    c = f"chr{chrom_bare}"
    if len(ref) == 1 and len(alt) == 1:
        return f"{c}:g.{pos}{ref}>{alt}", pos, pos, "snv"
    if len(alt) == 1 and ref[0] == alt[0]:  # deletion after the anchor base
        s, e = pos + 1, pos + len(ref) - 1
        return (f"{c}:g.{s}del" if s == e else f"{c}:g.{s}_{e}del"), s, e, "del"
    if len(ref) == 1 and alt[0] == ref[0]:  # insertion after the anchor base
        return f"{c}:g.{pos}_{pos + 1}ins{alt[1:]}", pos, pos + 1, "ins"
    e = pos + len(ref) - 1
    return (f"{c}:g.{pos}delins{alt}" if e == pos else f"{c}:g.{pos}_{e}delins{alt}"), pos, e, "delins"


def _spdi(ref: str, alt: str) -> tuple[str, str]:
    """dbSNP/SPDI-style alleles: the shared anchor base of an indel is dropped."""
    if (len(ref) > 1 or len(alt) > 1) and ref[0] == alt[0]:
        return ref[1:], alt[1:]
    return ref, alt


class Catalogue:
    """Index of a world's variants.parquet by rsID (current and retired) and by HGVS id."""

    def __init__(self, path: Path):
        df = pl.read_parquet(path)
        need = ["rsid", "chrom", "pos", "ref", "alt", "af", "status", "merged_into", "hg19_chrom", "hg19_pos"]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise ConfigError(f"{path}: not a variants.parquet of the agval-world format (missing {missing})")
        self.n_rows = df.height
        self.digest = hashlib.sha256(path.read_bytes()).hexdigest()
        self.cols = {c: df[c].to_list() for c in need}
        self.by_rsid: dict[str, list[int]] = {}     # current rsIDs (status ok / no_hg38)
        self.retired: dict[str, list[int]] = {}     # retired rsID -> its own rows
        self.merges_of: dict[str, list[str]] = {}   # current rsID -> retired rsIDs merged into it
        for i, (rs, st, into) in enumerate(zip(self.cols["rsid"], self.cols["status"], self.cols["merged_into"])):
            rs = rs.lower()
            if st == "merged":
                self.retired.setdefault(rs, []).append(i)
                if into:
                    lst = self.merges_of.setdefault(into.lower(), [])
                    if rs not in lst:
                        lst.append(rs)
            else:
                self.by_rsid.setdefault(rs, []).append(i)
        self._hgvs: dict[str, dict[str, list[int]]] = {}
        self._lock = threading.Lock()

    # -- documents ---------------------------------------------------------------------
    def doc(self, i: int, assembly: str, *, rsid: str | None = None) -> dict[str, Any] | None:
        """The full document of row ``i`` in the ``assembly`` index (None if absent there)."""
        c = self.cols
        status = c["status"][i]
        ref, alt = c["ref"][i], c["alt"][i]
        rsid = rsid or c["rsid"][i]
        if assembly == "hg38" and status != "no_hg38" and c["pos"][i] is not None:
            chrom, pos, other = c["chrom"][i], int(c["pos"][i]), None
        else:  # hg19 index, or an rsID without a GRCh38 placement (hg19 fields only)
            if c["hg19_pos"][i] is None:
                return None
            chrom, pos = c["hg19_chrom"][i], int(c["hg19_pos"][i])
            other = "hg19"
        bare = str(chrom).removeprefix("chr")
        _id, start, end, vartype = _hgvs(bare, pos, ref, alt)
        s_ref, s_alt = _spdi(ref, alt)
        af = c["af"][i]
        asm = "hg38" if other is None else "hg19"
        dbsnp: dict[str, Any] = {"rsid": rsid, "ref": s_ref, "alt": s_alt, "chrom": bare,
                                 asm: {"start": start, "end": end}, "vartype": vartype,
                                 "dbsnp_build": 156}
        if af is not None:  # every allele of the site, as dbSNP's allele annotations
            site = [j for j in self.by_rsid.get(c["rsid"][i].lower(), [i])
                    if c["pos"][j] == c["pos"][i] and c["ref"][j] == ref and c["af"][j] is not None] or [i]
            alleles = [{"allele": s_ref, "1000Genomes": round(max(0.0, 1 - sum(float(c["af"][j]) for j in site)), 4)}]
            alleles += [{"allele": _spdi(ref, c["alt"][j])[1], "1000Genomes": round(float(c["af"][j]), 4)}
                        for j in site]
            dbsnp["alleles"] = alleles
        merges = self.merges_of.get(rsid.lower())
        if merges:
            dbsnp["dbsnp_merges"] = [{"merged_rsid": m, "revision": "151", "merge_date": "2017-11-09T00:00Z"}
                                     for m in merges]
        doc: dict[str, Any] = {"_id": _id, "_score": 17.5, "chrom": bare, "dbsnp": dbsnp,
                               asm: {"start": start, "end": end}}
        if (assembly == "hg38" and other is None) or assembly == "hg19":
            doc["vcf"] = {"position": str(pos), "ref": ref, "alt": alt}
        return doc

    def rows_for_term(self, term: str, scopes: list[str]) -> list[tuple[int, str]]:
        """(row, rsid to report) pairs matching ``term`` in ``scopes``."""
        t = term.lower()
        out: list[tuple[int, str]] = []
        if _RSID_SCOPE in scopes or "_id" in scopes and t.startswith("rs"):
            out += [(i, self.cols["rsid"][i]) for i in self.by_rsid.get(t, [])]
        if _MERGE_SCOPE in scopes and t in self.retired:
            target = self.cols["merged_into"][self.retired[t][0]]
            rows = self.by_rsid.get((target or "").lower())
            if rows:
                out += [(i, self.cols["rsid"][i]) for i in rows]
            else:  # the current record is not in the catalogue: serve the site under its new id
                out += [(i, target or self.cols["rsid"][i]) for i in self.retired[t]]
        return out

    def rows_for_hgvs(self, hgvs: str, assembly: str) -> list[int]:
        with self._lock:
            idx = self._hgvs.get(assembly)
            if idx is None:
                idx = {}
                for i in range(self.n_rows):
                    if self.cols["status"][i] == "merged":
                        continue
                    d = self.doc(i, assembly)
                    if d is not None and (assembly == "hg19" or "hg38" in d):
                        idx.setdefault(d["_id"].lower(), []).append(i)
                self._hgvs[assembly] = idx
        return idx.get(hgvs.lower(), [])


def _project(doc: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """Keep only the requested dotted ``fields`` (subtrees), as biothings does."""
    if not fields or "all" in fields:
        return dict(doc)
    out: dict[str, Any] = {"_id": doc["_id"], "_score": doc["_score"]}
    for f in fields:
        parts = f.split(".")
        src: Any = doc
        for p in parts:
            if isinstance(src, dict) and p in src:
                src = src[p]
            else:
                src = None
                break
        if src is None:
            continue
        dst = out
        for p in parts[:-1]:
            dst = dst.setdefault(p, {})
            if not isinstance(dst, dict):
                break
        else:
            dst[parts[-1]] = src
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use must fail loudly

    def __init__(self, addr, handler, catalogue: Catalogue, config: MyVariantConfig):
        super().__init__(addr, handler)
        self.catalogue = catalogue
        self.config = config
        self.requests: list[RequestRecord] = []
        self.log_lock = threading.Lock()
        self.n_data = 0
        self.t0 = time.monotonic()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall)
    wbufsize = 1 << 16

    def log_message(self, *args):  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------------
    def _send(self, status: int, obj: Any, n_ids: int, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        with self.server.log_lock:
            self.server.requests.append(RequestRecord(self.command, urlsplit(self.path).path, n_ids, status,
                                                      round(time.monotonic() - self.server.t0, 6)))

    def _params(self) -> dict[str, Any]:
        url = urlsplit(self.path)
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            raw = self.rfile.read(n)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype == "application/json":
                body = json.loads(raw or b"{}")
                params.update(body if isinstance(body, dict) else {})
            else:
                params.update({k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()})
        return params

    def _fault(self) -> int | None:
        cfg = self.server.config
        forced = self.headers.get("x-fake-status")
        with self.server.log_lock:
            self.server.n_data += 1
            k = self.server.n_data
        if cfg.latency_ms:
            time.sleep(cfg.latency_ms / 1000)
        if forced:
            return int(forced)
        if k <= cfg.fail_first_n or (cfg.fail_every_k and k % cfg.fail_every_k == 0):
            return cfg.fail_status
        return None

    def _fail(self, status: int, n_ids: int) -> None:
        cfg = self.server.config
        headers = {"Retry-After": f"{cfg.retry_after:g}"} if cfg.retry_after is not None else {}
        if status == 429:
            body = {"code": 429, "success": False, "error": "Too Many Requests"}
        else:
            body = {"code": status, "success": False, "error": "Service Unavailable (injected by the stand-in)"}
        self._send(status, body, n_ids, headers)

    @staticmethod
    def _terms(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return [t for t in _SPLIT.split(str(value)) if t]

    # -- endpoints -------------------------------------------------------------------------
    def do_GET(self):  # noqa: N802
        path = urlsplit(self.path).path.rstrip("/")
        params = self._params()
        cat = self.server.catalogue
        if path == "/v1/metadata":
            version = self.server.config.data_version or f"156-standin-{cat.digest[:10]}"
            self._send(200, {
                "biothing_type": "variant", "build_date": "2024-01-01T00:00:00",
                "build_version": version, "src": {"dbsnp": {"version": version, "stats": {"dbsnp": cat.n_rows}}},
                "stats": {"total": cat.n_rows}, "genome_assembly": params.get("assembly", "hg19"),
                "data_source": SIMULATED_DATA_SOURCE, "simulated": True}, 0)
            return
        if path.startswith("/v1/variant/"):
            vid = unquote(path[len("/v1/variant/"):])
            failed = self._fault()
            if failed:
                self._fail(failed, 1)
                return
            assembly = params.get("assembly", "hg19")
            fields = [f for f in _SPLIT.split(params.get("fields", "")) if f] or None
            docs = self._lookup(vid, [_RSID_SCOPE] if vid.lower().startswith("rs") else ["_id"], assembly, fields,
                                MAX_SIZE)
            if not docs:
                self._send(404, {"code": 404, "success": False, "error": f"ID '{vid}' not found"}, 1)
            else:
                self._send(200, docs[0] if len(docs) == 1 else docs, 1)
            return
        self._send(404, {"code": 404, "success": False, "error": f"no route {path}"}, 0)

    def do_POST(self):  # noqa: N802
        path = urlsplit(self.path).path.rstrip("/")
        params = self._params()
        if path == "/v1/query":
            terms, keyword, alias = self._terms(params.get("q")), "q", None
            scopes = [s for s in _SPLIT.split(str(params.get("scopes") or "_id")) if s]
        elif path == "/v1/variant":
            terms, keyword, alias = self._terms(params.get("ids", params.get("id"))), "id", "ids"
            scopes = None
        else:
            self._send(404, {"code": 404, "success": False, "error": f"no route {path}"}, 0)
            return
        n = len(terms)
        failed = self._fault()
        if failed:
            self._fail(failed, n)
            return
        cfg = self.server.config
        if n > cfg.max_ids:
            body = {"code": 400, "success": False, "error": "Bad Request", "keyword": keyword,
                    "max": cfg.max_ids, "size": n}
            if alias:
                body["alias"] = alias
            self._send(400, body, n)
            return
        try:
            size = int(params.get("size", DEFAULT_SIZE))
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_SIZE:
            self._send(400, {"code": 400, "success": False, "error": "Bad Request", "keyword": "size",
                             "max": MAX_SIZE, "num": params.get("size")}, n)
            return
        assembly = str(params.get("assembly", "hg19"))
        if assembly not in ("hg19", "hg38"):
            self._send(400, {"code": 400, "success": False, "error": "Bad Request", "keyword": "assembly",
                             "enum": ["hg19", "hg38"]}, n)
            return
        fields = [f for f in _SPLIT.split(str(params.get("fields") or "")) if f] or None
        out: list[dict[str, Any]] = []
        for term in terms:
            sc = scopes if scopes is not None else ([_RSID_SCOPE] if term.lower().startswith("rs") else ["_id"])
            docs = self._lookup(term, sc, assembly, fields, size)
            if docs:
                out += [{"query": term, **d} for d in docs]
            else:
                out.append({"query": term, "notfound": True})
        self._send(200, out, n)

    def _lookup(self, term: str, scopes: list[str], assembly: str, fields: list[str] | None,
                size: int) -> list[dict[str, Any]]:
        cat = self.server.catalogue
        docs = []
        if "_id" in scopes and not term.lower().startswith("rs"):
            for i in cat.rows_for_hgvs(term, assembly):
                d = cat.doc(i, assembly)
                if d is not None:
                    docs.append(d)
        for i, rsid in cat.rows_for_term(term, scopes):
            d = cat.doc(i, assembly, rsid=rsid)
            if d is not None:
                docs.append(d)
        return [_project(d, fields) for d in docs[:size]]


@dataclass
class MyVariantHandle:
    base_url: str
    port: int
    config: MyVariantConfig
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log."""
        with self._server.log_lock:
            return list(self._server.requests)

    def data_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.path in ("/v1/query", "/v1/variant")
                or r.path.startswith("/v1/variant/")]

    def clear(self) -> None:
        """Empty the request log and restart the fault counter."""
        with self._server.log_lock:
            self._server.requests.clear()
            self._server.n_data = 0

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> "MyVariantHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(world_dir: str | Path, port: int = 0, config: MyVariantConfig | None = None,
          host: str = "127.0.0.1") -> MyVariantHandle:
    """Start the stand-in on ``host:port`` (0 = any free port) in a background thread."""
    world = Path(world_dir)
    vp = world / "variants.parquet"
    if not world.is_dir():
        raise ConfigError(f"world folder {world} does not exist (build one with `agval world build --out DIR`)")
    if not vp.exists():
        raise ConfigError(f"world folder {world} has no variants.parquet; is it an agval world?")
    cat = Catalogue(vp)
    cfg = config or MyVariantConfig()
    try:
        srv = _Server((host, port), _Handler, cat, cfg)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e} (is the port in use?)") from None
    real_port = srv.server_address[1]
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                          name=f"myvariant-standin-{real_port}", daemon=True)
    th.start()
    return MyVariantHandle(f"http://{host}:{real_port}", real_port, cfg, srv, th)
