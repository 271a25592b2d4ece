// BLAKE3, portable part: the compression function, chunks, the tree, threads and dispatch to the
// SIMD kernels (blake3_avx2.cpp, blake3_avx512.cpp) by the CPU's SIMD level.
#include "cairn/blake3.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "blake3_impl.hpp"
#include "cairn/parallel.hpp"

namespace cairn::blake3 {

using namespace detail;

namespace {

struct OpsScalar {
  static std::uint32_t add(std::uint32_t a, std::uint32_t b) { return a + b; }
  static std::uint32_t xor_(std::uint32_t a, std::uint32_t b) { return a ^ b; }
  static std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  static std::uint32_t rot16(std::uint32_t x) { return rotr(x, 16); }
  static std::uint32_t rot12(std::uint32_t x) { return rotr(x, 12); }
  static std::uint32_t rot8(std::uint32_t x) { return rotr(x, 8); }
  static std::uint32_t rot7(std::uint32_t x) { return rotr(x, 7); }
};

inline std::uint32_t load_le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

inline void store_le32(std::uint8_t* p, std::uint32_t w) {
  p[0] = static_cast<std::uint8_t>(w);
  p[1] = static_cast<std::uint8_t>(w >> 8);
  p[2] = static_cast<std::uint8_t>(w >> 16);
  p[3] = static_cast<std::uint8_t>(w >> 24);
}

// The compression function, keeping only the first 8 output words (the CV, or the 32-byte
// digest when ROOT is set): cv <- compress(cv, block, counter, block_len, flags)[0..8].
void compress(std::uint32_t cv[8], const std::uint8_t block[kBlockLen], std::uint32_t block_len,
              std::uint64_t counter, std::uint8_t flags) {
  std::uint32_t m[16];
  for (int i = 0; i < 16; ++i) m[i] = load_le32(block + 4 * i);
  std::uint32_t v[16] = {cv[0],  cv[1],  cv[2],  cv[3],
                         cv[4],  cv[5],  cv[6],  cv[7],
                         kIV[0], kIV[1], kIV[2], kIV[3],
                         static_cast<std::uint32_t>(counter),
                         static_cast<std::uint32_t>(counter >> 32), block_len, flags};
  for (int r = 0; r < 7; ++r) round_fn<OpsScalar>(v, m, r);
  for (int i = 0; i < 8; ++i) cv[i] = v[i] ^ v[i + 8];
}

void words_to_bytes(const std::uint32_t w[8], std::uint8_t* out) {
  for (int i = 0; i < 8; ++i) store_le32(out + 4 * i, w[i]);
}

// CV (or, with `root`, the digest) of one chunk of 0..1024 bytes; the empty input is one chunk
// holding one empty block.
void chunk_output(const std::uint8_t* data, std::size_t len, std::uint64_t counter, bool root,
                  std::uint8_t* out) {
  std::uint32_t cv[8];
  std::memcpy(cv, kIV, sizeof cv);
  const std::size_t n_blocks = std::max<std::size_t>(1, (len + kBlockLen - 1) / kBlockLen);
  for (std::size_t b = 0; b < n_blocks; ++b) {
    const std::size_t offset = b * kBlockLen;
    const std::size_t block_len = std::min(kBlockLen, len - offset);
    std::uint8_t block[kBlockLen] = {};
    if (block_len > 0) std::memcpy(block, data + offset, block_len);
    std::uint8_t flags = 0;
    if (b == 0) flags |= kChunkStart;
    if (b + 1 == n_blocks) flags |= kChunkEnd | (root ? kRoot : 0);
    compress(cv, block, static_cast<std::uint32_t>(block_len), counter, flags);
  }
  words_to_bytes(cv, out);
}

// CV (or digest) of a parent node whose children's CVs are the 64 bytes at `children`.
void parent_output(const std::uint8_t children[2 * kOutLen], bool root, std::uint8_t* out) {
  std::uint32_t cv[8];
  std::memcpy(cv, kIV, sizeof cv);
  compress(cv, children, kBlockLen, 0, kParent | (root ? kRoot : 0));
  words_to_bytes(cv, out);
}

std::size_t chunk_count(std::size_t len) { return std::max<std::size_t>(1, (len + kChunkLen - 1) / kChunkLen); }

// Largest power of two strictly below n (n >= 2).
std::size_t pow2_below(std::size_t n) {
  std::size_t p = 1;
  while (p * 2 < n) p *= 2;
  return p;
}

bool is_pow2(std::size_t n) { return n != 0 && (n & (n - 1)) == 0; }

// Chunks hashed into one buffer of CVs before reducing them level by level.
constexpr std::size_t kPieceChunks = 512;

// Reduces n >= 2 CVs stored contiguously at `cvs` (clobbered) to the CV or digest of their
// left-balanced tree: pair neighbours level by level, carrying an odd last node up unchanged.
// That pairing builds exactly the tree whose left subtree is the largest power of two below n.
void reduce_cvs(HashManyFn hash_many, std::uint8_t* cvs, std::size_t n, bool root,
                std::uint8_t* out) {
  while (n > 2) {
    const std::size_t pairs = n / 2;
    hash_many(cvs, 2 * kOutLen, pairs, 1, 0, false, kParent, 0, 0, cvs);
    if (n % 2 == 1) std::memmove(cvs + pairs * kOutLen, cvs + (n - 1) * kOutLen, kOutLen);
    n = pairs + n % 2;
  }
  parent_output(cvs, root, out);
}

// CV (or digest with `root`) of the subtree made of the `len` bytes at `data`, whose first chunk
// is chunk number `counter` of the whole input. One thread.
void subtree_output(HashManyFn hash_many, const std::uint8_t* data, std::size_t len,
                    std::uint64_t counter, bool root, std::uint8_t* out) {
  const std::size_t n = chunk_count(len);
  if (n == 1) {
    chunk_output(data, len, counter, root, out);
    return;
  }
  if (n > kPieceChunks) {
    const std::size_t left_chunks = pow2_below(n);
    std::uint8_t children[2 * kOutLen];
    subtree_output(hash_many, data, left_chunks * kChunkLen, counter, false, children);
    subtree_output(hash_many, data + left_chunks * kChunkLen, len - left_chunks * kChunkLen,
                   counter + left_chunks, false, children + kOutLen);
    parent_output(children, root, out);
    return;
  }
  std::uint8_t cvs[kPieceChunks * kOutLen];
  const std::size_t full = len / kChunkLen;
  hash_many(data, kChunkLen, full, kChunkLen / kBlockLen, counter, true, 0, kChunkStart,
            kChunkEnd, cvs);
  if (full < n) {
    chunk_output(data + full * kChunkLen, len - full * kChunkLen, counter + full, false,
                 cvs + full * kOutLen);
  }
  reduce_cvs(hash_many, cvs, n, root, out);
}

unsigned resolve_threads(unsigned threads) { return threads != 0 ? threads : configured_threads(); }

// Below this many bytes per thread, starting threads costs more than it saves.
constexpr std::size_t kMinBytesPerThread = 128 * 1024;

// As subtree_output, on up to `threads` threads: the subtree is cut into aligned power-of-two
// pieces (each a subtree of it, so the tree is unchanged), hashed in parallel and reduced.
void subtree_output_threaded(HashManyFn hash_many, const std::uint8_t* data, std::size_t len,
                             std::uint64_t counter, bool root, unsigned threads,
                             std::uint8_t* out) {
  threads = resolve_threads(threads);
  if (threads <= 1 || len < 2 * kMinBytesPerThread) {
    subtree_output(hash_many, data, len, counter, root, out);
    return;
  }
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, len / kMinBytesPerThread));
  // About sixteen pieces per thread, so that a thread slowed by other load is balanced by the
  // others; at least 64 chunks each.
  std::size_t piece_chunks = 64;
  while (piece_chunks * 2 * kChunkLen * 16 * threads <= len) piece_chunks *= 2;
  const std::size_t piece = piece_chunks * kChunkLen;
  const std::size_t pieces = (len - 1) / piece + 1;  // the last one holds 1..piece bytes
  std::vector<std::uint8_t> cvs(pieces * kOutLen);
  parallel_for(pieces, threads, [&](std::size_t i) {
    const std::size_t offset = i * piece;
    subtree_output(hash_many, data + offset, std::min(piece, len - offset),
                   counter + i * piece_chunks, false, cvs.data() + i * kOutLen);
  });
  reduce_cvs(hash_many, cvs.data(), pieces, root, out);
}

HashManyFn kernel_for(SimdLevel level) {
#if defined(CAIRN_X86)
  if (level >= SimdLevel::AVX512) return hash_many_avx512;
  if (level >= SimdLevel::AVX2) return hash_many_avx2;
#else
  (void)level;
#endif
  return hash_many_portable;
}

HashManyFn best_kernel() {
  static const HashManyFn kernel = kernel_for(detected_simd_level());
  return kernel;
}

void check_leaf_size(std::size_t leaf_size) {
  if (leaf_size < kChunkLen || !is_pow2(leaf_size)) {
    throw std::invalid_argument("leaf_size must be a power of two of at least 1024 bytes, got " +
                                std::to_string(leaf_size));
  }
}

}  // namespace

namespace detail {

void hash_many_portable(const std::uint8_t* base, std::size_t stride, std::size_t n_inputs,
                        std::size_t blocks, std::uint64_t counter, bool increment_counter,
                        std::uint8_t flags, std::uint8_t flags_start, std::uint8_t flags_end,
                        std::uint8_t* out) {
  for (std::size_t i = 0; i < n_inputs; ++i) {
    std::uint32_t cv[8];
    std::memcpy(cv, kIV, sizeof cv);
    const std::uint8_t* input = base + i * stride;
    const std::uint64_t c = counter + (increment_counter ? i : 0);
    for (std::size_t b = 0; b < blocks; ++b) {
      std::uint8_t f = flags;
      if (b == 0) f |= flags_start;
      if (b + 1 == blocks) f |= flags_end;
      compress(cv, input + b * kBlockLen, kBlockLen, c, f);
    }
    words_to_bytes(cv, out + i * kOutLen);  // after reading the input: in-place safe
  }
}

}  // namespace detail

Digest hash(const void* data, std::size_t len, unsigned threads) {
  Digest d;
  subtree_output_threaded(best_kernel(), static_cast<const std::uint8_t*>(data), len, 0, true,
                          threads, d.data());
  return d;
}

Digest hash_with_level(const void* data, std::size_t len, SimdLevel level, unsigned threads) {
  if (level > detected_simd_level()) {
    throw std::invalid_argument(std::string("this CPU does not support SIMD level '") +
                                simd_level_name(level) + "' (best: '" +
                                simd_level_name(detected_simd_level()) + "')");
  }
  Digest d;
  subtree_output_threaded(kernel_for(level), static_cast<const std::uint8_t*>(data), len, 0, true,
                          threads, d.data());
  return d;
}

std::size_t leaf_count(std::size_t len, std::size_t leaf_size) {
  check_leaf_size(leaf_size);
  return len == 0 ? 0 : (len - 1) / leaf_size;
}

std::vector<ChainingValue> leaf_cvs(const void* data, std::size_t len, std::size_t leaf_size,
                                    unsigned threads) {
  const std::size_t n = leaf_count(len, leaf_size);
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  const std::size_t leaf_chunks = leaf_size / kChunkLen;
  std::vector<ChainingValue> cvs(n);
  threads = resolve_threads(threads);
  HashManyFn kernel = best_kernel();
  if (n >= threads) {
    parallel_for(n, threads, [&](std::size_t i) {
      subtree_output(kernel, bytes + i * leaf_size, leaf_size, i * leaf_chunks, false,
                     cvs[i].data());
    });
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      subtree_output_threaded(kernel, bytes + i * leaf_size, leaf_size, i * leaf_chunks, false,
                              threads, cvs[i].data());
    }
  }
  return cvs;
}

ChainingValue leaf_cv(const void* leaf, std::size_t leaf_size, std::uint64_t index,
                      unsigned threads) {
  check_leaf_size(leaf_size);
  ChainingValue cv;
  subtree_output_threaded(best_kernel(), static_cast<const std::uint8_t*>(leaf), leaf_size,
                          index * (leaf_size / kChunkLen), false, threads, cv.data());
  return cv;
}

Digest root_from_leaves(const ChainingValue* cvs, std::size_t n_cvs, const void* tail,
                        std::size_t tail_len, std::size_t leaf_size, unsigned threads) {
  check_leaf_size(leaf_size);
  if (n_cvs == 0) {
    if (tail_len > leaf_size) {
      throw std::invalid_argument("with no leaf CVs the tail must hold at most leaf_size bytes");
    }
    return hash(tail, tail_len, threads);
  }
  if (tail_len == 0 || tail_len > leaf_size) {
    throw std::invalid_argument("the tail after " + std::to_string(n_cvs) +
                                " leaves must hold 1.." + std::to_string(leaf_size) +
                                " bytes, got " + std::to_string(tail_len));
  }
  std::vector<std::uint8_t> nodes((n_cvs + 1) * kOutLen);
  for (std::size_t i = 0; i < n_cvs; ++i) std::memcpy(&nodes[i * kOutLen], cvs[i].data(), kOutLen);
  HashManyFn kernel = best_kernel();
  subtree_output_threaded(kernel, static_cast<const std::uint8_t*>(tail), tail_len,
                          n_cvs * (leaf_size / kChunkLen), false, threads,
                          &nodes[n_cvs * kOutLen]);
  Digest d;
  reduce_cvs(kernel, nodes.data(), n_cvs + 1, true, d.data());
  return d;
}

std::string to_hex(const std::uint8_t* bytes, std::size_t len) {
  static const char digits[] = "0123456789abcdef";
  std::string s(2 * len, '0');
  for (std::size_t i = 0; i < len; ++i) {
    s[2 * i] = digits[bytes[i] >> 4];
    s[2 * i + 1] = digits[bytes[i] & 15];
  }
  return s;
}

}  // namespace cairn::blake3
