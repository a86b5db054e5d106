"""Named errors. Each one says what is wrong and where (file, column, row).

Catch :class:`AgvalError` to catch everything agval raises on purpose.
"""

from __future__ import annotations

from pathlib import Path


class AgvalError(Exception):
    """Base class of every error agval raises deliberately."""


class ConfigError(AgvalError):
    """Bad configuration: an unknown study, an invalid cron, an unreachable server..."""


class InputError(AgvalError):
    """Bad input data. The message names the file, the column and the row (1-based data row).

    ``row`` counts data rows from 1 (the header is not a row), so a user can find
    it in a spreadsheet as line ``row + 1``.
    """

    def __init__(self, reason: str, *, file: str | Path | None = None,
                 column: str | None = None, row: int | None = None):
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.column = column
        self.row = row
        where = []
        if self.file:
            where.append(self.file)
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


class MissingColumnError(InputError):
    """A required column is absent from an input table."""

    def __init__(self, column: str, *, file: str | Path | None = None,
                 available: list[str] | None = None):
        avail = f" (columns present: {', '.join(available)})" if available else ""
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
