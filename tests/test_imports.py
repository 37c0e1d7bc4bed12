"""kbootd's import structure: no circles between its modules, and imports at the top.

A function-local import of kbootd's own code usually hides a circle (the module could
not be imported at the top without one); these tests keep the graph honest. What may
still be imported inside a function is listed below, each with its reason.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "kbootd"

# kbootd modules a function may import, as (importing file, imported module). Keep it tiny.
ALLOWED_LOCAL_KBOOTD = {
    # argparse (with `re` and `gettext` under it) is what `version` and `token generate`
    # skip; cli/main.py builds the parser only off that fast path. Handlers themselves are
    # dispatched by name ("module:function" strings, importlib), not by import statements.
    ("cli/main.py", "kbootd.cli.parser"),
    # kbootd.pki.certs imports cryptography (tens of ms): the lean supervisor's health checks
    # (daemon/health.py) read kubeconfigs through kbootd.kubeconfigfile but never parse their
    # CA as a certificate; only Kubeconfig.ca_cert does (kubeconfig phase, discovery).
    ("kubeconfigfile.py", "kbootd.pki.certs"),
    # kbootd.pki.renew imports cryptography: the lean supervisor's certificate pass reads
    # expiry dates with kbootd.pki.derdates and signs only when something is due.
    ("daemon/certrenewal.py", "kbootd.pki.renew"),
}

# Third-party packages a function may import: heavy ones, paid only by the code that uses them.
HEAVY_THIRD_PARTY = {"cryptography", "yaml", "kubernetes", "requests", "systemd"}

# Standard-library modules a function may import, as (file, module), each for start-up's sake.
STDLIB_LOCAL = {
    # `version` and `token generate` import kbootd.token/redact/errors and cli/commands.py and
    # cli/main.py; these stdlib modules cost more than the rest of those commands together.
    ("cli/commands.py", "json"): "imports `re`; only `version -o json`",
    ("cli/main.py", "importlib"): "dispatch of a \"module:function\" handler, off the fast path",
    ("cli/main.py", "logging"): "imports `re`, `traceback`, `threading`; set up only with -v",
    ("errors.py", "traceback"): "imports `linecache`, `tokenize`; only at -v 5",
    ("redact.py", "re"): "compiled on the first redaction; `token generate` registers, never redacts",
    ("redact.py", "logging"): "only when a log handler is set up",
    ("redact.py", "traceback"): "only when a logged record carries an exception",
    ("token.py", "re"): "compiled on the first parse; `token generate` never parses",
    # The TLS stack (ssl, http.client: ~10 ms) only when a connection is opened: every API
    # caller imports kbootd.transport, offline commands (config print, dry runs) included.
    ("transport.py", "ssl"): "",
    ("transport.py", "http.client"): "",
}

# Stdlib modules a light command (version, token generate) may not import.
NOTABLE_STDLIB = ("re", "typing", "dataclasses", "argparse", "enum", "collections", "types")


def _modname(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_modname(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_pkg: bool) -> list[str]:
    """The modules an import statement loads (submodules resolved; names from a module map to it)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = importer.split(".") if is_pkg else importer.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([base] if base else []))
    out = []
    for a in node.names:
        out.append(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return out


def _module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: the top, if/try blocks, class bodies."""
    for n in body:
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            yield n
        elif isinstance(n, ast.If):
            if not _is_type_checking(n.test):  # annotations only
                yield from _module_level_imports(n.body)
            yield from _module_level_imports(n.orelse)
        elif isinstance(n, ast.Try):
            for block in (n.body, n.orelse, n.finalbody, *(h.body for h in n.handlers)):
                yield from _module_level_imports(block)
        elif isinstance(n, (ast.With, ast.ClassDef)):
            yield from _module_level_imports(n.body)


def _function_local_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for n in ast.walk(fn):
                if isinstance(n, (ast.Import, ast.ImportFrom)):
                    yield n


def _ancestors(mod: str) -> list[str]:
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """Module -> the kbootd modules importing it runs. Importing a.b.c runs package a.b's
    __init__ too, so that is an edge as well, except to the importer's own packages (Python
    has initialised those before the importer started)."""
    graph: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        own = set(_ancestors(mod))
        deps: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text()).body):
            for t in _targets(node, mod, path.name == "__init__.py"):
                deps.update(d for d in (t, *_ancestors(t)) if d in MODULES and d not in own and d != mod)
        graph[mod] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[m] = 2
        return None

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_graph_sees_the_known_edges():
    g = import_graph()
    assert "kbootd.errors" in g["kbootd.token"]
    assert "kbootd.cluster" in g["kbootd.cluster.tokens"] or "kbootd.apiclient" in g["kbootd.cluster.tokens"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or ())


def _stdlib() -> frozenset[str]:
    return frozenset(sys.stdlib_module_names)


def _local_import_findings() -> list[str]:
    bad = []
    for mod, path in MODULES.items():
        rel = str(path.relative_to(PKG))
        for node in _function_local_imports(ast.parse(path.read_text())):
            for t in _targets(node, mod, path.name == "__init__.py"):
                top = t.split(".")[0]
                where = f"kbootd/{rel}:{node.lineno}: {ast.unparse(node)}"
                if top == "kbootd":
                    if (rel, t) not in ALLOWED_LOCAL_KBOOTD:
                        bad.append(where + "  (kbootd's own modules are imported at the top)")
                elif top in _stdlib():
                    if (rel, t) not in STDLIB_LOCAL:
                        bad.append(where + "  (stdlib: import at the top, or add a start-up reason)")
                elif top not in HEAVY_THIRD_PARTY:
                    bad.append(where + "  (light third-party package: import at the top)")
    return bad


def test_function_local_imports_are_only_heavy_or_allow_listed():
    assert _local_import_findings() == []


def test_the_allow_list_is_used():
    """An entry nobody needs any more goes."""
    used = set()
    for mod, path in MODULES.items():
        rel = str(path.relative_to(PKG))
        for node in _function_local_imports(ast.parse(path.read_text())):
            used.update((rel, t) for t in _targets(node, mod, path.name == "__init__.py"))
    assert ALLOWED_LOCAL_KBOOTD <= used
    assert set(STDLIB_LOCAL) <= used


@pytest.mark.parametrize("module", ["kbootd.cli.commands", "kbootd.cli.main"])
def test_the_light_modules_import_no_notable_stdlib_at_the_top(module):
    g = import_graph()
    tree = ast.parse(MODULES[module].read_text())
    names = {t.split(".")[0] for n in _module_level_imports(tree.body) for t in _targets(n, module, False)}
    assert not names & set(NOTABLE_STDLIB)
    assert "kbootd.cli.parser" not in g[module]


# What `kbootd version` and `kbootd token generate` import beyond the bare interpreter, as
# measured with `-X importtime` (README, Benchmarks): kbootd's light modules and no notable
# stdlib module. A new import here is a start-up cost: move it off the fast path instead.
FAST_PATH_KBOOTD = {
    "kbootd", "kbootd.cli", "kbootd.cli.main", "kbootd.cli.commands", "kbootd.errors",
    "kbootd.redact", "kbootd.token", "kbootd.tokenshape", "kbootd.version",
}


@pytest.mark.subprocess
@pytest.mark.parametrize("argv", [["version"], ["token", "generate"]])
def test_fast_path_imports_exactly_the_light_modules(argv):
    # The child imports nothing before its snapshot (no json: it would bring `re` in early).
    code = ("import sys; before = set(sys.modules)\n"
            "from kbootd.cli.main import main\n"
            f"rc = main({argv!r})\n"
            "sys.stderr.write('ADDED=' + repr(sorted(set(sys.modules) - before)))\n")
    env = {**os.environ, "PYTHONPATH": str(PKG.parent)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    added = set(ast.literal_eval(p.stderr.split("ADDED=")[1]))
    assert {m for m in added if m.split(".")[0] == "kbootd"} == FAST_PATH_KBOOTD
    assert not added & set(NOTABLE_STDLIB), sorted(added & set(NOTABLE_STDLIB))
    assert {m for m in added if m.split(".")[0] != "kbootd"} <= {"__future__"}, sorted(added)
