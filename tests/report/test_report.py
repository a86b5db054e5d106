"""Reports: self-contained (figures as data URIs, no http(s) links), escaped, provenance
complete, SIMULATED banner only for simulated runs; table renderers; the run index."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from agval.errors import InputError
from agval.report import (Figure, df_to_html, df_to_markdown, format_value, metrics_frame,
                          render_index, render_report)


def tiny_png(path: Path, w: int = 3, h: int = 2, seed: int = 0) -> Path:
    """A valid RGB PNG written by hand (no plotting needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes((seed + x * 40 + y * 90) % 256 for x in range(w * 3)) for y in range(h))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    path.write_bytes(data)
    return path


class _Attrs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "action", "srcset", "poster", "data"):
                self.links.append((tag, k, v or ""))


def parse(html_text: str) -> _Attrs:
    p = _Attrs()
    p.feed(html_text)
    p.close()
    return p


def manifest(simulated: bool) -> dict:
    return {
        "run_id": "20250101T000000Z-abc123", "study": "qtl", "flow": "qtl_validation",
        "simulated": simulated, "agval_version": "0.1.0", "alphagenome_sdk_version": "0.10.0",
        "prefect_version": "3.8.8", "python": "3.11.2",
        "parameters": {"mode": "corrected", "interval": 1048576, "tracks": {"caqtl": "ATAC"},
                       "url": "https://example.org/not-a-link"},
        "seed": 1234,
        "inputs": [{"role": "caqtl", "path": "/data/ATAC-QTLs.csv", "sha256": "ab" * 32, "bytes": 123}],
        "backend": {"name": "standin", "address_kind": "standin", "simulated": simulated},
        "model": {"version": "ALL_FOLDS", "fingerprint": "fp-0123456789abcdef"},
        "started": "2025-01-01T00:00:00+00:00", "finished": "2025-01-01T00:01:00+00:00",
        "status": "completed", "n_dropped": 3,
    }


@pytest.fixture()
def figs(tmp_path) -> list:
    a = tiny_png(tmp_path / "a.png", seed=1)
    b = tiny_png(tmp_path / "b.png", seed=2)
    c = tiny_png(tmp_path / "c.png", seed=3)
    return [Figure(a, "Scatter <of> score & beta"), (b, "Distributions"), {"path": c, "caption": "third"}]


def report(simulated: bool, figs, **kw) -> str:
    metrics = {"n": 3271, "<script>alert('x')</script>": 0.5,
               "caqtl": {"corrected": {"spearman_rho": 0.4032, "spearman_p": 3.68e-128},
                         "per_track": [{"track": "ATAC <CD4>", "rho": 0.41}, {"track": "DNASE", "rho": 0.3}]}}
    funnel = pl.DataFrame({"stage": ["lookup", "harmonize"], "reason": ["notfound", "palindromic"],
                           "n": [2, 1]})
    return render_report("QTL <validation>", provenance=manifest(simulated),
                         sections={"Summary": "First paragraph.\n\nSecond <b>not bold</b>."},
                         metrics=metrics, drop_funnel=funnel, figures=figs,
                         tables={"Per-track": pl.DataFrame({"track": ["ATAC"], "rho": [0.41]})}, **kw)


def test_every_figure_is_embedded_as_data_uri(figs):
    html_text = report(False, figs)
    imgs = [v for tag, k, v in parse(html_text).links if tag == "img" and k == "src"]
    assert len(imgs) == 3
    paths = [figs[0].path, figs[1][0], figs[2]["path"]]
    for src, p in zip(imgs, paths):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == p.read_bytes()
    assert "Scatter &lt;of&gt; score &amp; beta" in html_text


def test_no_external_references(figs):
    html_text = report(True, figs)
    for tag, attr, value in parse(html_text).links:
        assert not re.match(r"\s*(https?:|//|javascript:|file:)", value, re.I), (tag, attr, value)
        if attr == "href":
            assert value.startswith("#"), value
    assert "<script" not in html_text.lower()
    assert "<link" not in html_text.lower()
    assert "@import" not in html_text and "url(" not in html_text
    # text mentioning a URL is fine, as escaped text only
    assert "https://example.org/not-a-link" in html_text


def test_metric_names_and_text_are_escaped(figs):
    html_text = report(False, figs)
    assert "<script>alert" not in html_text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html_text
    assert "<b>not bold</b>" not in html_text and "&lt;b&gt;not bold&lt;/b&gt;" in html_text
    assert "QTL &lt;validation&gt;" in html_text
    assert "ATAC &lt;CD4&gt;" in html_text


def test_simulated_banner_only_when_simulated(figs):
    sim = report(True, figs)
    real = report(False, figs)
    assert 'id="simulated-banner"' in sim and "SIMULATED" in sim
    assert "<title>[SIMULATED]" in sim
    assert "simulated-banner" not in real
    assert "SIMULATED" not in real.replace('"simulated"', "")  # the word appears nowhere else


def test_provenance_metrics_and_funnel_are_shown(figs):
    html_text = report(False, figs)
    for needle in ("0.10.0", "3.8.8", "3.11.2", "fp-0123456789abcdef", "ALL_FOLDS", "ab" * 32,
                   "/data/ATAC-QTLs.csv", "1234", "1048576", "standin", "spearman_rho", "0.4032",
                   "3.680e-128", "notfound", "palindromic", "3 rows dropped in total",
                   "First paragraph.", "Per-track"):
        assert needle in html_text, needle
    assert html_text.startswith("<!DOCTYPE html>")
    tags = parse(html_text).tags
    assert tags.count("figure") == 3 and "table" in tags


def test_missing_or_non_png_figure_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read the figure"):
        render_report("t", provenance=manifest(False), figures=[tmp_path / "nope.png"])
    bad = tmp_path / "bad.png"
    bad.write_text("<svg/>")
    with pytest.raises(InputError, match="PNG"):
        render_report("t", provenance=manifest(False), figures=[bad])


def test_minimal_report_and_empty_funnel():
    html_text = render_report("t", provenance={"simulated": False}, drop_funnel=pl.DataFrame(
        {"stage": [], "reason": [], "n": []}, schema={"stage": pl.Utf8, "reason": pl.Utf8, "n": pl.Int64}))
    assert "No rows were dropped" in html_text
    assert "No model recorded" in html_text


def test_warnings_are_shown_escaped():
    html_text = render_report("t", provenance={"simulated": False},
                              warnings=["6,963 rows but 18 distinct inputs <pseudo-replication>"])
    assert "18 distinct inputs &lt;pseudo-replication&gt;" in html_text


# -- table renderers --------------------------------------------------------------------

def test_df_to_markdown():
    df = pl.DataFrame({"name": ["a|b", "line\nbreak"], "value": [0.123456, 1e-9], "n": [1, None]})
    md = df_to_markdown(df)
    lines = md.splitlines()
    assert lines[0] == "| name | value | n |"
    assert lines[1] == "| --- | ---: | ---: |"
    assert lines[2] == "| a\\|b | 0.1235 | 1 |"
    assert lines[3] == "| line break | 1.000e-09 | \u2014 |"
    cut = df_to_markdown(pl.DataFrame({"x": list(range(10))}), max_rows=3)
    assert "first 3 of 10 rows" in cut and cut.count("\n| ") == 4


def test_df_to_html_escapes_and_truncates():
    df = pl.DataFrame({"<col>": ["<td>&"], "n": [5]})
    out = df_to_html(df, caption="a <caption>", bar_column="n")
    assert "<th>&lt;col&gt;</th>" in out and "&lt;td&gt;&amp;" in out
    assert "a &lt;caption&gt;" in out and 'class="bar"' in out
    big = df_to_html(pl.DataFrame({"x": list(range(20))}), max_rows=5)
    assert big.count("<tr>") == 6 and "first 5 of 20 rows" in big


def test_metrics_frame_and_format_value():
    mf = metrics_frame({"a": 1, "b": {"c": 0.5, "d": {"e": float("nan")}}})
    assert mf.to_dicts() == [{"name": "a", "value": "1"}, {"name": "b.c", "value": "0.5"},
                             {"name": "b.d.e", "value": "NaN"}]
    assert format_value(None) == "\u2014" and format_value(True) == "true"
    assert format_value(3.68e-128) == "3.680e-128" and format_value(0.40321) == "0.4032"


# -- index ------------------------------------------------------------------------------

def _run_folder(root: Path, name: str, simulated: bool) -> Path:
    folder = root / "qtl" / name
    folder.mkdir(parents=True)
    m = manifest(simulated) | {"run_id": name}
    (folder / "manifest.json").write_text(json.dumps(m))
    (folder / "metrics.json").write_text(json.dumps({"caqtl": {"rho": 0.4032}}))
    (folder / "report.html").write_text("<html></html>")
    return folder


def test_render_index_links_relative_reports(tmp_path):
    a = _run_folder(tmp_path, "run-a", simulated=False)
    b = _run_folder(tmp_path, "run-<b>", simulated=True)
    page = render_index([a, b], base=tmp_path, metric_names=["caqtl.rho"])
    hrefs = [v for tag, k, v in parse(page).links if k == "href"]
    assert hrefs == ["qtl/run-a/report.html", "qtl/run-<b>/report.html"]  # parser unescapes
    assert all(not h.startswith(("http", "/")) for h in hrefs)
    assert "run-&lt;b&gt;" in page and "0.4032" in page
    assert 'id="simulated-banner"' in page
    real_only = render_index([a], base=tmp_path)
    assert "simulated-banner" not in real_only


def test_render_index_refuses_urls_and_accepts_mappings(tmp_path):
    with pytest.raises(ValueError, match="relative file paths"):
        render_index([{"run_id": "x", "report": "https://evil.example/r.html"}])
    with pytest.raises(ValueError):
        render_index([{"run_id": "x", "report": "javascript:alert(1)"}])
    page = render_index([{"run_id": "x", "study": "mpra", "report": "mpra/x/report.html",
                          "simulated": False, "model": {"version": "v1", "fingerprint": "fp"}}])
    assert 'href="mpra/x/report.html"' in page and "v1 fp" in page
    assert "No runs yet" in render_index([])
