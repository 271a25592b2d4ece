// Stand-in for cuda/blake3_gpu.cu when the build has no CUDA: every entry point says so.
#include <stdexcept>

#include "cairn/blake3_gpu.hpp"
#include "cairn/file_reader.hpp"

namespace cairn::gpu {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw std::runtime_error(std::string(what) +
                           ": BLAKE3 on the GPU is unavailable: no CUDA in this build "
                           "(rebuild with a CUDA compiler and CAIRN_CUDA=ON, or hash on the CPU)");
}
}  // namespace

Digest blake3_device(const void*, uint64_t, uintptr_t) { no_cuda("blake3_device"); }
Digest blake3_host(const void*, uint64_t) { no_cuda("blake3_host"); }
Digest blake3_file(const std::string& path) {
  const FileReader file(path);  // file errors first, as in the CUDA build
  no_cuda("blake3_file");
}
double blake3_device_seconds(const void*, uint64_t, int) { no_cuda("blake3_device_seconds"); }

}  // namespace cairn::gpu
