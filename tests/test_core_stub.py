"""The `_core.pyi` stub describes the compiled module as it is."""
import ast
from pathlib import Path

import qvl_local
from qvl_local import _core


def _stub_names() -> dict[str, set[str]]:
    stub = Path(qvl_local.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text())
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            names[node.name] = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
    return names


def test_stub_lists_every_public_name() -> None:
    stub = _stub_names()
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert set(stub) == public
    for name, members in stub.items():
        if members:
            actual = {m for m in dir(getattr(_core, name)) if not m.startswith("_")} | {"__init__"}
            assert members <= actual, (name, members - actual)
