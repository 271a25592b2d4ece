// Run-time CPU feature detection for choosing SIMD paths.
#include "cairn/build_info.hpp"

namespace cairn {

namespace {
SimdLevel detect() {
#if defined(CAIRN_X86) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw")) {
    return SimdLevel::AVX512;
  }
  if (__builtin_cpu_supports("avx2")) return SimdLevel::AVX2;
  if (__builtin_cpu_supports("sse4.1")) return SimdLevel::SSE41;
#endif
  return SimdLevel::Portable;
}
}  // namespace

SimdLevel detected_simd_level() {
  static const SimdLevel level = detect();
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2: return "avx2";
    case SimdLevel::SSE41: return "sse4.1";
    default: return "portable";
  }
}

}  // namespace cairn
