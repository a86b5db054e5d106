"""Named errors. Each one says what is wrong and where (file, column, row).

Catch :class:`AgvalError` to catch everything agval raises on purpose. The command line
prints one ``error:`` line (``str(e)``, at most :data:`MAX_MESSAGE` characters) and, when
the error carries one, one ``hint:`` line; it exits with code 2 (:func:`user_lines`).
Offending content quoted in a message goes through :func:`quote` (at most
:data:`MAX_QUOTE` characters), so a 10 MB one-line table cannot flood the terminal or
the manifest.
"""

from __future__ import annotations

from pathlib import Path

#: the longest quoted offending value in a message (characters, ellipsis included)
MAX_QUOTE = 200
#: the longest message the command line prints or a manifest stores
MAX_MESSAGE = 2000


def quote(value: object, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    r = repr(value)
    if len(r) <= limit:
        return r
    return r[: max(limit - 5, 1)] + "[...]"


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, on one line."""
    text = " ".join(str(text).split()) if "\n" in str(text) else str(text)
    return text if len(text) <= limit else text[: limit - 5] + "[...]"


class AgvalError(Exception):
    """Base class of every error agval raises deliberately.

    ``hint`` (optional, keyword) is one line telling the user what to do about it.
    """

    hint: str | None = None

    def __init__(self, *args, hint: str | None = None):
        super().__init__(*args)
        if hint is not None:
            self.hint = hint


def user_lines(exc: BaseException) -> list[str]:
    """What the command line prints for ``exc``: ``error: ...`` and maybe ``hint: ...``."""
    from agval.secrets import redact

    lines = [f"error: {bounded(redact(str(exc)))}"]
    hint = getattr(exc, "hint", None)
    if hint:
        lines.append(f"hint: {bounded(redact(str(hint)), 500)}")
    return lines


class StorageError(AgvalError):
    """A results, cache or state folder cannot be written: names the folder and why
    (read-only, full, not a directory, permission denied)."""

    def __init__(self, folder: str | Path, why: str, *, hint: str | None = None):
        self.folder = str(folder)
        super().__init__(f"{self.folder}: {why}", hint=hint)

    @classmethod
    def from_os_error(cls, folder: str | Path, exc: OSError, what: str = "folder") -> "StorageError":
        import errno

        why = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.ENOTDIR: "a path component is a file, not a folder",
               errno.EEXIST: "exists and is not a folder", errno.EDQUOT: "disk quota exceeded"}.get(
            exc.errno, exc.strerror or type(exc).__name__)
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(folder) else ""
        return cls(folder, f"cannot write the {what}: {why}{where}",
                   hint="choose another folder (AGVAL_HOME, AGVAL_RESULTS, AGVAL_SIM_RESULTS) or free space")


class ConfigError(AgvalError):
    """Bad configuration: an unknown study, an invalid cron, an unreachable server..."""


class RunInterrupted(AgvalError):
    """The agval process was stopped (SIGTERM/SIGINT) before the run finished."""


class InputError(AgvalError):
    """Bad input data. The message names the file, the column and the row (1-based data row).

    ``row`` counts data rows from 1 (the header is not a row), so a user can find
    it in a spreadsheet as line ``row + 1``.
    """

    def __init__(self, reason: str, *, file: str | Path | None = None,
                 column: str | None = None, row: int | None = None, line: int | None = None,
                 hint: str | None = None):
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.column = column
        self.row = row
        self.line = line
        where = []
        if self.file:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {quote(column, 100)}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason, hint=hint)


class MissingColumnError(InputError):
    """A required column is absent from an input table."""

    def __init__(self, column: str, *, file: str | Path | None = None,
                 available: list[str] | None = None):
        listed = ", ".join(quote(c, 60) for c in (available or [])[:30])
        if available and len(available) > 30:
            listed += f", ... ({len(available)} columns)"
        avail = f" (columns present: {bounded(listed, MAX_QUOTE)})" if available else ""
        super().__init__(f"required column is missing{avail}", file=file, column=column)


class GuardError(AgvalError):
    """A sanity guard fired: the data looks like a known failure mode (placeholder
    alleles, p-values used as effects, mixed builds, an empty table after a step)."""


class BuildMismatchError(GuardError):
    """Coordinates from another genome build were about to be used (e.g. hg19 on hg38)."""


class CardinalityError(AgvalError):
    """A join changed the number of rows in a way its declared cardinality forbids."""


class SimulatedResultsError(AgvalError):
    """Simulated output (stand-ins, synthetic world) was about to land where real results go,
    or real output under the simulated root."""


class UnsupportedSequenceError(AgvalError):
    """A sequence cannot be sent to the model: unsupported length, N-padding, bad letters."""


class ScoringError(AgvalError):
    """A scoring backend failed in a way that retries cannot fix."""
