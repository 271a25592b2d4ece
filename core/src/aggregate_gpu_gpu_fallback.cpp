// Stand-in for cuda/aggregate_gpu.cu when the build has no CUDA.
#include <stdexcept>

#include "cairn/aggregate_gpu.hpp"

namespace cairn::gpu {

void segment_reduce_device(const void*, ValueType, int64_t, const int64_t*, int64_t,
                           const SegmentOutputs&, int, uintptr_t) {
  throw std::runtime_error(
      "segment_reduce_device: segmented reductions on the GPU are unavailable: no CUDA in this "
      "build (rebuild with a CUDA compiler and CAIRN_CUDA=ON, or reduce on the CPU)");
}

}  // namespace cairn::gpu
