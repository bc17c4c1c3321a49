"""Code generators: HLS C++ projects and TVM kernels."""
