"""The README's quick start runs as written."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_start_python_block(monkeypatch):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["outs"]["output"].shape == (4, 5)
    assert str(namespace["t"]) == "fixed<16,6,RND_CONV,SAT>"
    assert [n.op_type for n in namespace["opt"].nodes] == ["Dense"] * 4 + ["Softmax"]
    assert namespace["fixed"]["output"].shape == (4, 5)
    assert os.path.exists(ROOT / "examples" / "jet_mlp" / "sample.npz")
