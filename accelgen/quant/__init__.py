"""Quantization: precision inference from calibration data, and fixed-point graphs that run bit-exactly."""

from accelgen.quant.calibrate import calibrate
from accelgen.quant.context import QuantConfig
from accelgen.quant.quantize import quantize

__all__ = ["QuantConfig", "calibrate", "quantize"]
