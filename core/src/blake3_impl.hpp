// Private to the BLAKE3 sources: constants from the specification, the round function shared by
// the portable and SIMD kernels, and the kernel signatures. Keep this header free of standard
// library containers: it is included by translation units compiled for AVX2/AVX-512, and inline
// library code emitted there could be picked by the linker for the portable build.
#pragma once
#include <cstddef>
#include <cstdint>

namespace cairn::blake3::detail {

// The initialisation vector (the SHA-256 IV).
constexpr std::uint32_t kIV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                                  0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

// Domain flags.
constexpr std::uint8_t kChunkStart = 1;
constexpr std::uint8_t kChunkEnd = 2;
constexpr std::uint8_t kParent = 4;
constexpr std::uint8_t kRoot = 8;

// Message word order for each of the 7 rounds: row r is the specification's permutation
// [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8] applied r times.
constexpr std::uint8_t kSchedule[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

// One round on a 4x4 state of "words" (scalars or SIMD vectors holding one word per lane):
// the G function on the four columns, then on the four diagonals. Ops supplies add, xor and the
// right rotations by 16, 12, 8 and 7. Written step-interleaved so the four G's run side by side.
template <class Ops, class V>
inline void round_fn(V v[16], const V m[16], int r) {
  const std::uint8_t* s = kSchedule[r];
  // Columns: G(0,4,8,12) G(1,5,9,13) G(2,6,10,14) G(3,7,11,15) with message pairs 0..7.
  v[0] = Ops::add(Ops::add(v[0], m[s[0]]), v[4]);
  v[1] = Ops::add(Ops::add(v[1], m[s[2]]), v[5]);
  v[2] = Ops::add(Ops::add(v[2], m[s[4]]), v[6]);
  v[3] = Ops::add(Ops::add(v[3], m[s[6]]), v[7]);
  v[12] = Ops::rot16(Ops::xor_(v[12], v[0]));
  v[13] = Ops::rot16(Ops::xor_(v[13], v[1]));
  v[14] = Ops::rot16(Ops::xor_(v[14], v[2]));
  v[15] = Ops::rot16(Ops::xor_(v[15], v[3]));
  v[8] = Ops::add(v[8], v[12]);
  v[9] = Ops::add(v[9], v[13]);
  v[10] = Ops::add(v[10], v[14]);
  v[11] = Ops::add(v[11], v[15]);
  v[4] = Ops::rot12(Ops::xor_(v[4], v[8]));
  v[5] = Ops::rot12(Ops::xor_(v[5], v[9]));
  v[6] = Ops::rot12(Ops::xor_(v[6], v[10]));
  v[7] = Ops::rot12(Ops::xor_(v[7], v[11]));
  v[0] = Ops::add(Ops::add(v[0], m[s[1]]), v[4]);
  v[1] = Ops::add(Ops::add(v[1], m[s[3]]), v[5]);
  v[2] = Ops::add(Ops::add(v[2], m[s[5]]), v[6]);
  v[3] = Ops::add(Ops::add(v[3], m[s[7]]), v[7]);
  v[12] = Ops::rot8(Ops::xor_(v[12], v[0]));
  v[13] = Ops::rot8(Ops::xor_(v[13], v[1]));
  v[14] = Ops::rot8(Ops::xor_(v[14], v[2]));
  v[15] = Ops::rot8(Ops::xor_(v[15], v[3]));
  v[8] = Ops::add(v[8], v[12]);
  v[9] = Ops::add(v[9], v[13]);
  v[10] = Ops::add(v[10], v[14]);
  v[11] = Ops::add(v[11], v[15]);
  v[4] = Ops::rot7(Ops::xor_(v[4], v[8]));
  v[5] = Ops::rot7(Ops::xor_(v[5], v[9]));
  v[6] = Ops::rot7(Ops::xor_(v[6], v[10]));
  v[7] = Ops::rot7(Ops::xor_(v[7], v[11]));
  // Diagonals: G(0,5,10,15) G(1,6,11,12) G(2,7,8,13) G(3,4,9,14) with message pairs 8..15.
  v[0] = Ops::add(Ops::add(v[0], m[s[8]]), v[5]);
  v[1] = Ops::add(Ops::add(v[1], m[s[10]]), v[6]);
  v[2] = Ops::add(Ops::add(v[2], m[s[12]]), v[7]);
  v[3] = Ops::add(Ops::add(v[3], m[s[14]]), v[4]);
  v[15] = Ops::rot16(Ops::xor_(v[15], v[0]));
  v[12] = Ops::rot16(Ops::xor_(v[12], v[1]));
  v[13] = Ops::rot16(Ops::xor_(v[13], v[2]));
  v[14] = Ops::rot16(Ops::xor_(v[14], v[3]));
  v[10] = Ops::add(v[10], v[15]);
  v[11] = Ops::add(v[11], v[12]);
  v[8] = Ops::add(v[8], v[13]);
  v[9] = Ops::add(v[9], v[14]);
  v[5] = Ops::rot12(Ops::xor_(v[5], v[10]));
  v[6] = Ops::rot12(Ops::xor_(v[6], v[11]));
  v[7] = Ops::rot12(Ops::xor_(v[7], v[8]));
  v[4] = Ops::rot12(Ops::xor_(v[4], v[9]));
  v[0] = Ops::add(Ops::add(v[0], m[s[9]]), v[5]);
  v[1] = Ops::add(Ops::add(v[1], m[s[11]]), v[6]);
  v[2] = Ops::add(Ops::add(v[2], m[s[13]]), v[7]);
  v[3] = Ops::add(Ops::add(v[3], m[s[15]]), v[4]);
  v[15] = Ops::rot8(Ops::xor_(v[15], v[0]));
  v[12] = Ops::rot8(Ops::xor_(v[12], v[1]));
  v[13] = Ops::rot8(Ops::xor_(v[13], v[2]));
  v[14] = Ops::rot8(Ops::xor_(v[14], v[3]));
  v[10] = Ops::add(v[10], v[15]);
  v[11] = Ops::add(v[11], v[12]);
  v[8] = Ops::add(v[8], v[13]);
  v[9] = Ops::add(v[9], v[14]);
  v[5] = Ops::rot7(Ops::xor_(v[5], v[10]));
  v[6] = Ops::rot7(Ops::xor_(v[6], v[11]));
  v[7] = Ops::rot7(Ops::xor_(v[7], v[8]));
  v[4] = Ops::rot7(Ops::xor_(v[4], v[9]));
}

// Hashes `n_inputs` inputs, each `blocks` full 64-byte blocks long, the i-th starting at
// base + i * stride, and writes each one's 32-byte output (its CV) to out + 32 * i.
// Input i uses counter `counter + i` when `increment_counter`, else `counter`. Every block gets
// `flags`; the first also `flags_start`, the last also `flags_end`. Chunks: stride 1024, 16
// blocks, incrementing counter, CHUNK_START / CHUNK_END. Parents: stride 64, 1 block, counter 0,
// PARENT. A kernel reads a whole batch of inputs before writing its outputs, so `out` may alias
// `base` when out + 32 * i <= base + stride * i (in-place parent reduction).
using HashManyFn = void (*)(const std::uint8_t* base, std::size_t stride, std::size_t n_inputs,
                            std::size_t blocks, std::uint64_t counter, bool increment_counter,
                            std::uint8_t flags, std::uint8_t flags_start, std::uint8_t flags_end,
                            std::uint8_t* out);

void hash_many_portable(const std::uint8_t* base, std::size_t stride, std::size_t n_inputs,
                        std::size_t blocks, std::uint64_t counter, bool increment_counter,
                        std::uint8_t flags, std::uint8_t flags_start, std::uint8_t flags_end,
                        std::uint8_t* out);
#if defined(CAIRN_X86)
void hash_many_avx2(const std::uint8_t* base, std::size_t stride, std::size_t n_inputs,
                    std::size_t blocks, std::uint64_t counter, bool increment_counter,
                    std::uint8_t flags, std::uint8_t flags_start, std::uint8_t flags_end,
                    std::uint8_t* out);
void hash_many_avx512(const std::uint8_t* base, std::size_t stride, std::size_t n_inputs,
                      std::size_t blocks, std::uint64_t counter, bool increment_counter,
                      std::uint8_t flags, std::uint8_t flags_start, std::uint8_t flags_end,
                      std::uint8_t* out);
#endif

}  // namespace cairn::blake3::detail
