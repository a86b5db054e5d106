"""Shared plotting helpers: theme, input guards, statistics labels and the PNG writer.

Plot functions take polars DataFrames and convert to pandas only at the plotting
boundary (:func:`to_pandas`). They never open a window: the matplotlib backend is
forced to Agg before plotnine is imported.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import plotnine as p9
import polars as pl
from plotnine.composition import Compose

from agval.errors import GuardError, MissingColumnError

matplotlib.use("Agg", force=True)  # headless: figures are files, never windows

DEFAULT_DPI = 150

# matplotlib's figure machinery is not thread-safe; flows may run plotting tasks in threads.
_DRAW_LOCK = threading.RLock()

#: Colours used across figures.
POINT = "#3b6ea5"
FIT = "#c0392b"
HIGHLIGHT = "#d35400"
MUTED = "#9aa5b1"
POS = "#c0392b"
NEG = "#2c6fbb"
MEAN_LINE = "#c0392b"
MEDIAN_LINE = "#2c3e50"
NA_GREY = "#d9d9d9"


class EmptyPlotInputError(GuardError):
    """A figure was asked for with no rows (or no finite values) to draw."""


# -- theme ------------------------------------------------------------------------------

def theme_agval(base_size: float = 10) -> p9.theme:
    """The house theme: black-and-white grid, light strips, bottom legends."""
    return p9.theme_bw(base_size=base_size) + p9.theme(
        plot_title=p9.element_text(size=base_size + 1, weight="bold"),
        plot_subtitle=p9.element_text(size=base_size - 1),
        strip_background=p9.element_rect(fill="#eef1f4", color="#9aa5b1"),
        legend_position="bottom",
        panel_grid_minor=p9.element_blank(),
    )


# -- input guards -----------------------------------------------------------------------

def require(df: Any, columns: Iterable[str], *, what: str,
            finite: Iterable[str] = ()) -> pl.DataFrame:
    """Check ``df`` is a non-empty polars DataFrame with ``columns``.

    Rows with a null/NaN/inf value in any ``finite`` column are removed first; if
    nothing is left, :class:`EmptyPlotInputError` is raised naming the figure.
    Missing columns raise :class:`agval.errors.MissingColumnError`.
    """
    if isinstance(df, pd.DataFrame):
        df = pl.from_pandas(df)
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"{what}: expected a polars DataFrame, got {type(df).__name__}")
    for col in columns:
        if col not in df.columns:
            raise MissingColumnError(col, file=f"<{what} input>", available=list(df.columns))
    if df.height == 0:
        raise EmptyPlotInputError(f"{what}: the input table is empty; there is nothing to plot")
    finite = list(finite)
    for col in finite:
        if col not in df.columns:
            raise MissingColumnError(col, file=f"<{what} input>", available=list(df.columns))
    if finite:
        cond = pl.lit(True)
        for col in finite:
            c = pl.col(col).cast(pl.Float64, strict=False)
            cond = cond & c.is_not_null() & c.is_finite()
        df = df.filter(cond)
        if df.height == 0:
            raise EmptyPlotInputError(
                f"{what}: no rows with finite values in {', '.join(finite)}; there is nothing to plot")
    return df


def require_values(values: Any, *, what: str) -> np.ndarray:
    """A 1-D float array of the finite values in ``values`` (list, numpy, polars Series)."""
    if values is None:
        raise EmptyPlotInputError(f"{what}: no values given; there is nothing to plot")
    if isinstance(values, pl.Series):
        values = values.cast(pl.Float64, strict=False).to_numpy()
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise EmptyPlotInputError(f"{what}: no finite values; there is nothing to plot")
    return arr


def to_pandas(df: pl.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The plotting boundary: polars -> pandas (only the needed columns)."""
    if columns is not None:
        df = df.select(list(dict.fromkeys(columns)))
    return df.to_pandas()


# -- statistics for labels --------------------------------------------------------------

def fmt_num(v: Any, digits: int = 3) -> str:
    """Compact number: ``nan`` for missing, 3 significant digits otherwise."""
    if v is None:
        return "n/a"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "n/a"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if f != 0 and (abs(f) < 1e-3 or abs(f) >= 1e5):
        return f"{f:.{digits - 1}e}"
    return f"{f:.{digits}g}"


def fmt_p(p: Any) -> str:
    """A p-value for a label: two significant digits, ``< 1e-300`` for underflow."""
    if p is None:
        return "n/a"
    p = float(p)
    if math.isnan(p):
        return "n/a"
    if p == 0.0:
        return "< 1e-300"
    if p < 1e-3:
        return f"{p:.2e}"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def correlation_stats(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """n, Spearman rho (p), Pearson r (p), R^2 of the least-squares line, slope, intercept.

    Degenerate inputs (n < 3, constant x or y) give NaN statistics instead of warnings.
    """
    from scipy import stats

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = int(x.size)
    out = {"n": n, "rho": math.nan, "rho_p": math.nan, "r": math.nan, "r_p": math.nan,
           "r2": math.nan, "slope": math.nan, "intercept": math.nan}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        if n >= 2 and np.ptp(x) > 0:
            out["slope"], out["intercept"] = (float(v) for v in np.polyfit(x, y, 1))
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(x, y)
        r = stats.pearsonr(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    out.update(rho=float(rho.statistic), rho_p=float(rho.pvalue), r=float(r.statistic),
               r_p=float(r.pvalue), r2=float(r.statistic) ** 2, slope=float(slope),
               intercept=float(intercept))
    return out


def stats_text(st: dict[str, Any], *, r2: bool = True) -> str:
    """Two lines: ``Spearman ρ = 0.40 (p = 1e-5)   Pearson r = ... (p = ...)`` and
    ``n = 100   R² = ...``."""
    line1 = (f"Spearman \u03c1 = {fmt_num(st.get('rho'))} (p = {fmt_p(st.get('rho_p'))})   "
             f"Pearson r = {fmt_num(st.get('r'))} (p = {fmt_p(st.get('r_p'))})")
    line2 = f"n = {int(st['n']):,}" + (f"   R\u00b2 = {fmt_num(st.get('r2'))}" if r2 else "")
    return f"{line1}\n{line2}"


def fit_line(x: np.ndarray, slope: float, intercept: float) -> pd.DataFrame:
    """Two points of the fitted line across the x range (empty when the fit is undefined)."""
    if not (np.isfinite(slope) and np.isfinite(intercept)) or x.size == 0:
        return pd.DataFrame({"x": [], "y": []})
    lo, hi = float(np.min(x)), float(np.max(x))
    return pd.DataFrame({"x": [lo, hi], "y": [intercept + slope * lo, intercept + slope * hi]})


def jitter(n: int, width: float, seed: int = 0) -> np.ndarray:
    """Seeded uniform jitter in [-width, width] (deterministic figures)."""
    return np.random.default_rng(seed).uniform(-width, width, size=n)


# -- saving -----------------------------------------------------------------------------

def save(plot: p9.ggplot | Compose, path: str | Path, *, width: float, height: float,
         dpi: int = DEFAULT_DPI) -> Path:
    """Write ``plot`` as a PNG of ``width*dpi`` x ``height*dpi`` pixels; return the Path.

    The file is written to a temporary name beside ``path`` and renamed, so a crash
    never leaves a half-written figure. Parent folders are created. Drawing is
    serialised by a process-wide lock (matplotlib is not thread-safe).
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG; got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.png")
    # A fixed Software tag keeps the bytes independent of the matplotlib version string.
    meta = {"Software": "agval"}
    try:
        with _DRAW_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(plot, Compose):
                (plot + p9.theme(figure_size=(width, height), dpi=dpi)).save(
                    tmp, format="png", dpi=dpi, metadata=meta)
            else:
                plot.save(tmp, format="png", width=width, height=height, units="in", dpi=dpi,
                          verbose=False, limitsize=False, metadata=meta)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def ordered(values: Iterable[Any]) -> list[Any]:
    """Unique values in first-seen order (for categorical axes)."""
    return list(dict.fromkeys(values))


def categorical(series: pd.Series, order: Sequence[Any]) -> pd.Categorical:
    return pd.Categorical(series, categories=list(order), ordered=True)


def tile_heatmap(pdf: pd.DataFrame, *, x: str, y: str, fill: str, label: str,
                 midpoint: float, limits: tuple[float, float] | None = None,
                 x_order: Sequence[Any] | None = None, y_order: Sequence[Any] | None = None,
                 fill_name: str = "", text_size: float = 8, na_label: str = "no data") -> p9.ggplot:
    """Annotated tile heatmap on a diverging blue-white-red scale around ``midpoint``.

    ``pdf`` is already pandas (called at the plotting boundary); ``label`` is the column of
    cell annotations. Cells with a missing ``fill`` are drawn grey, and the legend then
    has a grey "no data" key beside the colour bar (``na_label``).
    """
    pdf = pdf.copy()
    pdf[x] = categorical(pdf[x].astype(str), [str(v) for v in (x_order or ordered(pdf[x].astype(str)))])
    y_levels = [str(v) for v in (y_order or ordered(pdf[y].astype(str)))]
    pdf[y] = categorical(pdf[y].astype(str), list(reversed(y_levels)))  # first row on top
    scale = p9.scale_fill_gradient2(low=NEG, mid="#f7f7f7", high=POS, midpoint=midpoint,
                                    limits=limits, na_value=NA_GREY, name=fill_name)
    plot = (p9.ggplot(pdf, p9.aes(x, y, fill=fill))
            + p9.geom_tile(color="white", size=0.5))
    missing = pdf[pdf[fill].isna()]
    if len(missing):  # a legend key for the grey cells (the fill scale's NA colour has none)
        missing = missing.assign(_na=na_label)
        plot = (plot + p9.geom_point(p9.aes(x, y, color="_na"), data=missing, inherit_aes=False, alpha=0)
                + p9.scale_color_manual(values={na_label: NA_GREY}) + p9.labs(color=" ")
                + p9.guides(color=p9.guide_legend(override_aes={"alpha": 1, "size": 6, "shape": "s"})))
    return (plot
            + p9.geom_text(p9.aes(label=label), size=text_size)
            + scale
            + p9.scale_x_discrete(expand=(0, 0))
            + p9.scale_y_discrete(expand=(0, 0))
            + p9.labs(x="", y="")
            + theme_agval()
            + p9.theme(panel_grid=p9.element_blank(), legend_position="right"))


# -- SIMULATED label ----------------------------------------------------------------------

SIMULATED_LABEL = "SIMULATED: stand-in model, synthetic world - not real AlphaGenome results"
_STAMP_KEY = "agval-simulated"
#: The label band's colour (RGB); tests look for it in the top rows of a stamped figure.
SIMULATED_RGB = (179, 38, 30)


def is_stamped(path: str | Path) -> bool:
    """True when the PNG at ``path`` carries agval's SIMULATED band."""
    from PIL import Image

    with Image.open(path) as im:
        return im.info.get(_STAMP_KEY) == "1"


def stamped_png(data: bytes) -> bytes | None:
    """The PNG ``data`` with the SIMULATED band drawn above it, or None when it already
    carries the band (see :func:`stamp_simulated`)."""
    import io

    from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

    with Image.open(io.BytesIO(data)) as im:
        if im.info.get(_STAMP_KEY) == "1":
            return None
        src = im.convert("RGBA")
        meta = {k: v for k, v in im.info.items() if isinstance(v, str)}
    w = src.width
    size = max(12, min(28, w // 45))
    band = size + 14
    out = Image.new("RGBA", (w, src.height + band), (255, 255, 255, 255))
    out.paste(src, (0, band))
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, 0, w, band - 1], fill=SIMULATED_RGB + (255,))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    text = SIMULATED_LABEL
    while draw.textlength(text, font=font) > w - 16 and len(text) > 9:
        text = text[: text.rfind(" ", 0, len(text) - 1)] if " " in text[9:] else "SIMULATED"
    draw.text((8, 7), text, fill=(255, 255, 255, 255), font=font)
    info = PngImagePlugin.PngInfo()
    for k, v in meta.items():
        info.add_text(k, v)
    info.add_text(_STAMP_KEY, "1")
    buf = io.BytesIO()
    out.convert("RGB").save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def stamp_simulated(path: str | Path) -> bool:
    """Draw the SIMULATED label inside the PNG at ``path``: a red band with white text
    added above the figure (the pixels carry it, so a copied plot keeps it). Idempotent
    (a PNG text chunk marks a stamped file); returns True when it stamped now."""
    path = Path(path)
    data = stamped_png(path.read_bytes())
    if data is None:
        return False
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.stamp.png")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return True


def stamp_folder(folder: str | Path) -> int:
    """Stamp every PNG under ``folder`` (a simulated run's plots); returns how many were new."""
    return sum(stamp_simulated(p) for p in sorted(Path(folder).rglob("*.png")))
