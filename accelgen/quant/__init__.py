"""Quantization: precision inference from calibration data, and fixed-point graphs that run bit-exactly."""

from accelgen.quant.calibrate import calibrate
from accelgen.quant.config import load_config
from accelgen.quant.context import QuantConfig
from accelgen.quant.quantize import quantize
from accelgen.quant.report import QuantizationReport, quantization_report
from accelgen.quant.search import search_precision
from accelgen.passes.smooth import smooth_quant

__all__ = ["QuantConfig", "QuantizationReport", "calibrate", "load_config", "quantization_report", "quantize",
           "search_precision", "smooth_quant"]
