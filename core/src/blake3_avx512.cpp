// BLAKE3 hash_many with AVX-512: 16 inputs in 16 lanes, one state word per zmm register.
// Compiled with -mavx512f -mavx512vl -mavx512bw; only called when the CPU reports AVX-512.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_epi32() as the ignored source of
// unmasked operations, which -Wmaybe-uninitialized reports inside the system header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "blake3_impl.hpp"

namespace cairn::blake3::detail {

namespace {

struct Ops512 {
  static __m512i add(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }
  static __m512i xor_(__m512i a, __m512i b) { return _mm512_xor_si512(a, b); }
  static __m512i rot16(__m512i x) { return _mm512_ror_epi32(x, 16); }
  static __m512i rot12(__m512i x) { return _mm512_ror_epi32(x, 12); }
  static __m512i rot8(__m512i x) { return _mm512_ror_epi32(x, 8); }
  static __m512i rot7(__m512i x) { return _mm512_ror_epi32(x, 7); }
};

// Moves 128-bit lanes: two from `a`, then two from `b`, chosen by Imm (vshufi32x4).
template <int Imm>
inline __m512i shuffle128(__m512i a, __m512i b) {
  return _mm512_shuffle_i32x4(a, b, Imm);
}

// rows[i] holds the 16 message words of input i; afterwards m[j] holds word j of every input.
inline void transpose16(const __m512i rows[16], __m512i m[16]) {
  __m512i t[16];
  for (int p = 0; p < 8; ++p) {
    t[2 * p] = _mm512_unpacklo_epi32(rows[2 * p], rows[2 * p + 1]);
    t[2 * p + 1] = _mm512_unpackhi_epi32(rows[2 * p], rows[2 * p + 1]);
  }
  // u[4q + c]: in 128-bit lane L, word 4L + c of rows 4q .. 4q+3.
  __m512i u[16];
  for (int q = 0; q < 4; ++q) {
    u[4 * q + 0] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
    u[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
  }
  // For each c, a 4x4 transpose of 128-bit lanes across u[c], u[4+c], u[8+c], u[12+c].
  for (int c = 0; c < 4; ++c) {
    const __m512i x0 = shuffle128<0x44>(u[c], u[4 + c]);
    const __m512i x1 = shuffle128<0xEE>(u[c], u[4 + c]);
    const __m512i y0 = shuffle128<0x44>(u[8 + c], u[12 + c]);
    const __m512i y1 = shuffle128<0xEE>(u[8 + c], u[12 + c]);
    m[c] = shuffle128<0x88>(x0, y0);
    m[4 + c] = shuffle128<0xDD>(x0, y0);
    m[8 + c] = shuffle128<0x88>(x1, y1);
    m[12 + c] = shuffle128<0xDD>(x1, y1);
  }
}

// Hashes inputs [0, lanes) of a batch (lanes <= 16); missing lanes repeat input 0 and their
// outputs are dropped, so a short batch costs a full one but needs no slower kernel.
void hash16(const std::uint8_t* base, std::size_t stride, std::size_t lanes, std::size_t blocks,
            std::uint64_t counter, bool increment_counter, std::uint8_t flags,
            std::uint8_t flags_start, std::uint8_t flags_end, std::uint8_t* out) {
  alignas(64) std::uint32_t lo[16];
  alignas(64) std::uint32_t hi[16];
  for (int i = 0; i < 16; ++i) {
    const std::uint64_t c = counter + (increment_counter ? static_cast<std::uint64_t>(i) : 0);
    lo[i] = static_cast<std::uint32_t>(c);
    hi[i] = static_cast<std::uint32_t>(c >> 32);
  }
  const __m512i counter_lo = _mm512_load_si512(lo);
  const __m512i counter_hi = _mm512_load_si512(hi);
  __m512i h[8];
  for (int i = 0; i < 8; ++i) h[i] = _mm512_set1_epi32(static_cast<int>(kIV[i]));
  const __m512i block_len = _mm512_set1_epi32(64);

  const std::uint8_t* inputs[16];
  for (std::size_t i = 0; i < 16; ++i) inputs[i] = base + (i < lanes ? i : 0) * stride;

  for (std::size_t b = 0; b < blocks; ++b) {
    __m512i rows[16];
    for (int i = 0; i < 16; ++i) {
      const std::uint8_t* p = inputs[i] + b * 64;
      rows[i] = _mm512_loadu_si512(p);
      _mm_prefetch(reinterpret_cast<const char*>(p + 256), _MM_HINT_T0);
    }
    __m512i m[16];
    transpose16(rows, m);
    std::uint8_t f = flags;
    if (b == 0) f |= flags_start;
    if (b + 1 == blocks) f |= flags_end;
    __m512i v[16] = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7],
                     _mm512_set1_epi32(static_cast<int>(kIV[0])),
                     _mm512_set1_epi32(static_cast<int>(kIV[1])),
                     _mm512_set1_epi32(static_cast<int>(kIV[2])),
                     _mm512_set1_epi32(static_cast<int>(kIV[3])),
                     counter_lo, counter_hi, block_len, _mm512_set1_epi32(f)};
    for (int r = 0; r < 7; ++r) round_fn<Ops512>(v, m, r);
    for (int i = 0; i < 8; ++i) h[i] = _mm512_xor_si512(v[i], v[i + 8]);
  }

  alignas(64) std::uint32_t words[8][16];
  for (int i = 0; i < 8; ++i) _mm512_store_si512(words[i], h[i]);
  for (std::size_t lane = 0; lane < lanes; ++lane) {
    std::uint32_t cv[8];
    for (int i = 0; i < 8; ++i) cv[i] = words[i][lane];
    std::memcpy(out + 32 * lane, cv, 32);
  }
}

}  // namespace

void hash_many_avx512(const std::uint8_t* base, std::size_t stride, std::size_t n_inputs,
                      std::size_t blocks, std::uint64_t counter, bool increment_counter,
                      std::uint8_t flags, std::uint8_t flags_start, std::uint8_t flags_end,
                      std::uint8_t* out) {
  while (n_inputs >= 16) {
    hash16(base, stride, 16, blocks, counter, increment_counter, flags, flags_start, flags_end,
           out);
    base += 16 * stride;
    out += 16 * 32;
    if (increment_counter) counter += 16;
    n_inputs -= 16;
  }
  if (n_inputs > 0) {
    hash16(base, stride, n_inputs, blocks, counter, increment_counter, flags, flags_start, flags_end,
           out);
  }
}

}  // namespace cairn::blake3::detail
