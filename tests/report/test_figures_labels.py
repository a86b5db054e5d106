"""Figures users see: the SIMULATED label inside every PNG of a simulated run (it
survives copying), MPRA axes with readable names and units, a legend key for grey
"no data" heatmap cells, and |score| / |beta| never sharing one axis."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import polars as pl
import pytest
from PIL import Image

from agval.plots._common import (NA_GREY, SIMULATED_RGB, is_stamped, save, stamp_folder, stamp_simulated,
                                 tile_heatmap)
from agval.plots.mpra import axis_label, mpra_scatter
from agval.plots.qtl import qtl_distributions


def _png(path, size=(600, 400), colour=(255, 255, 255)):
    Image.new("RGB", size, colour).save(path)
    return path


def _red_fraction(img: Image.Image, rows: int) -> float:
    a = np.asarray(img.convert("RGB"))[:rows].reshape(-1, 3).astype(int)
    return float(np.mean(np.all(np.abs(a - np.array(SIMULATED_RGB)) <= 2, axis=1)))


def test_stamp_draws_the_label_into_the_pixels_once(tmp_path):
    p = _png(tmp_path / "fig.png")
    assert not is_stamped(p) and _red_fraction(Image.open(p), 10) == 0
    assert stamp_simulated(p) is True
    im = Image.open(p)
    assert im.height > 400 and im.width == 600, "a band is added above the figure"
    assert _red_fraction(im, 5) > 0.9, "the band is the SIMULATED red"
    band = np.asarray(im.convert("RGB"))[: im.height - 400]
    assert (band > 240).all(axis=2).sum() > 50, "white label text inside the band"
    h = im.height
    assert stamp_simulated(p) is False and Image.open(p).height == h, "idempotent"
    copy = tmp_path / "copied.png"
    shutil.copyfile(p, copy)
    assert is_stamped(copy) and _red_fraction(Image.open(copy), 5) > 0.9, "a copied plot keeps the label"


def test_stamp_folder_labels_every_plot(tmp_path):
    for name in ("a.png", "sub/b.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        _png(tmp_path / name)
    assert stamp_folder(tmp_path) == 2 and stamp_folder(tmp_path) == 0
    assert all(is_stamped(p) for p in tmp_path.rglob("*.png"))


@pytest.mark.parametrize("name, expected", [
    ("log2_ratio", "MPRA activity, log2((RNA + pc) / (DNA + pc))"),
    ("dnase_center", "predicted DNase, centre-window mean (track units)"),
    ("cage_mean_plus", "predicted CAGE, whole-sequence mean, + strand (track units)"),
    ("rna_center_minus", "predicted RNA-seq, centre-window mean, \u2212 strand (track units)"),
    ("pearson_r", "Pearson r"),
])
def test_mpra_axis_labels_have_names_and_units(name, expected):
    assert axis_label(name) == expected


def test_mpra_scatter_uses_the_readable_labels(tmp_path):
    rng = np.random.default_rng(0)
    df = pl.DataFrame({"log2_ratio": rng.normal(size=50), "dnase_center": rng.normal(size=50)})
    captured = {}
    import agval.plots.mpra as m

    def fake_save(plot, path, **kw):
        captured["labels"] = {"x": plot.labels.x, "y": plot.labels.y}
        return path

    orig = m.save
    m.save = fake_save
    try:
        mpra_scatter(df, tmp_path / "s.png", aggregate="dnase_center")
    finally:
        m.save = orig
    assert captured["labels"]["x"] == axis_label("log2_ratio")
    assert captured["labels"]["y"] == axis_label("dnase_center")


def _color_scales(plot):
    return [s for s in plot.scales if "color" in s.aesthetics or "colour" in s.aesthetics]


def test_heatmap_legend_has_a_key_for_grey_cells(tmp_path):
    base = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": ["p", "q", "p", "q"], "v": [0.1, 0.2, -0.5, 0.9],
                         "cell": ["", "", "", ""]})
    full = tile_heatmap(base, x="b", y="a", fill="v", label="cell", midpoint=0)
    assert not _color_scales(full), "no 'no data' key when every cell has a value"
    holes = base.assign(v=[0.1, np.nan, -0.5, 0.9])
    plot = tile_heatmap(holes, x="b", y="a", fill="v", label="cell", midpoint=0)
    (sc,) = _color_scales(plot)
    assert sc.palette(1) == {"no data": NA_GREY}, "a \"no data\" key in the cells' grey"
    layer = [ly for ly in plot.layers if "color" in ly.mapping or "colour" in ly.mapping]
    assert len(layer) == 1 and list(layer[0]._data["_na"]) == ["no data"], "one key row for the grey cell"
    save(plot, tmp_path / "h.png", width=4, height=3, dpi=80)  # draws


def test_qtl_magnitudes_do_not_share_an_axis(tmp_path):
    """|score| (~0.01) and |beta| (~1) get one panel each (free scales)."""
    rng = np.random.default_rng(1)
    df = pl.DataFrame({"score": rng.normal(0, 0.01, 80), "beta": rng.normal(0, 1, 80)})
    import agval.plots.qtl as q

    captured = {}

    def fake_save(plot, path, **kw):
        captured["plot"] = plot
        return path

    orig = q.save
    q.save = fake_save
    try:
        qtl_distributions(df, tmp_path / "d.png")
    finally:
        q.save = orig
    facets = []

    def walk(node):
        for item in getattr(node, "items", None) or []:
            walk(item)
        if hasattr(node, "facet"):
            facets.append(node.facet)

    walk(captured["plot"])
    wraps = [f for f in facets if type(f).__name__ == "facet_wrap"]
    assert wraps and all(f.free["x"] and f.free["y"] for f in wraps)


def test_simulated_report_embeds_labelled_figures_without_touching_files(tmp_path):
    """Plots drawn outside publish_report (e.g. the comparison report's) are labelled in
    the page of a simulated run; a real run's figure is embedded byte for byte."""
    import base64
    import io
    import re

    from agval.report import render_report

    p = _png(tmp_path / "history.png")
    before = p.read_bytes()
    pages = {sim: render_report("t", provenance={"simulated": sim}, figures=[p]) for sim in (True, False)}
    assert p.read_bytes() == before

    def embedded(html):
        (b64,) = re.findall(r'<figure id="fig-1"><img src="data:image/png;base64,([^"]+)"', html)
        return base64.b64decode(b64)

    assert embedded(pages[False]) == before
    im = Image.open(io.BytesIO(embedded(pages[True])))
    assert im.height > 400 and _red_fraction(im, 5) > 0.9
