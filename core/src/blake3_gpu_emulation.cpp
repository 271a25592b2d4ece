// Host emulation of the CUDA BLAKE3 path (tests only): the same grouping of chunks and nodes into
// thread-block-sized groups, the same flags and counters, and the same staged-block combine as
// cuda/blake3_gpu.cu, computed with the shared code of cairn/blake3_gpu_tree.hpp.
#include <cstring>
#include <vector>

#include "cairn/blake3_gpu.hpp"
#include "cairn/blake3_gpu_tree.hpp"

namespace cairn::gpu {

namespace {
using namespace cairn::blake3_tree;

// What one device pass computes (chunk kernel, then reduce kernels): the chaining value of the
// subtree over `nbytes` at `data`, whose first chunk has counter `base`; `root` for the whole input.
void subtree_cv(const uint8_t* data, uint64_t nbytes, uint64_t base, bool root, uint32_t out[8]) {
  const uint64_t nchunks = chunk_count(nbytes);
  const uint64_t ngroups = (nchunks + kGroup - 1) / kGroup;
  std::vector<uint32_t> storage(ngroups * 8);
  auto* level = reinterpret_cast<uint32_t(*)[8]>(storage.data());
  for (uint64_t g = 0; g < ngroups; ++g) {  // one "thread block" per group of chunks
    const uint64_t first = g * kGroup;
    const uint64_t m = (nchunks - first) < kGroup ? (nchunks - first) : kGroup;
    uint32_t nodes[kGroup][8];
    for (uint64_t t = 0; t < m; ++t) {
      const uint64_t c = first + t;
      const uint64_t off = c * kChunkLen;
      const uint64_t len = (nbytes - off) < kChunkLen ? (nbytes - off) : kChunkLen;
      chunk_cv_bytes(data + off, static_cast<uint32_t>(len), base + c, root && nchunks == 1,
                     nodes[t]);
    }
    reduce_group(nodes, m, root && nchunks <= kGroup);
    std::memcpy(level[g], nodes[0], sizeof(nodes[0]));
  }
  uint64_t count = ngroups;
  while (count > 1) {  // one "reduce kernel" per level of groups
    const uint64_t groups = (count + kGroup - 1) / kGroup;
    for (uint64_t g = 0; g < groups; ++g) {
      const uint64_t first = g * kGroup;
      const uint64_t m = (count - first) < kGroup ? (count - first) : kGroup;
      uint32_t nodes[kGroup][8];
      std::memcpy(nodes, level[first], m * sizeof(nodes[0]));
      reduce_group(nodes, m, root && count <= kGroup);
      std::memcpy(level[g], nodes[0], sizeof(nodes[0]));
    }
    count = groups;
  }
  std::memcpy(out, level[0], sizeof(level[0]));
}
}  // namespace

Digest blake3_host_emulation(const void* data, uint64_t nbytes, unsigned block_log2_chunks) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  Digest digest{};
  uint32_t cv[8];
  if (block_log2_chunks == 0 || nbytes == 0) {
    subtree_cv(bytes, nbytes, 0, true, cv);
  } else {
    // The staged path: one subtree per block of 2^k chunks, combined on the host.
    const uint64_t block_bytes = uint64_t{kChunkLen} << block_log2_chunks;
    const uint64_t nblocks = (nbytes + block_bytes - 1) / block_bytes;
    std::vector<uint32_t> storage(nblocks * 8);
    auto* cvs = reinterpret_cast<uint32_t(*)[8]>(storage.data());
    for (uint64_t i = 0; i < nblocks; ++i) {
      const uint64_t off = i * block_bytes;
      const uint64_t len = (nbytes - off) < block_bytes ? (nbytes - off) : block_bytes;
      subtree_cv(bytes + off, len, i << block_log2_chunks, nblocks == 1, cvs[i]);
    }
    reduce_group(cvs, nblocks, true);
    std::memcpy(cv, cvs[0], sizeof(cv));
  }
  cv_to_bytes(cv, digest.data());
  return digest;
}

}  // namespace cairn::gpu
