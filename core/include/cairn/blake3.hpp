// BLAKE3 (unkeyed hash mode, 32-byte output), written from the specification.
//
// The input is split into 1 KiB chunks; chunk chaining values (CVs) are merged pairwise into a
// left-balanced binary tree whose left subtree always holds the largest power of two of chunks
// smaller than the total. Because the tree shape depends only on the length, the digest is the
// same however the work is divided: SIMD lanes, threads, or subtrees hashed at different times.
//
// Subtree API: an input of `len` bytes is viewed as `leaf_count(len, leaf_size)` aligned leaves
// of `leaf_size` bytes (a power of two, at least one chunk) followed by a non-empty tail of
// 1..leaf_size bytes (the tail is empty only for empty input). Every leaf is then a complete,
// non-root subtree of the BLAKE3 tree, so its CV can be stored and reused: after a partial change
// only the touched leaves and the tail need hashing, and `root_from_leaves` rebuilds the digest.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cairn/build_info.hpp"

namespace cairn::blake3 {

constexpr std::size_t kChunkLen = 1024;
constexpr std::size_t kBlockLen = 64;
constexpr std::size_t kOutLen = 32;

using Digest = std::array<std::uint8_t, kOutLen>;
using ChainingValue = std::array<std::uint8_t, kOutLen>;  // little-endian words, as hashed

// Digest of `len` bytes. `threads` = 0 means cairn::configured_threads() (CAIRN_THREADS, else every
// hardware thread); small inputs use one thread.
Digest hash(const void* data, std::size_t len, unsigned threads = 0);

// As `hash`, with the SIMD level forced (for tests and benchmarks). Throws std::invalid_argument
// when the CPU does not support `level`.
Digest hash_with_level(const void* data, std::size_t len, SimdLevel level, unsigned threads = 1);

// Number of full leaves before the tail: (len - 1) / leaf_size, or 0 for empty input.
std::size_t leaf_count(std::size_t len, std::size_t leaf_size);

// CVs of the `leaf_count(len, leaf_size)` leaves of the input, in order. `leaf_size` must be a
// power of two >= kChunkLen (std::invalid_argument otherwise).
std::vector<ChainingValue> leaf_cvs(const void* data, std::size_t len, std::size_t leaf_size,
                                    unsigned threads = 0);

// CV of one full leaf (exactly `leaf_size` bytes) at position `index` in a larger input.
ChainingValue leaf_cv(const void* leaf, std::size_t leaf_size, std::uint64_t index,
                      unsigned threads = 0);

// Digest of an input given the CVs of its leaves and the raw bytes of its tail. The tail must
// hold 1..leaf_size bytes when there is at least one leaf (std::invalid_argument otherwise).
Digest root_from_leaves(const ChainingValue* cvs, std::size_t n_cvs, const void* tail,
                        std::size_t tail_len, std::size_t leaf_size, unsigned threads = 0);

// Digest of a whole file, read through mmap (large files) or read(2) (small ones). Throws
// std::system_error when the file cannot be opened or read. `size_out`, when not null, gets the
// number of bytes hashed.
Digest hash_file(const std::string& path, unsigned threads = 0, std::uint64_t* size_out = nullptr);

// Digests of many files, hashed in parallel (one thread per file). A file that cannot be read
// gets `error` (an errno value) instead of a digest.
struct FileDigest {
  Digest digest{};
  std::uint64_t size = 0;
  int error = 0;
};
std::vector<FileDigest> hash_files(const std::vector<std::string>& paths, unsigned threads = 0);

std::string to_hex(const std::uint8_t* bytes, std::size_t len);

}  // namespace cairn::blake3
