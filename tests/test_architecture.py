"""The package's house: no import cycle, no private name imported across modules, one stage loop.

Read from the source (``ast``), so these checks hold for imports inside functions too.
"""
import ast
import os

import msnn

ROOT = os.path.dirname(msnn.__file__)

#: Back-edges kept on purpose, each with its reason (none today).
ALLOWED_CYCLES: list[set] = []


def _modules() -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = "msnn" + path[len(ROOT):-3].replace(os.sep, ".")
                out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def _imports(mods: dict[str, str]):
    """(module, imported module, imported names) for every ``import`` of a module of the package."""
    for name, path in mods.items():
        pkg = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = pkg.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                names = [a.name for a in node.names]
                if base in mods:
                    yield name, base, [n for n in names if f"{base}.{n}" not in mods]
                for n in names:
                    if f"{base}.{n}" in mods:
                        yield name, f"{base}.{n}", []
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in mods:
                        yield name, a.name, []


def _graph() -> dict[str, set]:
    mods = _modules()
    g = {m: set() for m in mods}
    for src, dst, _ in _imports(mods):
        # a package importing its own parts, or a part its package, is how packages are built
        if src != dst and not dst.startswith(src + ".") and not src.startswith(dst + "."):
            g[src].add(dst)
    return g


def _cycles(g: dict[str, set]) -> list[set]:
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in g:
        if v not in index:
            visit(v)
    return out


def test_the_modules_import_each_other_without_a_cycle():
    found = _cycles(_graph())
    unexpected = [c for c in found if c not in ALLOWED_CYCLES]
    assert not unexpected, f"import cycles among msnn's modules: {unexpected}"


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_private_name_is_imported_from_another_module():
    bad = [(src, dst, n) for src, dst, names in _imports(_modules()) for n in names
           if n.startswith("_") and not n.startswith("__") and src != dst]
    assert not bad, f"private names imported across modules: {bad}"


def test_one_stage_loop():
    """Every multi-stage driver runs the engine's loop; none loops over its stages itself."""
    from msnn import MultistageBurgers, MultistagePINN, MultistageRegressor, SIMultistageRegressor
    from msnn.engine import StagedFit

    for driver in (MultistageRegressor, SIMultistageRegressor, MultistagePINN, MultistageBurgers):
        assert issubclass(driver, StagedFit), driver
        assert "_run_stages" not in vars(driver), f"{driver.__name__} has its own stage loop"
