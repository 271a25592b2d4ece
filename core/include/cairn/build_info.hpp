// Build and run-time facts about the core: version, SIMD level, CUDA availability.
#pragma once
#include <string>

namespace cairn {

// Instruction-set levels the CPU code can use, best last.
enum class SimdLevel { Portable = 0, SSE41 = 1, AVX2 = 2, AVX512 = 3 };

// The best SIMD level this CPU supports (detected once, at first call).
SimdLevel detected_simd_level();
const char* simd_level_name(SimdLevel level);

// Whether CUDA kernels were compiled into this build.
bool cuda_compiled();

// Whether a CUDA GPU is usable now: device 0 is visible and this build has kernels for its compute
// capability (cairn/gpu_arch.hpp). When it is not, `reason` says why; the name and compute
// capability are filled in whenever a device was found.
struct GpuStatus {
  bool usable = false;
  int device_count = 0;
  std::string device_name;
  std::string reason;
  int compute_capability_major = 0;
  int compute_capability_minor = 0;
};
GpuStatus gpu_status();

}  // namespace cairn
