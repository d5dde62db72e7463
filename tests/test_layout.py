"""The package's floors: each imports only the floors below it, and no modules import each
other in a circle (docs/architecture.md, "The floors of the package")."""

import ast
import pathlib

import networkx as nx

import graphnet as gn

ROOT = pathlib.Path(gn.__file__).parent
# what each subpackage may import from graphnet (itself always); kernels is the ground
ALLOWED = {
    "core": {"kernels"},
    "ops": {"core", "kernels"},
    "layers": {"core", "ops", "kernels"},
    "data": {"core"},
    "export": {"core", "ops", "kernels"},
    "training": {"core", "ops", "layers", "data", "kernels", "export"},
}


def _display_hooks(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside Jupyter's ``_repr_mimebundle_`` hooks: a notebook shows a
    tensor, graph or model as its drawing, so these reach up to graphnet.visualize on
    purpose (lazily, when a notebook asks), the one import that goes up a floor."""
    return {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
            and f.name == "_repr_mimebundle_" for n in ast.walk(f)}


def _imports() -> dict[str, set[str]]:
    """Module -> the graphnet modules it imports, type-only imports included."""
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    out = {}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        tree = ast.parse(p.read_text())
        hooks = _display_hooks(tree)
        for node in ast.walk(tree):
            if id(node) in hooks:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                for a in node.names:
                    cand = f"{mod}.{a.name}"
                    deps.add(cand if cand in mods else mod)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        out[name] = {d for d in deps if d.startswith("graphnet") and d != name}
    return out


def _floor(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or module in (f"graphnet.{f}" for f in ALLOWED) else ""


def test_each_floor_imports_only_the_floors_below():
    bad = []
    for mod, deps in _imports().items():
        floor = _floor(mod)
        if floor not in ALLOWED:
            continue
        for d in deps:
            target = d.split(".")[1] if d.count(".") else ""
            if target and target != floor and target not in ALLOWED[floor]:
                bad.append(f"{mod} -> {d}")
    assert bad == []


def test_no_import_circles_between_modules():
    deps = _imports()
    g = nx.DiGraph([(a, b) for a, bs in deps.items() for b in bs if b in deps
                    and not b == "graphnet" and not a.startswith(b + ".")])
    cycles = [c for c in nx.simple_cycles(g) if set(c) != {"graphnet.core.graph",
                                                           "graphnet.core.tensor"}]
    # graph.py names Tensor only under TYPE_CHECKING (a Graph holds Tensors; a Tensor
    # registers in its Graph): the one type-only pair the layout allows
    assert cycles == []


def test_public_names_keep_working():
    assert gn.optimizers.Adam and gn.losses.get and gn.metrics.get and gn.callbacks.History
    assert gn.regularizers.L2 and gn.datasets.digits and gn.text.Vocabulary
    assert gn.music.parse_abc and gn.schedules and gn.batches is gn.data.batches
    assert gn.layers.Dense and gn.Model and gn.Sequential and gn.load_model
    assert not hasattr(gn.layers, "L2")  # regularizers are not a layer family
