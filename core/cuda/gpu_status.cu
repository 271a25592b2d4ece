// Run-time GPU detection through the CUDA runtime (linked statically).
#include <cuda_runtime.h>

#include <string>

#include "cairn/build_info.hpp"
#include "cairn/gpu_arch.hpp"

#ifndef CAIRN_CUDA_ARCHS
#error "CMake passes CAIRN_CUDA_ARCHS, the CMAKE_CUDA_ARCHITECTURES the kernels are built for"
#endif

namespace cairn {

bool cuda_compiled() { return true; }

const char* built_cuda_architectures() { return CAIRN_CUDA_ARCHS; }

GpuStatus gpu_status() {
  GpuStatus status;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    status.reason = std::string("CUDA runtime reports: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return status;
  }
  status.device_count = count;
  if (count == 0) {
    status.reason = "no CUDA device is visible";
    return status;
  }
  cudaDeviceProp prop{};
  err = cudaGetDeviceProperties(&prop, 0);
  if (err != cudaSuccess) {
    status.reason = std::string("cannot query device 0: ") + cudaGetErrorString(err);
    cudaGetLastError();
    return status;
  }
  status.device_name = prop.name;
  status.compute_capability_major = prop.major;
  status.compute_capability_minor = prop.minor;
  // A card the kernels were not built for (no SASS, no PTX the driver can compile) would fail at
  // the first launch; refuse it here, with the reason, so that "auto" keeps to the CPU.
  status.reason = cuda_arch_mismatch(CAIRN_CUDA_ARCHS, prop.major, prop.minor);
  status.usable = status.reason.empty();
  return status;
}

}  // namespace cairn
