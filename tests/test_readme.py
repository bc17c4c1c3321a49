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


def test_main_job_command(tmp_path, capsys, monkeypatch):
    """The README's first command (after the install) compiles the example and builds its C simulation."""
    from accelgen.cli import main

    text = (ROOT / "README.md").read_text()
    line = re.search(r"```bash\n(.*?)\n```", text, re.S).group(1)
    command = line.split("&& accelgen ", 1)[1].split()
    assert command[0] == "compile" and "--csim" in command
    command[command.index("--out") + 1] = str(tmp_path / "prj")
    monkeypatch.chdir(ROOT)
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "estimate:" in out and (tmp_path / "prj" / "report" / "estimate.html").is_file()
    assert list((tmp_path / "prj" / "csim" / "build").glob("libcsim_*.so"))
