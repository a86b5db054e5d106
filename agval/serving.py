"""Results over HTTP, and what a second terminal needs to find a running ``agval serve``.

* :class:`ResultsServer`: the two results roots (:func:`agval.paths.results_root`) served
  **read-only** on 127.0.0.1: ``/real/<path>`` is ``$AGVAL_RESULTS/<path>`` and
  ``/simulated/<path>`` is ``$AGVAL_SIM_RESULTS/<path>``. Only GET and HEAD; a path that
  resolves outside its root (``..``, an absolute path, a symlink pointing out) is a 404, as
  is a folder without ``index.html`` (no directory listings) and any hidden name
  (``.x``: temporary files of atomic writes). ``/`` is a two-link page.
* :func:`results_url`: the ``http://`` URL of a file under a results root when
  ``$AGVAL_RESULTS_URL`` (the server's base URL; ``agval serve`` exports it to its flow
  runs) is set, else its ``file://`` URL. Prefect artifacts and log lines use it.
* The serve state file (:func:`write_serve_state`, :func:`read_serve_state`,
  :func:`adopt_serve_state`): ``<state>/serve.json`` holds the environment of a running
  ``agval serve`` (``PREFECT_API_URL``, ``AGVAL_STANDIN_ADDRESS``, ``AGVAL_RESULTS_URL``,
  ``AGVAL_DEPLOYMENTS_CONFIG``) and its pid, so ``agval watch``/``revalidate``/``compare``
  in another terminal (same ``AGVAL_HOME``) use the same server, stand-in and config.

Plain standard library (http.server, threading): no Prefect here.
"""

from __future__ import annotations

import http.server
import json
import os
import posixpath
import threading
import urllib.parse
from pathlib import Path
from typing import Any

ENV_URL = "AGVAL_RESULTS_URL"
STATE_FILE = "serve.json"
#: URL prefix -> simulated flag of the results root it serves
ROOTS = {"real": False, "simulated": True}
#: the variables a second terminal takes over from a running serve
SERVE_VARIABLES = ("PREFECT_API_URL", "AGVAL_STANDIN_ADDRESS", ENV_URL, "AGVAL_DEPLOYMENTS_CONFIG")


def _roots() -> dict[str, Path]:
    from agval.paths import results_root

    return {name: results_root(sim) for name, sim in ROOTS.items()}


def resolve_inside(root: Path, rel: str) -> Path | None:
    """``root/rel`` with every symlink resolved, or None when it is not inside ``root``
    (``..``, an absolute part, a symlink out) or a part of ``rel`` is hidden (``.x``)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if any(p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        return None
    base = root.resolve()
    target = base.joinpath(*parts).resolve()
    try:
        target.relative_to(base)
    except ValueError:
        return None
    return target


def results_url(path: str | Path) -> str:
    """The URL under which ``path`` is served: ``$AGVAL_RESULTS_URL/<real|simulated>/<rel>``
    when that variable is set and ``path`` is inside a results root, else ``file://``."""
    p = Path(path).absolute()
    base = os.environ.get(ENV_URL, "").rstrip("/")
    if base:
        try:
            roots = _roots()
        except Exception:  # noqa: BLE001 - a misconfigured root: fall back to the file URL
            roots = {}
        for name, root in roots.items():
            try:
                rel = p.resolve().relative_to(root.resolve())
            except ValueError:
                continue
            return f"{base}/{name}/" + urllib.parse.quote(rel.as_posix())
    return p.as_uri()


_MISSING = os.path.join(os.devnull, "missing")  # open() fails with an OSError: a 404


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "agval-results"
    sys_version = ""

    def __init__(self, *a, roots: dict[str, Path], **kw):
        self._roots = roots
        super().__init__(*a, **kw)

    def log_message(self, format, *args):  # noqa: A002 - quiet: the serve terminal is for runs
        pass

    def translate_path(self, path: str) -> str:
        """URL path -> file inside a root, or a path that cannot be opened (a 404)."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        folder = path.endswith("/")
        path = posixpath.normpath(path) if path else "/"
        head, _, rest = path.lstrip("/").partition("/")
        root = self._roots.get(head)
        target = resolve_inside(root, rest) if root is not None else None
        if target is not None and folder and target.is_dir():
            # a folder's index.html, checked like any file (it may be a symlink out)
            index = resolve_inside(root, f"{rest}/index.html")
            target = index if index is not None and index.is_file() else target
        return str(target) if target is not None else _MISSING

    def list_directory(self, path):  # no listings: a folder needs its own index.html
        self.send_error(404, "Not found")
        return None

    def send_head(self):
        path = urllib.parse.urlsplit(self.path).path
        if path in ("", "/"):
            body = ("<!doctype html><title>agval results</title><h1>agval results</h1><ul>"
                    + "".join(f'<li><a href="/{n}/">{n}</a></li>' for n in ROOTS) + "</ul>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            import io

            return io.BytesIO(body)
        return super().send_head()

    def _read_only(self):
        self.send_error(405, "Read-only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _read_only


class ResultsServer:
    """The results roots over HTTP on ``host:port`` (0 = a free port), in a daemon thread.

    ``url`` is the base URL (``http://127.0.0.1:<port>``); :meth:`stop` closes it. A
    context manager. The roots are read when the server starts (``$AGVAL_RESULTS``,
    ``$AGVAL_SIM_RESULTS``)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", roots: dict[str, Path] | None = None):
        roots = roots or _roots()
        for r in roots.values():
            Path(r).mkdir(parents=True, exist_ok=True)

        def handler(*a, **kw):
            return _Handler(*a, roots=roots, **kw)

        self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="agval-results-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> "ResultsServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_results_server(preferred_port: int | None = None) -> ResultsServer:
    """A :class:`ResultsServer` on ``preferred_port`` (the Prefect UI port + 1, say) when it
    is free, else on any free port."""
    if preferred_port:
        try:
            return ResultsServer(preferred_port)
        except OSError:
            pass
    return ResultsServer(0)


# -- the serve state file ----------------------------------------------------------------

def state_path() -> Path:
    from agval.paths import state_dir

    return state_dir() / STATE_FILE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_serve_state(env: dict[str, str], **extra: Any) -> Path:
    """Record a running serve (this process) for other terminals: ``env`` holds
    :data:`SERVE_VARIABLES`, ``extra`` anything to show (UI URL)."""
    from agval.schema import atomic_write_bytes

    p = state_path()
    data = {"pid": os.getpid(), "env": {k: v for k, v in env.items() if k in SERVE_VARIABLES and v}, **extra}
    atomic_write_bytes(p, json.dumps(data, indent=2).encode())
    return p


def clear_serve_state() -> None:
    """Remove the state file if this process wrote it."""
    s = read_serve_state(require_alive=False)
    if s is not None and s.get("pid") == os.getpid():
        state_path().unlink(missing_ok=True)


def read_serve_state(require_alive: bool = True) -> dict[str, Any] | None:
    """The state of the running serve, or None (no file, unreadable, its process gone, or
    its Prefect API not answering ``/health``)."""
    p = state_path()
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("env"), dict):
        return None
    if require_alive:
        if not (isinstance(data.get("pid"), int) and _alive(data["pid"])):
            return None
        api = data["env"].get("PREFECT_API_URL")
        if api and not _healthy(str(api)):  # a stale file whose pid was reused
            return None
    return data


def _healthy(api_url: str, timeout: float = 3.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def adopt_serve_state(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Copy a running serve's variables into ``environ`` (default ``os.environ``) where
    they are not already set. Returns what was set (empty when no serve is running)."""
    environ = os.environ if environ is None else environ
    s = read_serve_state()
    if s is None:
        return {}
    set_ = {k: str(v) for k, v in s["env"].items() if k in SERVE_VARIABLES and v and not environ.get(k)}
    environ.update(set_)
    return set_
