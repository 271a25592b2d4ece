// Stand-in for cuda/profile_gpu.cu when the build has no CUDA.
#include <stdexcept>

#include "cairn/profile_gpu.hpp"

namespace cairn::gpu::prof {

namespace {

[[noreturn]] void no_cuda() {
  throw std::runtime_error(
      "numeric_stats: unavailable on the GPU: no CUDA in this build (rebuild with a CUDA compiler "
      "and CAIRN_CUDA=ON, or use device='cpu')");
}

}  // namespace

std::vector<NumericStats> numeric_stats_device(const std::vector<DeviceColumn>&, const SketchTable&,
                                               uintptr_t) {
  no_cuda();
}

double numeric_stats_device_seconds(const std::vector<DeviceColumn>&, const SketchTable&, int) {
  no_cuda();
}

}  // namespace cairn::gpu::prof
