// BLAKE3 on the GPU, from the specification. One thread hashes one 1 KiB chunk; each thread block
// then reduces its 256 chunk chaining values to one node in shared memory, and reduce kernels fold
// those nodes 256 at a time until one is left (see blake3_gpu_tree.hpp for why aligned groups can
// be reduced independently). Host data is staged in 2^15-chunk blocks whose subtree chaining
// values are combined on the host.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cairn/blake3_gpu.hpp"
#include "cairn/blake3_gpu_tree.hpp"
#include "cairn/file_reader.hpp"
#include "cairn/parallel.hpp"
#include "cuda_check.cuh"

namespace cairn::gpu {

namespace {
using namespace cairn::blake3_tree;

// ---------------------------------------------------------------------------------------------
// Kernels

// Reduces s[.][0..count) to s[.][0] by level-wise pairing; all threads of the block take part.
__device__ void block_reduce(uint32_t (*s)[kGroup], uint32_t count, bool root) {
  const uint32_t t = threadIdx.x;
  while (count > 1) {  // count is the same in every thread
    const uint32_t half = count >> 1;
    uint32_t v[8];
    bool write = false;
    if (t < half) {
      uint32_t l[8], r[8];
#pragma unroll
      for (int w = 0; w < 8; ++w) {
        l[w] = s[w][2 * t];
        r[w] = s[w][2 * t + 1];
      }
      parent_cv(l, r, (root && count == 2) ? kRoot : 0u, v);
      write = true;
    } else if ((count & 1) && t == half) {
#pragma unroll
      for (int w = 0; w < 8; ++w) v[w] = s[w][count - 1];
      write = true;
    }
    __syncthreads();
    if (write) {
#pragma unroll
      for (int w = 0; w < 8; ++w) s[w][t] = v[w];
    }
    __syncthreads();
    count = half + (count & 1);
  }
}

// One full 1 KiB chunk read with 16-byte loads; the next block's words are loaded while the
// current block is compressed.
__device__ void chunk_cv_vec16(const uint8_t* chunk, uint64_t counter, bool root, uint32_t cv[8]) {
  const uint4* p = reinterpret_cast<const uint4*>(chunk);
#pragma unroll
  for (int i = 0; i < 8; ++i) cv[i] = iv(i);
  uint4 n0 = __ldg(p + 0), n1 = __ldg(p + 1), n2 = __ldg(p + 2), n3 = __ldg(p + 3);
#pragma unroll 1
  for (uint32_t b = 0; b < 16; ++b) {
    uint32_t m[16] = {n0.x, n0.y, n0.z, n0.w, n1.x, n1.y, n1.z, n1.w,
                      n2.x, n2.y, n2.z, n2.w, n3.x, n3.y, n3.z, n3.w};
    if (b < 15) {
      const uint4* q = p + 4 * (b + 1);
      n0 = __ldg(q + 0);
      n1 = __ldg(q + 1);
      n2 = __ldg(q + 2);
      n3 = __ldg(q + 3);
    }
    uint32_t flags = (b == 0) ? kChunkStart : 0u;
    if (b == 15) flags |= kChunkEnd | (root ? kRoot : 0u);
    compress_cv(cv, m, counter, kBlockLen, flags);
  }
}

// One full chunk read with 4-byte loads (4-byte aligned data).
__device__ void chunk_cv_vec4(const uint8_t* chunk, uint64_t counter, bool root, uint32_t cv[8]) {
  const uint32_t* p = reinterpret_cast<const uint32_t*>(chunk);
#pragma unroll
  for (int i = 0; i < 8; ++i) cv[i] = iv(i);
#pragma unroll 1
  for (uint32_t b = 0; b < 16; ++b) {
    uint32_t m[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) m[i] = __ldg(p + 16 * b + i);
    uint32_t flags = (b == 0) ? kChunkStart : 0u;
    if (b == 15) flags |= kChunkEnd | (root ? kRoot : 0u);
    compress_cv(cv, m, counter, kBlockLen, flags);
  }
}

// Hashes chunks [blockIdx.x * 256, ...) of the subtree at `data` and writes the block's node.
// kAlign is the alignment of `data`: 16, 4 or 1 (byte loads).
template <int kAlign>
__global__ void __launch_bounds__(kGroup) chunk_kernel(const uint8_t* __restrict__ data,
                                                       uint64_t nbytes, uint64_t nchunks,
                                                       uint64_t base_counter, bool root,
                                                       uint32_t* __restrict__ out) {
  __shared__ uint32_t s[8][kGroup];
  const uint64_t first = static_cast<uint64_t>(blockIdx.x) * kGroup;
  const uint32_t count = static_cast<uint32_t>((nchunks - first < kGroup ? nchunks - first : kGroup));
  const uint32_t t = threadIdx.x;
  if (t < count) {
    const uint64_t c = first + t;
    const uint64_t off = c * kChunkLen;
    const bool chunk_root = root && nchunks == 1;
    uint32_t cv[8];
    if (nbytes - off < kChunkLen || nbytes == 0) {
      chunk_cv_bytes(data + off, static_cast<uint32_t>(nbytes - off), base_counter + c, chunk_root,
                     cv);
    } else if (kAlign == 16) {
      chunk_cv_vec16(data + off, base_counter + c, chunk_root, cv);
    } else if (kAlign == 4) {
      chunk_cv_vec4(data + off, base_counter + c, chunk_root, cv);
    } else {
      chunk_cv_bytes(data + off, kChunkLen, base_counter + c, chunk_root, cv);
    }
#pragma unroll
    for (int w = 0; w < 8; ++w) s[w][t] = cv[w];
  }
  __syncthreads();
  block_reduce(s, count, root && nchunks <= kGroup);
  if (t < 8) out[static_cast<uint64_t>(blockIdx.x) * 8 + t] = s[t][0];
}

// Folds nodes [blockIdx.x * 256, ...) of one level into one node of a level eight higher.
__global__ void __launch_bounds__(kGroup) reduce_kernel(const uint32_t* __restrict__ in,
                                                        uint64_t count, bool root,
                                                        uint32_t* __restrict__ out) {
  __shared__ uint32_t s[8][kGroup];
  const uint64_t first = static_cast<uint64_t>(blockIdx.x) * kGroup;
  const uint32_t m = static_cast<uint32_t>((count - first < kGroup ? count - first : kGroup));
  const uint32_t t = threadIdx.x;
  if (t < m) {
#pragma unroll
    for (int w = 0; w < 8; ++w) s[w][t] = in[(first + t) * 8 + w];
  }
  __syncthreads();
  block_reduce(s, m, root && count <= kGroup);
  if (t < 8) out[static_cast<uint64_t>(blockIdx.x) * 8 + t] = s[t][0];
}

// ---------------------------------------------------------------------------------------------
// Launch plan

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// Device scratch a subtree of `nbytes` needs: level-8 nodes, then level-16 nodes (in uint32 words).
struct ScratchSize {
  uint64_t a_words, b_words;
};
ScratchSize scratch_for(uint64_t nbytes) {
  const uint64_t g1 = ceil_div(chunk_count(nbytes), kGroup);
  const uint64_t g2 = ceil_div(g1, kGroup);
  return {g1 * 8, std::max<uint64_t>(g2, 1) * 8};
}

// Queues the kernels that write the chaining value (or, with `root`, the digest words) of the
// subtree over `nbytes` (>= 1) at device address `data` into out[0..8).
void enqueue_subtree(const uint8_t* data, uint64_t nbytes, uint64_t base_counter, bool root,
                     uint32_t* scratch_a, uint32_t* scratch_b, uint32_t* out, cudaStream_t stream) {
  const uint64_t nchunks = chunk_count(nbytes);
  uint64_t groups = ceil_div(nchunks, kGroup);
  uint32_t* dst = groups == 1 ? out : scratch_a;
  const auto addr = reinterpret_cast<uintptr_t>(data);
  const dim3 grid(static_cast<unsigned>(groups));
  if (addr % 16 == 0) {
    chunk_kernel<16><<<grid, kGroup, 0, stream>>>(data, nbytes, nchunks, base_counter, root, dst);
  } else if (addr % 4 == 0) {
    chunk_kernel<4><<<grid, kGroup, 0, stream>>>(data, nbytes, nchunks, base_counter, root, dst);
  } else {
    chunk_kernel<1><<<grid, kGroup, 0, stream>>>(data, nbytes, nchunks, base_counter, root, dst);
  }
  check_cuda(cudaGetLastError(), "launching the BLAKE3 chunk kernel");
  uint32_t* src = scratch_a;
  uint32_t* spare = scratch_b;
  while (groups > 1) {
    const uint64_t next = ceil_div(groups, kGroup);
    dst = next == 1 ? out : spare;
    reduce_kernel<<<static_cast<unsigned>(next), kGroup, 0, stream>>>(src, groups, root, dst);
    check_cuda(cudaGetLastError(), "launching the BLAKE3 reduce kernel");
    spare = src;
    src = dst;
    groups = next;
  }
}

Digest empty_digest() {
  uint32_t cv[8];
  chunk_cv_bytes(nullptr, 0, 0, true, cv);
  Digest d{};
  cv_to_bytes(cv, d.data());
  return d;
}

// Sets the current device for the lifetime of the guard.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (device != previous_) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

cudaPointerAttributes pointer_attributes(const void* ptr) {
  cudaPointerAttributes attr{};
  check_cuda(cudaPointerGetAttributes(&attr, ptr), "cudaPointerGetAttributes");
  return attr;
}

// Device-resident hash on `stream`; scratch is taken from the stream-ordered pool.
Digest hash_device(const void* device_ptr, uint64_t nbytes, cudaStream_t stream) {
  const ScratchSize sz = scratch_for(nbytes);
  uint32_t* scratch = nullptr;
  const uint64_t words = sz.a_words + sz.b_words + 8;
  check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&scratch), words * 4, stream),
             "allocating BLAKE3 scratch on the GPU");
  Digest d{};
  try {
    enqueue_subtree(static_cast<const uint8_t*>(device_ptr), nbytes, 0, true, scratch,
                    scratch + sz.a_words, scratch + sz.a_words + sz.b_words, stream);
    uint32_t cv[8];
    check_cuda(cudaMemcpyAsync(cv, scratch + sz.a_words + sz.b_words, sizeof(cv),
                               cudaMemcpyDeviceToHost, stream),
               "copying the digest back");
    check_cuda(cudaStreamSynchronize(stream), "running the BLAKE3 kernels");
    cv_to_bytes(cv, d.data());
  } catch (...) {
    cudaFreeAsync(scratch, stream);
    throw;
  }
  check_cuda(cudaFreeAsync(scratch, stream), "freeing BLAKE3 scratch");
  return d;
}

int device_of(const void* device_ptr) {
  const cudaPointerAttributes attr = pointer_attributes(device_ptr);
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
    throw std::invalid_argument(
        "blake3_device: the pointer is not CUDA device memory (pass host data to blake3_host)");
  }
  return attr.device;
}

// ---------------------------------------------------------------------------------------------
// Host staging: a few pinned buffers, device buffers and streams, kept between calls.

constexpr unsigned kStageLog2Chunks = 15;  // 32 MiB per staged block
constexpr uint64_t kStageBytes = uint64_t{kChunkLen} << kStageLog2Chunks;
constexpr int kSlots = 4;

struct Slot {
  uint8_t* pinned = nullptr;
  uint8_t* device = nullptr;
  uint32_t* scratch = nullptr;  // level-8 nodes, level-16 nodes
  cudaStream_t stream = nullptr;
  cudaEvent_t copied = nullptr;  // the pinned buffer may be refilled once this has completed
};

class Staging {
 public:
  explicit Staging(int device) : device_(device) {
    const ScratchSize sz = scratch_for(kStageBytes);
    for (Slot& s : slots_) {
      check_cuda(cudaHostAlloc(reinterpret_cast<void**>(&s.pinned), kStageBytes,
                               cudaHostAllocDefault),
                 "allocating pinned staging memory");
      check_cuda(cudaMalloc(reinterpret_cast<void**>(&s.device), kStageBytes),
                 "allocating device staging memory");
      check_cuda(cudaMalloc(reinterpret_cast<void**>(&s.scratch), (sz.a_words + sz.b_words) * 4),
                 "allocating BLAKE3 scratch");
      check_cuda(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
      check_cuda(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming), "cudaEventCreate");
    }
  }
  ~Staging() {
    for (Slot& s : slots_) {
      if (s.stream) cudaStreamSynchronize(s.stream);
      cudaFreeHost(s.pinned);
      cudaFree(s.device);
      cudaFree(s.scratch);
      if (s.stream) cudaStreamDestroy(s.stream);
      if (s.copied) cudaEventDestroy(s.copied);
    }
    cudaFree(cvs_);
  }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  int device() const { return device_; }

  // Hashes `nbytes` supplied block by block: `direct(offset)` returns a pinned host address to copy
  // from (or nullptr), else `fill(dst, offset, len)` writes the bytes into a pinned buffer; it is
  // called from the core's thread pool (cairn/parallel.hpp) on disjoint parts of each block.
  Digest hash(uint64_t nbytes, const std::function<const uint8_t*(uint64_t)>& direct,
              const std::function<void(uint8_t*, uint64_t, uint64_t)>& fill) {
    if (nbytes == 0) return empty_digest();
    const uint64_t nblocks = ceil_div(nbytes, kStageBytes);
    reserve_cvs(nblocks);
    const ScratchSize sz = scratch_for(kStageBytes);
    try {
      for (uint64_t i = 0; i < nblocks; ++i) {
        Slot& s = slots_[i % kSlots];
        const uint64_t off = i * kStageBytes;
        const uint64_t len = std::min(kStageBytes, nbytes - off);
        const uint8_t* src = direct ? direct(off) : nullptr;
        if (src == nullptr) {
          check_cuda(cudaEventSynchronize(s.copied), "waiting for a staging copy");
          fill_parallel(s.pinned, off, len, fill);
          src = s.pinned;
        }
        check_cuda(cudaMemcpyAsync(s.device, src, len, cudaMemcpyHostToDevice, s.stream),
                   "copying a staged block to the GPU");
        check_cuda(cudaEventRecord(s.copied, s.stream), "cudaEventRecord");
        enqueue_subtree(s.device, len, i << kStageLog2Chunks, nblocks == 1, s.scratch,
                        s.scratch + sz.a_words, cvs_ + 8 * i, s.stream);
      }
      for (Slot& s : slots_) check_cuda(cudaStreamSynchronize(s.stream), "hashing staged blocks");
    } catch (...) {
      for (Slot& s : slots_) cudaStreamSynchronize(s.stream);
      throw;
    }
    std::vector<uint32_t> host(nblocks * 8);
    check_cuda(cudaMemcpy(host.data(), cvs_, host.size() * 4, cudaMemcpyDeviceToHost),
               "copying block chaining values back");
    auto* nodes = reinterpret_cast<uint32_t(*)[8]>(host.data());
    if (nblocks > 1) reduce_group(nodes, nblocks, true);
    Digest d{};
    cv_to_bytes(nodes[0], d.data());
    return d;
  }

 private:
  // Parts each staged block is filled in: reading a file in parallel pays up to about 8 streams.
  static unsigned fill_parts() { return std::min(8u, cairn::configured_threads()); }

  void reserve_cvs(uint64_t nblocks) {
    if (nblocks <= cvs_capacity_) return;
    cudaFree(cvs_);
    cvs_ = nullptr;
    cvs_capacity_ = 0;
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&cvs_), nblocks * 32),
               "allocating block chaining values");
    cvs_capacity_ = nblocks;
  }

  void fill_parallel(uint8_t* dst, uint64_t off, uint64_t len,
                     const std::function<void(uint8_t*, uint64_t, uint64_t)>& fill) {
    const unsigned parts = fill_parts();
    const uint64_t step = ceil_div(ceil_div(len, parts), 4096) * 4096;
    cairn::parallel_for(parts, parts, [&](std::size_t part) {
      const uint64_t begin = std::min<uint64_t>(len, part * step);
      const uint64_t end = std::min(len, begin + step);
      if (end > begin) fill(dst + begin, off + begin, end - begin);
    });
  }

  int device_;
  Slot slots_[kSlots];
  uint32_t* cvs_ = nullptr;
  uint64_t cvs_capacity_ = 0;
};

// Deliberately never destroyed at exit: CUDA may already be torn down by then.
std::mutex g_staging_mu;
Staging* g_staging = nullptr;

// Runs fn(staging) for the current device, creating the staging buffers on first use.
template <class Fn>
Digest with_staging(Fn&& fn) {
  require_gpu();
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(g_staging_mu);
  if (g_staging == nullptr || g_staging->device() != device) {
    delete g_staging;
    g_staging = nullptr;
    g_staging = new Staging(device);
  }
  return fn(*g_staging);
}

}  // namespace

Digest blake3_device(const void* device_ptr, uint64_t nbytes, uintptr_t stream) {
  require_gpu();
  if (nbytes == 0) return empty_digest();
  DeviceGuard guard(device_of(device_ptr));
  return hash_device(device_ptr, nbytes, reinterpret_cast<cudaStream_t>(stream));
}

Digest blake3_host(const void* host_ptr, uint64_t nbytes) {
  const auto* bytes = static_cast<const uint8_t*>(host_ptr);
  return with_staging([&](Staging& staging) {
    if (nbytes == 0) return empty_digest();
    const cudaPointerAttributes attr = pointer_attributes(host_ptr);
    if (attr.type == cudaMemoryTypeDevice) {
      throw std::invalid_argument(
          "blake3_host: the pointer is CUDA device memory (pass it to blake3_device)");
    }
    std::function<const uint8_t*(uint64_t)> direct;
    if (attr.type == cudaMemoryTypeHost) {  // pinned: the copy engine reads it in place
      direct = [bytes](uint64_t off) { return bytes + off; };
    }
    return staging.hash(nbytes, direct, [bytes](uint8_t* dst, uint64_t off, uint64_t len) {
      std::memcpy(dst, bytes + off, len);
    });
  });
}

Digest blake3_file(const std::string& path) {
  // Opened (and refused, as on the CPU path) before any GPU work.
  const cairn::FileReader file(path);
  if (!file.regular()) {  // a pipe or pseudo-file: no size up front, so read it whole first
    std::vector<uint8_t> buf;
    const std::size_t used = file.read_all(buf);
    return blake3_host(buf.data(), used);
  }
  return with_staging([&](Staging& staging) {
    return staging.hash(file.size(), nullptr, [&file](uint8_t* dst, uint64_t off, uint64_t len) {
      file.read_at(dst, off, len);
    });
  });
}

double blake3_device_seconds(const void* device_ptr, uint64_t nbytes, int repeats) {
  require_gpu();
  if (nbytes == 0 || repeats < 1) throw std::invalid_argument("need nbytes > 0 and repeats >= 1");
  DeviceGuard guard(device_of(device_ptr));
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  const ScratchSize sz = scratch_for(nbytes);
  uint32_t* scratch = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  float ms = 0;
  try {
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&scratch), (sz.a_words + sz.b_words + 8) * 4),
               "allocating BLAKE3 scratch");
    check_cuda(cudaEventCreate(&start), "cudaEventCreate");
    check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
    const auto* data = static_cast<const uint8_t*>(device_ptr);
    uint32_t* out = scratch + sz.a_words + sz.b_words;
    enqueue_subtree(data, nbytes, 0, true, scratch, scratch + sz.a_words, out, stream);
    check_cuda(cudaEventRecord(start, stream), "cudaEventRecord");
    for (int r = 0; r < repeats; ++r) {
      enqueue_subtree(data, nbytes, 0, true, scratch, scratch + sz.a_words, out, stream);
    }
    check_cuda(cudaEventRecord(stop, stream), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop), "running the BLAKE3 kernels");
    check_cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  } catch (...) {
    cudaStreamSynchronize(stream);
    cudaFree(scratch);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    cudaStreamDestroy(stream);
    throw;
  }
  cudaFree(scratch);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return ms / 1e3 / repeats;
}

}  // namespace cairn::gpu
