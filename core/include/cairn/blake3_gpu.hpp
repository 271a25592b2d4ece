// BLAKE3 (32-byte digest, unkeyed) computed on a CUDA GPU. Digests are bit-identical to the BLAKE3
// reference (the `blake3` package, b3sum) for every length.
//
// Every function throws std::runtime_error with a readable message when the build has no CUDA,
// when no GPU is usable, or when a CUDA call fails. All functions are thread-safe; calls that use
// the shared pinned staging buffers (host and file hashing) are serialized.
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace cairn::gpu {

using Digest = std::array<uint8_t, 32>;

// Hashes `nbytes` of device memory at `device_ptr` (any alignment; 16-byte aligned is fastest).
// The work is queued on `stream` (a cudaStream_t as an integer; 0 is the legacy default stream,
// 1 cudaStreamLegacy, 2 cudaStreamPerThread), so it is ordered after earlier work on that stream.
// Returns when the digest is known.
Digest blake3_device(const void* device_ptr, uint64_t nbytes, uintptr_t stream = 0);

// Hashes `nbytes` of host memory. Pinned (page-locked) memory is copied to the GPU directly;
// pageable memory goes through pinned staging buffers filled by several threads. Copies overlap
// with hashing on several CUDA streams; each staged block is a 2^k-chunk subtree whose chaining
// value is combined on the host.
Digest blake3_host(const void* host_ptr, uint64_t nbytes);

// Hashes a file, read in large blocks by the core's thread pool into pinned staging buffers. The
// file is opened through cairn::FileReader before any GPU work, so a file that cannot be read
// throws the same std::system_error as on the CPU path (blake3::hash_file), GPU or no GPU.
Digest blake3_file(const std::string& path);

// Mean seconds per hash of `nbytes` of device memory over `repeats` runs after one warm-up,
// timed with CUDA events (a benchmark helper).
double blake3_device_seconds(const void* device_ptr, uint64_t nbytes, int repeats);

// Runs the kernels' chunk and tree code on the CPU (same grouping, flags, counters and staged-block
// combine, with `block_log2_chunks` chunks per staged block, or 0 for one device-style pass).
// For tests only: it lets a machine without a GPU check the GPU path's tree logic. Always compiled.
Digest blake3_host_emulation(const void* data, uint64_t nbytes, unsigned block_log2_chunks);

}  // namespace cairn::gpu
