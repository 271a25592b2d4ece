// BLAKE3 building blocks shared by the CUDA kernels (cuda/blake3_gpu.cu) and their host emulation
// (src/blake3_gpu_emulation.cpp), written from the BLAKE3 specification. Internal header: the public
// API is cairn/blake3_gpu.hpp.
//
// The tree: the spec builds a left-complete binary tree over 1 KiB chunks (the left subtree holds the
// largest power of two of chunks strictly less than the total). That tree equals a level-by-level
// reduction in which node pairs (2i, 2i+1) get a parent and an odd last node moves up unchanged.
// Hence any aligned, full group of 2^k nodes of one level reduces to one node of level k on its own,
// and the last (partial) group too; only the very top compression carries the ROOT flag.
#pragma once
#include <cstdint>
#include <cstring>

#ifndef CAIRN_HD
#if defined(__CUDACC__)
#define CAIRN_HD __host__ __device__ __forceinline__
#else
#define CAIRN_HD inline
#endif
#endif
#ifndef CAIRN_UNROLL
#if defined(__CUDA_ARCH__)
#define CAIRN_UNROLL _Pragma("unroll")
#else
#define CAIRN_UNROLL
#endif
#endif

namespace cairn::blake3_tree {

constexpr uint32_t kChunkLen = 1024;
constexpr uint32_t kBlockLen = 64;
constexpr uint32_t kChunkStart = 1u << 0;
constexpr uint32_t kChunkEnd = 1u << 1;
constexpr uint32_t kParent = 1u << 2;
constexpr uint32_t kRoot = 1u << 3;

// Nodes reduced by one CUDA thread block (and one emulated group): 2^8 chunks or nodes.
constexpr uint32_t kGroupLog2 = 8;
constexpr uint32_t kGroup = 1u << kGroupLog2;

CAIRN_HD uint32_t iv(int i) {
  switch (i) {
    case 0: return 0x6A09E667u;
    case 1: return 0xBB67AE85u;
    case 2: return 0x3C6EF372u;
    case 3: return 0xA54FF53Au;
    case 4: return 0x510E527Fu;
    case 5: return 0x9B05688Cu;
    case 6: return 0x1F83D9ABu;
    default: return 0x5BE0CD19u;
  }
}

CAIRN_HD uint32_t rotr(uint32_t x, int n) {
#if defined(__CUDA_ARCH__)
  return __funnelshift_r(x, x, n);
#else
  return (x >> n) | (x << (32 - n));
#endif
}

CAIRN_HD void g(uint32_t& a, uint32_t& b, uint32_t& c, uint32_t& d, uint32_t mx, uint32_t my) {
  a = a + b + mx;
  d = rotr(d ^ a, 16);
  c = c + d;
  b = rotr(b ^ c, 12);
  a = a + b + my;
  d = rotr(d ^ a, 8);
  c = c + d;
  b = rotr(b ^ c, 7);
}

// One round: columns, then diagonals. Every index is a literal so that arrays stay in registers.
CAIRN_HD void round_fn(uint32_t s[16], const uint32_t m[16]) {
  g(s[0], s[4], s[8], s[12], m[0], m[1]);
  g(s[1], s[5], s[9], s[13], m[2], m[3]);
  g(s[2], s[6], s[10], s[14], m[4], m[5]);
  g(s[3], s[7], s[11], s[15], m[6], m[7]);
  g(s[0], s[5], s[10], s[15], m[8], m[9]);
  g(s[1], s[6], s[11], s[12], m[10], m[11]);
  g(s[2], s[7], s[8], s[13], m[12], m[13]);
  g(s[3], s[4], s[9], s[14], m[14], m[15]);
}

// The spec's message permutation [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8].
CAIRN_HD void permute(uint32_t m[16]) {
  const uint32_t t0 = m[2], t1 = m[6], t2 = m[3], t3 = m[10], t4 = m[7], t5 = m[0], t6 = m[4],
                 t7 = m[13], t8 = m[1], t9 = m[11], t10 = m[12], t11 = m[5], t12 = m[9],
                 t13 = m[14], t14 = m[15], t15 = m[8];
  m[0] = t0; m[1] = t1; m[2] = t2; m[3] = t3; m[4] = t4; m[5] = t5; m[6] = t6; m[7] = t7;
  m[8] = t8; m[9] = t9; m[10] = t10; m[11] = t11; m[12] = t12; m[13] = t13; m[14] = t14;
  m[15] = t15;
}

// The compression function, truncated to the 8-word chaining value (all a 32-byte digest needs).
// `m` is consumed (permuted in place).
CAIRN_HD void compress_cv(uint32_t cv[8], uint32_t m[16], uint64_t counter, uint32_t block_len,
                          uint32_t flags) {
  uint32_t s[16] = {cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
                    iv(0), iv(1), iv(2), iv(3),
                    static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32),
                    block_len, flags};
  CAIRN_UNROLL
  for (int r = 0; r < 7; ++r) {
    round_fn(s, m);
    if (r < 6) permute(m);
  }
  CAIRN_UNROLL
  for (int i = 0; i < 8; ++i) cv[i] = s[i] ^ s[i + 8];
}

CAIRN_HD uint32_t load_le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// Chaining value of the parent of `left` and `right`; `extra_flags` is kRoot for the root.
CAIRN_HD void parent_cv(const uint32_t left[8], const uint32_t right[8], uint32_t extra_flags,
                        uint32_t out[8]) {
  uint32_t m[16];
  CAIRN_UNROLL
  for (int i = 0; i < 8; ++i) {
    m[i] = left[i];
    m[i + 8] = right[i];
  }
  CAIRN_UNROLL
  for (int i = 0; i < 8; ++i) out[i] = iv(i);
  compress_cv(out, m, 0, kBlockLen, kParent | extra_flags);
}

// Chaining value of one chunk of `len` bytes (0..1024; 0 only for the empty input) read byte-wise
// with zero padding. `root` marks a chunk that is the whole input.
CAIRN_HD void chunk_cv_bytes(const uint8_t* data, uint32_t len, uint64_t counter, bool root,
                             uint32_t out[8]) {
  for (int i = 0; i < 8; ++i) out[i] = iv(i);
  const uint32_t nblocks = len == 0 ? 1 : (len + kBlockLen - 1) / kBlockLen;
  for (uint32_t b = 0; b < nblocks; ++b) {
    const uint32_t off = b * kBlockLen;
    const uint32_t blen = (len - off) < kBlockLen ? (len - off) : kBlockLen;
    uint8_t buf[kBlockLen];
    for (uint32_t i = 0; i < kBlockLen; ++i) buf[i] = i < blen ? data[off + i] : 0;
    uint32_t m[16];
    for (int i = 0; i < 16; ++i) m[i] = load_le32(buf + 4 * i);
    uint32_t flags = 0;
    if (b == 0) flags |= kChunkStart;
    if (b + 1 == nblocks) flags |= kChunkEnd | (root ? kRoot : 0u);
    compress_cv(out, m, counter, blen, flags);
  }
}

// Reduces nodes[0..count) (one level's aligned group) to nodes[0] by the level-by-level pairing
// described at the top; `root` marks the group that is the whole tree. Host-side twin of the
// shared-memory reduction in the kernels; also combines staged blocks on the host.
inline void reduce_group(uint32_t (*nodes)[8], uint64_t count, bool root) {
  while (count > 1) {
    const uint64_t half = count / 2;
    for (uint64_t t = 0; t < half; ++t) {
      uint32_t out[8];
      parent_cv(nodes[2 * t], nodes[2 * t + 1], (root && count == 2) ? kRoot : 0u, out);
      std::memcpy(nodes[t], out, sizeof(out));
    }
    if (count & 1) std::memcpy(nodes[half], nodes[count - 1], sizeof(nodes[0]));
    count = half + (count & 1);
  }
}

CAIRN_HD void cv_to_bytes(const uint32_t cv[8], uint8_t out[32]) {
  for (int i = 0; i < 8; ++i) {
    out[4 * i + 0] = static_cast<uint8_t>(cv[i]);
    out[4 * i + 1] = static_cast<uint8_t>(cv[i] >> 8);
    out[4 * i + 2] = static_cast<uint8_t>(cv[i] >> 16);
    out[4 * i + 3] = static_cast<uint8_t>(cv[i] >> 24);
  }
}

inline uint64_t chunk_count(uint64_t nbytes) {
  return nbytes == 0 ? 1 : (nbytes + kChunkLen - 1) / kChunkLen;
}

}  // namespace cairn::blake3_tree
