"""Change detection between two model fingerprints, and what differed.

:func:`agval.scoring.fingerprint.compare` says which fingerprint fields differ (canary
scores within a tolerance count as equal). This module turns that into a
:class:`ChangeReport`:

* ``changed``: the digests differ (the score cache keys on the digest, so a new digest
  means new cache entries);
* ``material``: at least one part differs beyond tolerance, which is what triggers
  re-validation. Canary scores (raw and quantile, as rounded by the fingerprint to 4
  significant digits) count as equal when ``|a - b| <= atol + rtol * max(|a|, |b|)``
  (like ``numpy.isclose``): a relative tolerance, because canary scores can be tiny
  (a stand-in revision moved raw DNASE canary scores of ~1e-4 by ~1e-4, which an
  absolute 1e-3 tolerance would miss). A canary variant that appears, disappears or
  changes its error is always material;
* ``parts``: the kinds of evidence that differ, from
  ``sdk`` (SDK version, ``ModelVersion`` names, recommended scorers),
  ``proto`` (proto descriptors), ``metadata`` (output metadata, i.e. track catalogue and
  ``nonzero_mean``), ``canary`` (canary scores: the weights), ``model_version`` (the
  configured version name) and ``other`` (e.g. a precomputed table's sha256);
* ``details``: the raw :func:`compare` output (old/new values where they are short).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: fingerprint field -> kind of evidence
PART_OF_FIELD = {
    "sdk_version": "sdk",
    "model_versions": "sdk",
    "recommended_scorers_sha256": "sdk",
    "proto_sha256": "proto",
    "metadata": "metadata",
    "canary": "canary",
    "model_version": "model_version",
}
PART_ORDER = ("sdk", "proto", "metadata", "canary", "model_version", "other")


@dataclass
class ChangeReport:
    old_digest: str | None
    new_digest: str | None
    changed: bool
    material: bool
    parts: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    first_seen: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.first_seen:
            return f"first fingerprint {str(self.new_digest)[:12]}"
        if not self.changed:
            return f"unchanged ({str(self.new_digest)[:12]})"
        what = ", ".join(self.parts) if self.parts else "nothing beyond tolerance"
        return f"{str(self.old_digest)[:12]} -> {str(self.new_digest)[:12]}: {what}"


def _short(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_short(x) for x in v]
    if isinstance(v, str) and len(v) > 80:
        return v[:80] + "..."
    return v


def canary_moves(old: dict[str, Any], new: dict[str, Any], *, atol: float, rtol: float) -> str | None:
    """Why the canary scores differ beyond tolerance, or None."""
    ca, cb = old.get("canary") or {}, new.get("canary") or {}
    if ca.get("sha256") == cb.get("sha256"):
        return None
    sa = {tuple(r[:5]): r[5:7] for r in ca.get("scores", [])}
    sb = {tuple(r[:5]): r[5:7] for r in cb.get("scores", [])}
    if set(sa) != set(sb) or ca.get("errors") != cb.get("errors"):
        return "different rows or errors"
    moved, worst = 0, 0.0
    for k, va in sa.items():
        row_moved = False
        for x, y in zip(va, sb[k]):  # raw and quantile score
            if x is None and y is None:
                continue
            if x is None or y is None:
                row_moved = True
                continue
            d = abs(x - y)
            worst = max(worst, d)
            row_moved |= d > atol + rtol * max(abs(x), abs(y))
        moved += row_moved
    if moved:
        return (f"{moved} of {len(sa)} canary score rows moved beyond atol {atol:g} + rtol {rtol:g} "
                f"(max |diff| {worst:.3g})")
    return None


def detect_change(old: dict[str, Any] | None, new: dict[str, Any], *, atol: float = 1e-6,
                  rtol: float = 1e-3) -> ChangeReport:
    """Compare the recorded fingerprint ``old`` (None: nothing recorded yet) with ``new``."""
    from agval.scoring.fingerprint import compare, fingerprint_digest

    new_digest = new.get("digest") or fingerprint_digest(new)
    if old is None:
        return ChangeReport(None, new_digest, changed=False, material=False, first_seen=True)
    old_digest = old.get("digest") or fingerprint_digest(old)
    # structural differences; the canary's numbers are judged below with a relative tolerance
    diff = compare(old, new, tol=float("inf"))
    diff.pop("canary", None)
    why = canary_moves(old, new, atol=atol, rtol=rtol)
    if why:
        diff["canary"] = why
    # fields fingerprint.compare does not look at (precomputed tables, extras)
    for k in ("table_sha256", "extra", "backend"):
        if old.get(k) != new.get(k):
            diff[k] = (old.get(k), new.get(k))
    parts = sorted({PART_OF_FIELD.get(k, "other") for k in diff}, key=PART_ORDER.index)
    details = {k: (_short(list(v)) if isinstance(v, tuple) else _short(v)) for k, v in diff.items()}
    if "metadata" in diff:
        details["metadata"] = {"old": old.get("metadata"), "new": new.get("metadata")}
    if "canary" in diff:
        details["canary_sha256"] = [(old.get("canary") or {}).get("sha256"), (new.get("canary") or {}).get("sha256")]
    return ChangeReport(old_digest, new_digest, changed=old_digest != new_digest, material=bool(diff),
                        parts=parts, details=details)
