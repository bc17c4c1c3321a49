"""Vitis/Vivado HLS C++ backend: `compile(graph, ...)` writes an HLS project (firmware, testbench, build script)
whose fixed-point numbers equal accelgen's interpreter bit for bit, and returns an `HlsProject` that can build and
run its C simulation."""

from accelgen.backends.hls.estimate import estimate
from accelgen.backends.hls.flow import compile
from accelgen.backends.hls.project import HlsProject

__all__ = ["HlsProject", "compile", "estimate"]
