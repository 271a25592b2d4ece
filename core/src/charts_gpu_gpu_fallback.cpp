// Stand-in for cuda/charts_gpu.cu when the build has no CUDA.
#include <stdexcept>
#include <string>

#include "cairn/charts_gpu.hpp"

namespace cairn::gpu {

namespace {

[[noreturn]] void no_cuda(const char* what) {
  throw std::runtime_error(std::string(what) +
                           ": unavailable on the GPU: no CUDA in this build (rebuild with a CUDA "
                           "compiler and CAIRN_CUDA=ON, or use device='cpu')");
}

}  // namespace

void segment_first_last_device(const void*, ValueType, const int64_t*, int64_t, double*, double*,
                               uintptr_t) {
  no_cuda("segment_first_last_device");
}

void segment_histogram_device(const void*, ValueType, const int64_t*, int64_t, const double*,
                              int64_t, int64_t*, int64_t*, int64_t*, int64_t*, uintptr_t) {
  no_cuda("segment_histogram_device");
}

void downsample_minmax_device(const void*, XType, const void*, ValueType, int64_t, int64_t,
                              int64_t*, uintptr_t) {
  no_cuda("downsample_minmax_device");
}

void lttb_device(const void*, XType, const void*, ValueType, int64_t, int64_t, int64_t*,
                 uintptr_t) {
  no_cuda("lttb_device");
}

}  // namespace cairn::gpu
