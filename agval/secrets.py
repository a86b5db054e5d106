"""The AlphaGenome API key: read from the environment or a Prefect Secret block, never shown.

* ``ALPHAGENOME_API_KEY`` in the environment wins;
* otherwise the Prefect Secret block named by ``AGVAL_API_KEY_BLOCK``
  (default ``alphagenome-api-key``) is read when Prefect is available.

:func:`redact` removes the key from any text; agval installs a log record factory
(and a logging filter) that applies it to every log record, and the run record scrubs manifests with it, so the
key never reaches logs, artifacts, results or exception messages.
"""

from __future__ import annotations

import logging
import os

_ENV = "ALPHAGENOME_API_KEY"
_BLOCK_ENV = "AGVAL_API_KEY_BLOCK"
_seen: set[str] = set()


def get_api_key(required: bool = True) -> str | None:
    key = os.environ.get(_ENV)
    if not key:
        block = os.environ.get(_BLOCK_ENV, "alphagenome-api-key")
        try:
            from prefect.blocks.system import Secret

            key = Secret.load(block).get()
        except Exception:  # no Prefect, no server, no block: fall through
            key = None
    if key:
        _seen.add(key)
        return key
    if required:
        from agval.errors import ConfigError

        raise ConfigError(f"no AlphaGenome API key: set {_ENV} or create a Prefect Secret block "
                          f"named by {_BLOCK_ENV} (default 'alphagenome-api-key')")
    return None


def register(key: str | None) -> None:
    """Remember ``key`` (a key passed explicitly, not read by :func:`get_api_key`) for redaction."""
    if key:
        _seen.add(key)


def redact(text: str) -> str:
    """Replace every known key (and the environment's) with ``[REDACTED]``."""
    keys = set(_seen)
    if os.environ.get(_ENV):
        keys.add(os.environ[_ENV])
    for k in keys:
        if k and len(k) >= 4:
            text = text.replace(k, "[REDACTED]")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        red = redact(msg)
        if red != msg:
            record.msg, record.args = red, ()
        return True


_factory_installed = False


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        msg = record.getMessage()
    except Exception:  # a malformed record: leave it to logging's own error handling
        return record
    red = redact(msg)
    if red != msg or record.args:
        record.msg, record.args = red, ()
    if record.exc_info and not record.exc_text:
        try:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        except Exception:  # pragma: no cover
            pass
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def install_record_factory() -> None:
    """Redact every log record when it is created, whichever logger or handler it goes
    to (Prefect's run loggers and API handler included). Installed once per process."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_agval_redacting", False):
        _factory_installed = True
        return

    def factory(*args, **kwargs):
        return _redact_record(previous(*args, **kwargs))

    factory._agval_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    _factory_installed = True


def install_log_filter() -> None:
    install_record_factory()
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(RedactingFilter())
    for h in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())
