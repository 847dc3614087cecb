"""Which way the imports point (docs/package_map.md): the math imports nothing but the math;
the models import the math and, from the machinery, only the contract they implement;
nothing imports the command line. Every import counts, those inside functions too."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "nnscratch"

#: What a model may take from the machinery: the Trainer contract it implements and the
#: checks at its entry points.
MODEL_CONTRACT = {"nnscratch.training.trainer", "nnscratch.training.checks"}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """Absolute names of the nnscratch modules that ``path`` imports."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("nnscratch")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("nnscratch"):
                continue
            # "from . import datasets" imports a module; "from .x import f" imports x
            found |= {f"{target}.{a.name}" if _is_module(f"{target}.{a.name}") else target
                      for a in node.names}
    return found


def _is_module(name):
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def layer(name):
    """``math``, ``models``, ``training``, ``metrics``, ``datasets``, ``plots``, ``cli`` or
    ``api`` (the package's ``__init__`` and ``__main__``)."""
    parts = name.split(".")
    if name in ("nnscratch", "nnscratch.__main__"):
        return "api"
    if len(parts) == 2 and parts[1] != "cli" and not (PACKAGE / parts[1]).is_dir():
        return "math"
    return parts[1]


MODULES = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_layers_are_what_the_map_says():
    layers = {layer(m) for m in MODULES}
    assert layers == {"api", "math", "models", "training", "metrics", "datasets", "plots",
                      "workbook", "cli"}
    assert {m for m in MODULES if layer(m) == "math"} >= {
        "nnscratch.backend", "nnscratch.module", "nnscratch.dense", "nnscratch.activations",
        "nnscratch.losses", "nnscratch.optim", "nnscratch.gradcheck", "nnscratch.dropout",
        "nnscratch.batchnorm", "nnscratch.spectral", "nnscratch.ema"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "math"))
def test_the_math_imports_only_the_math(module):
    outside = sorted(t for t in MODULES[module] if layer(t) != "math")
    assert not outside, f"{module} imports {outside}: the math must not need the machinery"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "models"))
def test_the_models_import_the_math_and_only_the_contract_of_the_machinery(module):
    bad = sorted(t for t in MODULES[module]
                 if layer(t) not in ("math", "models") and t not in MODEL_CONTRACT)
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "workbook"))
def test_the_workbook_imports_the_math_and_the_models_only(module):
    """The workbook grades against the math and plugs into the models; it trains nothing
    itself (the command line runs the loop)."""
    bad = sorted(t for t in MODULES[module] if layer(t) not in ("math", "models", "workbook"))
    assert not bad, f"{module} imports {bad}"


def test_nothing_imports_the_command_line():
    users = sorted(m for m, targets in MODULES.items()
                   if "nnscratch.cli" in targets and m != "nnscratch.__main__")
    assert not users


def test_the_check_sees_a_wrong_import(tmp_path, monkeypatch):
    """A math module that imported the loop would be caught."""
    bad = PACKAGE / "losses.py"
    source = bad.read_text() + "\nfrom .training.loop import fit\n"
    monkeypatch.setattr(pathlib.Path, "read_text",
                        lambda self, *a, **k: source if self == bad else
                        open(self, encoding="utf-8").read())
    assert "nnscratch.training.loop" in imports(bad)
    assert layer("nnscratch.training.loop") != "math"


def test_the_package_docstring_names_the_module_of_every_equation_family():
    """Two hops from ``nnscratch/__init__.py`` to any equation: its docstring names, for each
    family of labels cited in the code (``bce-*``, ``sn-*``...), the module that cites it."""
    import re

    import nnscratch
    doc = nnscratch.__doc__
    for path in PACKAGE.rglob("*.py"):
        for family in set(re.findall(r"\(([a-z]+)-[0-9]+\)", path.read_text())):
            rel = path.relative_to(PACKAGE).as_posix()
            entry = re.search(rf"``{re.escape(rel)}`` \(([^)]*)\)", doc)
            if f"{family}-*" in (entry.group(1) if entry else ""):
                continue
            # cited here, derived elsewhere: some module must be named for the family
            assert f"({family}-*" in doc or f" {family}-*" in doc, \
                f"{rel} cites ({family}-N), which nnscratch's docstring does not place"
