// BLAKE3 of a file: small files are read with read(2), large ones mapped with mmap(2) so that the
// threads hash straight from the page cache without a copy. Files are read through
// cairn::FileReader, as on the GPU path, so errors are the same std::system_error on both.
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "cairn/blake3.hpp"
#include "cairn/file_reader.hpp"
#include "cairn/parallel.hpp"

namespace cairn::blake3 {

namespace {

constexpr std::size_t kMmapThreshold = 1 << 20;

}  // namespace

Digest hash_file(const std::string& path, unsigned threads, std::uint64_t* size_out) {
  const FileReader file(path);
  const auto size = static_cast<std::size_t>(file.size());
  if (!file.regular() || size < kMmapThreshold) {
    // Small files: one buffer per thread, reused from file to file.
    thread_local std::vector<std::uint8_t> buf;
    const std::size_t used = file.read_all(buf);
    const Digest d = hash(buf.data(), used, threads);
    if (buf.size() > 4 * kMmapThreshold) buf = std::vector<std::uint8_t>();  // keep it small
    if (size_out) *size_out = used;
    return d;
  }
  // A file truncated by another process while mapped raises SIGBUS; fingerprints are taken of
  // files that are not being written.
  const FileMapping map(file);
  if (size_out) *size_out = size;
  return hash(map.data(), size, threads);
}

std::vector<FileDigest> hash_files(const std::vector<std::string>& paths, unsigned threads) {
  std::vector<FileDigest> out(paths.size());
  parallel_for(paths.size(), threads, [&](std::size_t i) {
    try {
      out[i].digest = hash_file(paths[i], 1, &out[i].size);
    } catch (const std::system_error& e) {
      out[i].error = e.code().value();
    } catch (const std::exception&) {
      out[i].error = EIO;
    }
  });
  return out;
}

}  // namespace cairn::blake3
