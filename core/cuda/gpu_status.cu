// Run-time GPU detection through the CUDA runtime (linked statically).
#include <cuda_runtime.h>

#include <string>

#include "cairn/build_info.hpp"

namespace cairn {

bool cuda_compiled() { return true; }

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
  status.usable = true;
  return status;
}

}  // namespace cairn
