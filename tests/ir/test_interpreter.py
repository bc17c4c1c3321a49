"""The interpreter's input checking."""

import numpy as np
import pytest

import accelgen
from accelgen.errors import InputError
from tests.ir.test_graph import small_graph


def test_runs_and_checks_inputs():
    g, *_ = small_graph()
    out = accelgen.run(g, {"x": np.array([[-1, 2, -3, 4]], np.float32)})
    np.testing.assert_array_equal(out["b"], [[1, 3, 1, 5]])
    with pytest.raises(InputError, match="missing 'x'"):
        accelgen.run(g, {})
    with pytest.raises(InputError, match="unknown 'y'"):
        accelgen.run(g, {"x": np.zeros((1, 4), np.float32), "y": 1})
    with pytest.raises(InputError, match=r"shape \(4,\)"):
        accelgen.run(g, {"x": np.zeros(4, np.float32)})
    with pytest.raises(InputError, match="dict"):
        accelgen.run(g, [np.zeros((1, 4))])


def test_float64_inputs_are_converted_but_other_kinds_refused():
    g, *_ = small_graph()
    out = accelgen.run(g, {"x": np.zeros((1, 4))})
    assert out["b"].dtype == np.float32
    with pytest.raises(InputError, match="dtype"):
        accelgen.run(g, {"x": np.zeros((1, 4), dtype=complex)})
