"""The layer rules, checked on the source (ast): every ``import`` anywhere in a module,
at the top or inside a function, counts.

    deployments, flows/demo.py, tests (the top: may start stand-ins)
    agval/cli                         (the command line: runs flows; stand-in commands are a plugin)
    flows  ->  tasks  ->  agval       (Prefect above, the plain library below)
    standins  ->  agval               (the simulated world imports the library, never the reverse)
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("agval", "flows", "tasks", "standins", "deployments")

#: package -> top-level packages it must never import.
FORBIDDEN = {
    "agval": {"prefect", "flows", "tasks", "standins", "deployments"},
    "tasks": {"flows", "deployments", "standins"},
    "flows": {"deployments", "standins"},
    "standins": {"flows", "tasks", "deployments", "prefect"},
}

#: The command line runs flows, serves deployments and configures Prefect, so it may import
#: those layers; never the stand-ins (``agval world`` / ``agval standin`` reach it as a plugin
#: through the ``agval.commands`` entry points, ``standins.cli``).
TOP = ("agval/cli/",)
TOP_MAY_IMPORT = {"prefect", "flows", "tasks", "deployments"}

#: (module, imported package) pairs still to be removed, each with its owner.
PENDING: set[tuple[str, str]] = set()

#: Optional reads of a lower layer's service: the API key from a Prefect Secret block
#: when Prefect is installed (guarded by ``except Exception``).
OPTIONAL = {("agval/secrets.py", "prefect")}

#: Modules allowed one named import across the layers: the one session helper that starts a
#: stand-in in-process (``standin_address`` / ``lookup_session``), and the demo, which builds
#: the synthetic world, starts the stand-ins as processes and runs its generators.
ALLOWED = {("flows/_common.py", "standins"), ("flows/demo.py", "standins")}


def _modules() -> list[pathlib.Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _imports(path: pathlib.Path) -> set[str]:
    """Top-level names of every absolute import in ``path``."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _violations() -> list[str]:
    bad = []
    for p in _modules():
        rel = p.relative_to(ROOT).as_posix()
        pkg = rel.split("/")[0]
        forbidden = FORBIDDEN.get(pkg, set()) - (TOP_MAY_IMPORT if rel.startswith(TOP) else set())
        for name in sorted(_imports(p) & forbidden):
            if (rel, name) not in PENDING | ALLOWED | OPTIONAL:
                bad.append(f"{rel} imports {name}")
    return bad


def test_layers_run_one_way():
    assert not _violations()


def test_pending_exceptions_are_still_needed():
    """An exception that no longer occurs must leave the list (so the list only shrinks)."""
    for rel, name in PENDING | ALLOWED | OPTIONAL:
        assert name in _imports(ROOT / rel), f"{rel} no longer imports {name}: remove it from the list"


def test_no_import_cycles_between_packages():
    graph: dict[str, set[str]] = {pkg: set() for pkg in PACKAGES}
    for p in _modules():
        rel = p.relative_to(ROOT).as_posix()
        if rel.startswith(TOP):
            continue
        pkg = rel.split("/")[0]
        graph[pkg] |= {n for n in _imports(p) if n in PACKAGES and n != pkg and (rel, n) not in PENDING}

    def reach(a: str, seen: set[str]) -> set[str]:
        for b in graph[a] - seen:
            seen.add(b)
            reach(b, seen)
        return seen

    cycles = [pkg for pkg in PACKAGES if pkg in reach(pkg, set())]
    assert not cycles, {k: sorted(v) for k, v in graph.items()}


#: Files of other branches that still work around import order (none left).
E402_PENDING: set[str] = set()


def test_no_e402_workarounds():
    """Importing ``flows``/``tasks`` configures Prefect in the package ``__init__``, so no module
    needs code before its imports."""
    files = {p.relative_to(ROOT).as_posix() for p in _modules() + sorted((ROOT / "tests").rglob("*.py"))
             if "noqa: E402" in p.read_text() and p.name != "test_layers.py"}
    assert files <= E402_PENDING, sorted(files - E402_PENDING)


def test_the_cli_finds_the_stand_in_commands_as_a_plugin():
    """``agval world`` and ``agval standin`` come from the ``agval.commands`` entry points
    (declared in pyproject.toml), not from an import in agval/."""
    from agval.cli import plugin_entry_points

    assert plugin_entry_points().get("standins") == "standins.cli:register"
    assert not any("standins" in _imports(p) for p in (ROOT / "agval").rglob("*.py"))


def test_the_checker_sees_a_violation(tmp_path):
    """The walker finds imports inside functions too (a checker that cannot fail is no check)."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from standins.alphagenome import serve\n    import flows.qtl\n")
    assert _imports(f) == {"standins", "flows"}
