// BLAKE3 hash_many with AVX2: 8 inputs in 8 lanes, one state word per ymm register.
// Compiled with -mavx2; only called when the CPU reports AVX2.
#include <immintrin.h>

#include <cstring>

#include "blake3_impl.hpp"

namespace cairn::blake3::detail {

namespace {

struct Ops256 {
  static __m256i add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
  static __m256i xor_(__m256i a, __m256i b) { return _mm256_xor_si256(a, b); }
  static __m256i rot16(__m256i x) {
    const __m256i mask = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
                                          2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    return _mm256_shuffle_epi8(x, mask);
  }
  static __m256i rot12(__m256i x) {
    return _mm256_or_si256(_mm256_srli_epi32(x, 12), _mm256_slli_epi32(x, 20));
  }
  static __m256i rot8(__m256i x) {
    const __m256i mask = _mm256_setr_epi8(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
                                          1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
    return _mm256_shuffle_epi8(x, mask);
  }
  static __m256i rot7(__m256i x) {
    return _mm256_or_si256(_mm256_srli_epi32(x, 7), _mm256_slli_epi32(x, 25));
  }
};

// rows[i] holds 8 consecutive message words of input i; afterwards m[j] holds word j of each.
inline void transpose8(const __m256i rows[8], __m256i m[8]) {
  __m256i t[8];
  for (int p = 0; p < 4; ++p) {
    t[2 * p] = _mm256_unpacklo_epi32(rows[2 * p], rows[2 * p + 1]);
    t[2 * p + 1] = _mm256_unpackhi_epi32(rows[2 * p], rows[2 * p + 1]);
  }
  // u[4q + c]: in 128-bit lane L, word 4L + c of rows 4q .. 4q+3.
  __m256i u[8];
  for (int q = 0; q < 2; ++q) {
    u[4 * q + 0] = _mm256_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 1] = _mm256_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 2] = _mm256_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
    u[4 * q + 3] = _mm256_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    m[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
    m[4 + c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
  }
}

// Hashes inputs [0, lanes) of a batch (lanes <= 8); missing lanes repeat input 0 and their
// outputs are dropped, so a short batch costs a full one but needs no slower kernel.
void hash8(const std::uint8_t* base, std::size_t stride, std::size_t lanes, std::size_t blocks,
           std::uint64_t counter, bool increment_counter, std::uint8_t flags,
           std::uint8_t flags_start, std::uint8_t flags_end, std::uint8_t* out) {
  alignas(32) std::uint32_t lo[8];
  alignas(32) std::uint32_t hi[8];
  for (int i = 0; i < 8; ++i) {
    const std::uint64_t c = counter + (increment_counter ? static_cast<std::uint64_t>(i) : 0);
    lo[i] = static_cast<std::uint32_t>(c);
    hi[i] = static_cast<std::uint32_t>(c >> 32);
  }
  const __m256i counter_lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo));
  const __m256i counter_hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi));
  __m256i h[8];
  for (int i = 0; i < 8; ++i) h[i] = _mm256_set1_epi32(static_cast<int>(kIV[i]));
  const __m256i block_len = _mm256_set1_epi32(64);

  const std::uint8_t* inputs[8];
  for (std::size_t i = 0; i < 8; ++i) inputs[i] = base + (i < lanes ? i : 0) * stride;

  for (std::size_t b = 0; b < blocks; ++b) {
    __m256i lo_rows[8];
    __m256i hi_rows[8];
    for (int i = 0; i < 8; ++i) {
      const std::uint8_t* p = inputs[i] + b * 64;
      lo_rows[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      hi_rows[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
      _mm_prefetch(reinterpret_cast<const char*>(p + 256), _MM_HINT_T0);
    }
    __m256i m[16];
    transpose8(lo_rows, m);
    transpose8(hi_rows, m + 8);
    std::uint8_t f = flags;
    if (b == 0) f |= flags_start;
    if (b + 1 == blocks) f |= flags_end;
    __m256i v[16] = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
                     _mm256_set1_epi32(static_cast<int>(kIV[0])),
                     _mm256_set1_epi32(static_cast<int>(kIV[1])),
                     _mm256_set1_epi32(static_cast<int>(kIV[2])),
                     _mm256_set1_epi32(static_cast<int>(kIV[3])),
                     counter_lo, counter_hi, block_len, _mm256_set1_epi32(f)};
    for (int r = 0; r < 7; ++r) round_fn<Ops256>(v, m, r);
    for (int i = 0; i < 8; ++i) h[i] = _mm256_xor_si256(v[i], v[i + 8]);
  }

  alignas(32) std::uint32_t words[8][8];
  for (int i = 0; i < 8; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(words[i]), h[i]);
  for (std::size_t lane = 0; lane < lanes; ++lane) {
    std::uint32_t cv[8];
    for (int i = 0; i < 8; ++i) cv[i] = words[i][lane];
    std::memcpy(out + 32 * lane, cv, 32);
  }
}

}  // namespace

void hash_many_avx2(const std::uint8_t* base, std::size_t stride, std::size_t n_inputs,
                    std::size_t blocks, std::uint64_t counter, bool increment_counter,
                    std::uint8_t flags, std::uint8_t flags_start, std::uint8_t flags_end,
                    std::uint8_t* out) {
  while (n_inputs >= 8) {
    hash8(base, stride, 8, blocks, counter, increment_counter, flags, flags_start, flags_end,
          out);
    base += 8 * stride;
    out += 8 * 32;
    if (increment_counter) counter += 8;
    n_inputs -= 8;
  }
  if (n_inputs > 0) {
    hash8(base, stride, n_inputs, blocks, counter, increment_counter, flags, flags_start, flags_end,
          out);
  }
}

}  // namespace cairn::blake3::detail
