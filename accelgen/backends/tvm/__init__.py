"""Apache TVM backend (Relax): CPU and CUDA kernels. The only code in accelgen that imports tvm."""
