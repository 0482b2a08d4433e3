"""The package's import graph: no import circles, train/ and eval/ never import each other, and
inference modules import neither (nor the CLI), so ``import speechlm.pipeline`` stays light."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "speechlm"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imported(name: str, path: Path) -> set[str]:
    """speechlm modules that ``name`` imports anywhere in its file (top level or in a function;
    ``from pkg import sub`` counts as importing ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            # a name that is not a submodule comes from the package itself
            targets = subs + ([base] if len(subs) < len(node.names) else [])
        else:
            continue
        out |= {t for t in targets if t in MODULES and t != name}
    return out


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_graph_is_read():
    assert "speechlm.pipeline" in GRAPH and "speechlm.train.loop" in GRAPH
    assert "speechlm.stage" in GRAPH["speechlm.pipeline"]


def test_no_import_circles():
    try:
        list(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import circle: {' -> '.join(err.args[1])}")


@pytest.mark.parametrize("a,b", [("speechlm.train", "speechlm.eval"),
                                 ("speechlm.eval", "speechlm.train")])
def test_train_and_eval_do_not_import_each_other(a, b):
    bad = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if under(m, a)
                 for t in ts if under(t, b))
    assert not bad


def test_inference_imports_no_training_evaluation_or_cli():
    # speechlm.serve: the web application, a front end like the CLI (it shares the CLI's flag
    # ranges and imports the eval judges lazily, inside a function)
    heavy = ("speechlm.train", "speechlm.eval", "speechlm.cli", "speechlm.serve")
    light = [m for m in GRAPH if not any(under(m, h) for h in heavy)
             and m != "speechlm.__main__"]  # python -m speechlm: the CLI's entry point
    bad = sorted(f"{m} -> {t}" for m in light for t in GRAPH[m]
                 if any(under(t, h) for h in heavy))
    assert not bad
