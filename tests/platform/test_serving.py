"""The results server of ``agval serve`` (read-only HTTP over the results roots) and its
state file for a second terminal (:mod:`agval.serving`)."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path

import httpx
import pytest

from agval import serving


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    real, sim = tmp_path / "results", tmp_path / "results-simulated"
    monkeypatch.setenv("AGVAL_RESULTS", str(real))
    monkeypatch.setenv("AGVAL_SIM_RESULTS", str(sim))
    monkeypatch.setenv("AGVAL_HOME", str(tmp_path / "state"))
    run = sim / "study-a" / "20261204T000000Z-abc"
    (run / "plots").mkdir(parents=True)
    (run / "report.html").write_text("<html>report A</html>")
    (run / "plots" / "fig.png").write_bytes(b"\x89PNG fake")
    (run / ".report.html.tmp").write_text("half written")
    (real / "study-b").mkdir(parents=True)
    (real / "study-b" / "index.html").write_text("index B")
    (tmp_path / "secret.txt").write_text("outside the roots")
    os.symlink(tmp_path / "secret.txt", run / "escape.txt")
    os.symlink(tmp_path, sim / "escape-dir")
    (run / "inside-link.html").symlink_to(run / "report.html")
    return {"real": real, "sim": sim, "run": run, "tmp": tmp_path}


@pytest.fixture()
def server(roots):
    with serving.ResultsServer() as s:
        yield s


def _raw_get(server, path: str) -> tuple[int, bytes]:
    """A GET with the path sent exactly as written (httpx would normalise ``..``)."""
    c = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        c.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_serves_report_and_figure_of_a_run(server, roots):
    url = serving.results_url(roots["run"] / "report.html")
    assert url.startswith("file://"), "without AGVAL_RESULTS_URL the link stays a file URL"
    os.environ[serving.ENV_URL] = server.url
    try:
        url = serving.results_url(roots["run"] / "report.html")
    finally:
        del os.environ[serving.ENV_URL]
    assert url == f"{server.url}/simulated/study-a/20261204T000000Z-abc/report.html"
    r = httpx.get(url)
    assert r.status_code == 200 and r.text == "<html>report A</html>" and r.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{server.url}/simulated/study-a/20261204T000000Z-abc/plots/fig.png").content == b"\x89PNG fake"
    assert httpx.get(f"{server.url}/real/study-b/").text == "index B", "a folder's own index.html"
    assert httpx.get(f"{server.url}/simulated/study-a/20261204T000000Z-abc/inside-link.html").status_code == 200
    assert server.host == "127.0.0.1"


@pytest.mark.parametrize("path", [
    "/simulated/../../secret.txt",
    "/simulated/%2e%2e/%2e%2e/secret.txt",
    "/simulated/..%2f..%2fsecret.txt",
    "/real/../real/../../secret.txt",
    "/simulated/study-a/20261204T000000Z-abc/escape.txt",   # symlink to a file outside
    "/simulated/escape-dir/secret.txt",                      # symlink to a folder outside
    "/simulated/study-a/20261204T000000Z-abc/.report.html.tmp",  # hidden (atomic-write temporaries)
    "/simulated/study-a/",                                   # a folder without index.html: no listing
    "/simulated/study-a/20261204T000000Z-abc/",
    "/etc/passwd",
    "//etc/passwd",
    "/simulated//etc/passwd",
])
def test_refuses_everything_outside_the_roots(server, roots, path):
    status, body = _raw_get(server, path)
    assert status == 404, (path, status)
    assert b"outside the roots" not in body and b"report A" not in body and b"fake" not in body


def test_read_only(server, roots):
    url = f"{server.url}/simulated/study-a/20261204T000000Z-abc/report.html"
    for method in ("POST", "PUT", "DELETE"):
        assert httpx.request(method, url, content=b"x").status_code == 405
    assert (roots["run"] / "report.html").read_text() == "<html>report A</html>"
    assert httpx.head(url).status_code == 200


class _Health:
    """A stand-in Prefect API that answers /api/health."""

    def __init__(self):
        import http.server
        import threading

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/api/health" else 404)
                self.end_headers()
                self.wfile.write(b"true")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.api = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_state_file_is_adopted_only_while_serve_runs(roots, monkeypatch):
    health = _Health()
    try:
        _check_state_file(health)
    finally:
        health.stop()
    # the serve's process is alive (this one) but its Prefect API is gone: ignored
    assert serving.read_serve_state() is None


def _check_state_file(health):
    env = {"PREFECT_API_URL": health.api, "AGVAL_STANDIN_ADDRESS": "127.0.0.1:8",
           "AGVAL_RESULTS_URL": "http://127.0.0.1:10", "AGVAL_DEPLOYMENTS_CONFIG": "/x/agval.toml", "HOME": "/h"}
    p = serving.write_serve_state(env, ui_url="http://127.0.0.1:9")
    assert json.loads(p.read_text())["env"] == {k: v for k, v in env.items() if k != "HOME"}
    mine = {"PREFECT_API_URL": "http://elsewhere/api"}
    assert serving.adopt_serve_state(mine) == {k: v for k, v in env.items() if k not in ("HOME", "PREFECT_API_URL")}
    assert mine["PREFECT_API_URL"] == "http://elsewhere/api", "a variable already set is kept"
    # a state file whose process is gone is ignored
    data = json.loads(p.read_text())
    data["pid"] = 2 ** 22 + 12345  # above pid_max on Linux defaults: no such process
    p.write_text(json.dumps(data))
    assert serving.read_serve_state() is None and serving.adopt_serve_state({}) == {}
    serving.clear_serve_state()
    assert p.exists(), "only the serve that wrote it removes it"
    serving.write_serve_state(env)
    assert serving.read_serve_state()["pid"] == os.getpid()
    serving.clear_serve_state()
    assert not p.exists()
    serving.write_serve_state(env)


def test_preferred_port_falls_back_when_taken(roots):
    with serving.ResultsServer() as a:
        b = serving.start_results_server(a.port)
        try:
            assert b.port != a.port and httpx.get(b.url + "/").status_code == 200
        finally:
            b.stop()
    assert Path(roots["real"]).is_dir()
