"""Every agval command answers --help, and help text is shown literally (bracketed config
section names like [backend] are not swallowed as markup)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from agval import cli


def _commands():
    cli._register()
    root = typer.main.get_command(cli.app)
    out = []

    def walk(cmd, path):
        out.append(path)
        if getattr(cmd, "commands", None):
            for name, sub in cmd.commands.items():
                walk(sub, path + [name])

    walk(root, [])
    return out


COMMANDS = _commands()


def test_every_expected_command_exists():
    names = {" ".join(c) for c in COMMANDS}
    for expected in ("demo", "serve", "watch", "revalidate", "compare", "world build", "standin alphagenome",
                     "standin myvariant", "model fingerprint", "run qtl", "run twas", "run mpra"):
        assert expected in names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "agval")
def test_help(path):
    res = CliRunner().invoke(cli.app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output


def test_bracketed_words_survive_in_help():
    res = CliRunner().invoke(cli.app, ["run", "qtl", "--help"])
    assert "[backend]" in res.output and "[lookup]" in res.output


def test_bad_input_is_a_clear_error_with_exit_code_2(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "agval", "standin", "alphagenome", "--world", str(tmp_path / "nope"),
                        "--port", "0"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "error:" in p.stderr and "nope" in p.stderr
