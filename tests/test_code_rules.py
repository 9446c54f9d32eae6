"""Rules the code of ``zoo/`` keeps, checked on its source: only the public API of Lightning, torchmetrics
and jsonargparse (so that their releases cannot break it); no module that imports one that imports
it back; and the tools around the models ask a model what it does (the interface of
``zoo.models.base.ZooModule``) instead of naming its family's classes."""

import ast
import inspect
import types
from pathlib import Path

import jsonargparse
import lightning.pytorch as pl
import pytest
import torchmetrics
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tests.conftest import REPO

PACKAGE = REPO / "zoo"
UPSTREAM = ("lightning", "torchmetrics", "jsonargparse", "pytorch_lightning")
# The upstream classes the zoo subclasses or calls methods on.
UPSTREAM_CLASSES = (pl.LightningModule, pl.LightningDataModule, pl.Callback, pl.Trainer, LightningCLI,
                    pl.callbacks.Checkpoint, TorchCheckpointIO, torchmetrics.Metric, torchmetrics.MetricCollection,
                    jsonargparse.ArgumentParser, jsonargparse.Namespace)


def _sources() -> dict[str, ast.Module]:
    return {str(path.relative_to(REPO)): ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


# Documented public names that start with an underscore (https://docs.python.org/3/library/os.html#os._exit).
PUBLIC_UNDERSCORE_NAMES = {"_exit"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _names_the_zoo_defines(trees) -> set[str]:
    """Private names defined in zoo/: functions, classes, module globals and attributes it assigns."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
    return {name for name in names if _private(name)}


def test_no_private_attribute_of_another_library_is_used():
    trees = _sources()
    ours = _names_the_zoo_defines(trees.values())
    used = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in ours
                    and node.attr not in PUBLIC_UNDERSCORE_NAMES):
                used.append(f"{path}:{node.lineno}: .{node.attr}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr", "delattr") and len(node.args) > 1
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                  and _private(node.args[1].value) and node.args[1].value not in ours):
                used.append(f"{path}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    assert not used, "private names of other libraries:\n" + "\n".join(used)


def test_nothing_is_imported_from_a_private_module_or_name_upstream():
    imported = []
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in UPSTREAM:
                names = [node.module, *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.split(".")[0] in UPSTREAM]
            else:
                continue
            if any(_private(part) for name in names for part in name.split(".")):
                imported.append(f"{path}:{node.lineno}: {', '.join(names)}")
    assert not imported, "\n".join(imported)


def _upstream_names() -> set[str]:
    """Every name the upstream classes have, or use as an attribute in their own code (a superset of
    what they set on instances)."""
    names = set()
    for cls in UPSTREAM_CLASSES:
        for klass in cls.__mro__:
            if klass.__module__.split(".")[0] not in UPSTREAM:
                continue
            names |= set(vars(klass))
            for value in vars(klass).values():
                function = getattr(value, "fget", value)
                if isinstance(function, (types.FunctionType, types.MethodType)):
                    names |= set(function.__code__.co_names)
    return names


def test_no_private_name_of_the_zoo_overrides_one_upstream():
    """A method or attribute named like one of Lightning's private ones would replace it silently."""
    clashes = _names_the_zoo_defines(_sources().values()) & {name for name in _upstream_names() if _private(name)}
    assert not clashes, f"zoo names that shadow upstream private names: {sorted(clashes)}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """zoo module -> the zoo modules it imports, at any depth of its code (inside functions too)."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from zoo.data import vision` imports the module zoo.data.vision
                candidates = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                              for alias in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in modules and c != name}
        graph[name] = targets
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = _import_graph()
    assert "zoo.weights" in graph["zoo.pretrained"]  # the graph sees imports inside functions
    cycles = set()

    def visit(module, path):
        for target in graph[module]:
            if target in path:
                cycle = path[path.index(target):]
                start = cycle.index(min(cycle))
                cycles.add(" -> ".join(cycle[start:] + cycle[:start] + [min(cycle)]))
            elif len(path) < len(graph):
                visit(target, path + [target])

    for module in graph:
        visit(module, [module])
    assert not cycles, "\n".join(sorted(cycles))


def _family_classes() -> set[str]:
    """The classes of the model families: every class of ``zoo/models/`` but the interface module's."""
    return {node.name for path in sorted((PACKAGE / "models").glob("*.py")) if path.name not in ("base.py", "__init__.py")
            for node in ast.parse(path.read_text()).body if isinstance(node, ast.ClassDef)}


def test_the_tools_ask_the_model_and_name_no_family_class():
    """infer, export, report, cards, the CLI...: a new family is one place (its files under zoo/models and
    zoo/nets), because no other module names a family's classes or probes a model with hasattr."""
    family = _family_classes()
    assert {"GAN", "VAE", "SupervisedModule", "ReconstructionModule", "LeNet5"} <= family
    named = []
    for path, tree in _sources().items():
        if Path(path).parts[1] in ("models", "nets"):
            continue
        for node in ast.walk(tree):
            name = (node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute)
                    else node.name.rsplit(".", 1)[-1] if isinstance(node, ast.alias) else None)
            if name in family:
                named.append(f"{path}:{node.lineno} names {name}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr":
                named.append(f"{path}:{node.lineno} asks {ast.unparse(node)}")
    assert not named, "\n".join(named)


@pytest.mark.parametrize("rule", [test_no_private_attribute_of_another_library_is_used,
                                  test_no_module_imports_one_that_imports_it_back,
                                  test_the_tools_ask_the_model_and_name_no_family_class])
def test_the_rules_catch_what_they_are_for(rule, tmp_path, monkeypatch):
    """Each check fails on a file that breaks its rule (copied into a scratch package)."""
    import shutil

    import tests.test_code_rules as rules

    fake = tmp_path / "zoo"
    shutil.copytree(PACKAGE, fake, ignore=shutil.ignore_patterns("__pycache__", "_weights"))
    (fake / "broken.py").write_text(inspect.cleandoc('''
        def f(trainer):
            import zoo.broken_too
            return trainer._logger_connector, getattr(trainer, "_active_loop")

        def g(model):
            from zoo.models.gan import GAN
            return isinstance(model, GAN) or hasattr(model, "sample")
    '''))
    (fake / "broken_too.py").write_text("import zoo.broken\n")
    monkeypatch.setattr(rules, "PACKAGE", fake)
    monkeypatch.setattr(rules, "REPO", tmp_path)
    with pytest.raises(AssertionError):
        rule()
