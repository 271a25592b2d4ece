// Which GPUs the compiled CUDA kernels can run on. A build holds SASS (machine code) for some
// architectures and PTX (portable code the driver compiles at load time) for others, as chosen by
// CMAKE_CUDA_ARCHITECTURES ("80-real;90": sm_80 SASS, sm_90 SASS and compute_90 PTX). A device
// with no matching SASS and no PTX it can compile would fail at the first kernel launch, so the
// GPU status refuses it up front, saying why. Pure logic, compiled with or without CUDA.
#pragma once
#include <string>
#include <vector>

namespace cairn {

struct CudaArch {
  int major = 0;
  int minor = 0;
  bool sass = false;           // machine code for this architecture
  bool ptx = false;            // PTX that JIT-compiles for this architecture and newer
  bool arch_specific = false;  // an "a" target (e.g. 90a): runs on exactly that compute capability
};

// Parses a CMAKE_CUDA_ARCHITECTURES value, entries separated by ',' or ';' ("80-real,90",
// "90a-real", "75-virtual"). Entries it cannot place (all, all-major, native) are skipped and
// set `unknown` when given.
std::vector<CudaArch> parse_cuda_architectures(const std::string& spec, bool* unknown = nullptr);

// Empty when a device of compute capability major.minor can run kernels built for `spec` (or
// when `spec` cannot be judged, e.g. "native"), else a sentence saying why not.
std::string cuda_arch_mismatch(const std::string& spec, int major, int minor);

// The CMAKE_CUDA_ARCHITECTURES this build's kernels were compiled for ("" without CUDA).
const char* built_cuda_architectures();

}  // namespace cairn
