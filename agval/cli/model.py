"""``agval model ...``: what model is behind a scoring backend.

``agval model fingerprint`` prints the model fingerprint as JSON (SDK version, proto
hash, ModelVersion names, recommended-scorer hash, output-metadata hash, canary scores
and the overall ``digest`` that agval's score cache keys on):

* ``--address HOST:PORT``: a stand-in or self-hosted model; omitted = the live service
  (needs the API key; see ``agval.secrets``);
* ``--standin-world DIR``: the synthetic world; its first catalogue SNVs are the canary
  panel, and without ``--address`` a stand-in is started in-process for the call;
* ``--model-version ALL_FOLDS|FOLD_0..3``; ``--canary chr1:123:A>G`` (repeatable) to
  choose the panel; ``--full`` to include the canary's score rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(rich_markup_mode=None, help="The model behind a scoring backend (fingerprint).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """The model behind a scoring backend."""


@app.command("fingerprint")
def fingerprint(
    address: Optional[str] = typer.Option(None, "--address", help="HOST:PORT of a stand-in or self-hosted model "
                                                                  "(default: the live AlphaGenome service)"),
    standin_world: Optional[Path] = typer.Option(None, "--standin-world",
                                                 help="synthetic world folder (canary panel; starts a stand-in "
                                                      "when --address is not given)"),
    model_version: Optional[str] = typer.Option(None, "--model-version", help="ALL_FOLDS, FOLD_0 ... FOLD_3"),
    canary: Optional[list[str]] = typer.Option(None, "--canary", help="canary variant chr1:123:A>G (repeatable)"),
    organism: str = typer.Option("human", "--organism"),
    full: bool = typer.Option(False, "--full", help="include the canary score rows"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the JSON to this file"),
) -> None:
    """Print the model fingerprint as JSON."""
    from agval.schema import atomic_write_json
    from agval.scoring.spec import BackendSpec
    from agval.scoring.fingerprint import summarize

    from flows._common import standin_address  # the one place a stand-in is started in-process

    kind = "standin" if address is None and standin_world is not None else "alphagenome"
    with standin_address(kind, address, str(standin_world) if standin_world else None) as address:
        backend = BackendSpec(kind="alphagenome", address=address, model_version=model_version,
                              standin_world=str(standin_world) if standin_world else None,
                              canary=tuple(canary) if canary else None).build(fresh=True)
        try:
            fp = backend.fingerprint(organism=organism)
            fp = dict(fp)
            fp["address_kind"] = backend.address_kind()
            fp["simulated"] = backend.simulated
        finally:
            backend.close()
    shown = fp if full else summarize(fp)
    typer.echo(json.dumps(shown, indent=2, sort_keys=True, default=str))
    if out is not None:
        atomic_write_json(out, shown)
