"""Vitis/Vivado HLS C++ backend."""
