// accelgen HLS kernels: the arbitrary-precision types. Synthesis, Vitis C simulation and the testbench use the
// Xilinx ap_fixed/ap_int headers; accelgen's own g++ C-simulation build defines AG_CSIM_FAST_TYPES to use its
// integer-based stand-in (csim/ag_fast_types.h), which computes the same bits and compiles several times faster.
#ifndef AG_TYPES_H_
#define AG_TYPES_H_

#ifdef AG_CSIM_FAST_TYPES
#include "ag_fast_types.h"
#else
#include "ap_fixed.h"
#include "ap_int.h"
#endif

#endif
