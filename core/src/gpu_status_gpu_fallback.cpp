// Stand-in for cuda/gpu_status.cu when the build has no CUDA.
#include "cairn/build_info.hpp"
#include "cairn/gpu_arch.hpp"

namespace cairn {

bool cuda_compiled() { return false; }

const char* built_cuda_architectures() { return ""; }

GpuStatus gpu_status() {
  GpuStatus status;
  status.reason = "this build of cairn has no CUDA kernels (no CUDA compiler or no GPU visible at build time, or "
                  "CAIRN_CUDA=OFF; rebuild with -C cmake.define.CAIRN_CUDA=ON)";
  return status;
}

}  // namespace cairn
