// CUDA errors as exceptions with readable messages, shared by the .cu files.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace cairn::gpu {

// Throws std::runtime_error naming what was being done when `err` is not cudaSuccess.
inline void check_cuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so that later calls start clean
  throw std::runtime_error(std::string("CUDA error while ") + what + ": " + cudaGetErrorName(err) +
                           " (" + cudaGetErrorString(err) + ")");
}

// Throws std::runtime_error saying why when no CUDA GPU is usable.
inline void require_gpu() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string("no usable CUDA GPU: the CUDA runtime reports ") +
                             cudaGetErrorString(err) + " (no driver or no GPU on this machine?)");
  }
  if (count == 0) throw std::runtime_error("no usable CUDA GPU: no CUDA device is visible");
}

}  // namespace cairn::gpu
