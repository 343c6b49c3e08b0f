"""Imports point one way (docs/architecture.md): base <- core <- backends, store <- transforms
<- pipelines <- the command line. A module that imports from a layer above it fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "speechmill"

BASE = {"schemas", "errors", "config", "faults", "progress", "__init__"}
ALLOWED: dict[str, set[str]] = {
    "base": BASE,
    "core": BASE | {"core"},
    "backends": BASE | {"core", "backends"},
    "store": BASE | {"core", "store"},
    "transforms": BASE | {"core", "backends", "store", "transforms"},
    "pipelines": BASE | {"core", "backends", "store", "transforms", "pipelines"},
    "exports": BASE | {"core", "store", "exports"},
    "reports": BASE | {"core", "store", "reports"},
    "report_html": BASE | {"core", "store", "reports", "report_html"},
    "corpus_exports": BASE | {"core", "store", "exports", "corpus_exports"},
}
TOP = {"cli", "demo", "schema_docs", "config_docs"}  # the command line: may import anything


def component(module: str) -> str:
    """`speechmill.core.text.metrics` -> `core`; `speechmill` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(comp: str) -> str:
    return "base" if comp in BASE else comp


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("speechmill")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here.split(".")[: -node.level]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.startswith("speechmill"):
                if mod == "speechmill":  # `from speechmill import x`: x is the module
                    out += [(node.lineno, f"speechmill.{a.name}") for a in node.names]
                else:
                    out.append((node.lineno, mod))
    return out


def violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")
        me = component(mod)
        if me in TOP:
            continue
        allowed = ALLOWED[layer(me)]
        for line, target in imports(path):
            other = component(target)
            if other == "__version__":
                continue
            if other not in allowed:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({me}) imports {target}")
    return bad


def test_every_module_belongs_to_a_layer() -> None:
    comps = {
        component(p.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", "."))
        for p in PACKAGE.rglob("*.py")
    }
    unknown = {c for c in comps if c not in TOP and layer(c) not in ALLOWED}
    assert unknown == set()


def test_imports_point_down_the_layers() -> None:
    assert violations() == []


def test_the_rule_catches_an_arrow_back_up(tmp_path: Path) -> None:
    f = PACKAGE / "core" / "_layer_probe.py"
    f.write_text("from speechmill.transforms.common import reject\n", encoding="utf-8")
    try:
        assert any("_layer_probe.py:1" in v for v in violations())
    finally:
        f.unlink()
