"""The layering rules of docs/ARCHITECTURE: onnx only under frontend/, tvm only under backends/tvm/, jinja2 only
under backends/."""

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "accelgen"
RULES = {"onnx": "frontend", "onnxruntime": None, "tvm": "backends/tvm", "jinja2": "backends"}


def imports(path: Path) -> set[str]:
    text = path.read_text()
    return set(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_][\w]*)", text, re.M))


@pytest.mark.parametrize("module, home", RULES.items())
def test_imports_stay_in_their_layer(module, home):
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if module in imports(p) and (home is None or not str(p.relative_to(PACKAGE)).startswith(home))]
    assert not offenders, f"{module} imported outside accelgen/{home or '(nowhere allowed)'}: {offenders}"
