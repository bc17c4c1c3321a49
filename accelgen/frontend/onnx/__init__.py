"""The ONNX frontend: the only code in accelgen that imports onnx."""
