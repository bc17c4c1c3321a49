"""Generated docs stay in step with the code."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_supported_ops_table_is_current():
    spec = importlib.util.spec_from_file_location("make_ops_table", ROOT / "docs" / "make_ops_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "docs" / "supported_ops.md").read_text()
    assert committed == module.render(), "docs/supported_ops.md is stale: run python docs/make_ops_table.py"
