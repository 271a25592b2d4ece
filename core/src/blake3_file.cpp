// BLAKE3 of a file: small files are read with read(2), large ones mapped with mmap(2) so that the
// threads hash straight from the page cache without a copy.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "cairn/blake3.hpp"
#include "cairn/parallel.hpp"

namespace cairn::blake3 {

namespace {

constexpr std::size_t kMmapThreshold = 1 << 20;

[[noreturn]] void throw_errno(const std::string& what, const std::string& path) {
  throw std::system_error(errno, std::generic_category(), what + " '" + path + "'");
}

class File {
 public:
  explicit File(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw_errno("cannot open", path);
  }
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Reads to end of file into `buf` (the size from fstat is only a hint: the file may be growing,
// or be a pseudo-file that reports 0); returns the number of bytes read.
std::size_t read_all(int fd, std::size_t hint, const std::string& path,
                     std::vector<std::uint8_t>& buf) {
  if (buf.size() < hint + 1) buf.resize(hint + 1);
  std::size_t used = 0;
  for (;;) {
    if (used == buf.size()) buf.resize(buf.size() * 2);
    const ssize_t got = ::read(fd, buf.data() + used, buf.size() - used);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read", path);
    }
    if (got == 0) break;
    used += static_cast<std::size_t>(got);
  }
  return used;
}

// Unmaps on scope exit.
class Mapping {
 public:
  Mapping(int fd, std::size_t size, const std::string& path) : size_(size) {
    data_ = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data_ == MAP_FAILED) throw_errno("cannot mmap", path);
    ::madvise(data_, size, MADV_WILLNEED);
  }
  ~Mapping() { ::munmap(data_, size_); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  const void* data() const { return data_; }

 private:
  void* data_;
  std::size_t size_;
};

}  // namespace

Digest hash_file(const std::string& path, unsigned threads, std::uint64_t* size_out) {
  File file(path);
  struct stat st {};
  if (::fstat(file.fd(), &st) != 0) throw_errno("cannot stat", path);
  if (S_ISDIR(st.st_mode)) {
    throw std::system_error(EISDIR, std::generic_category(), "cannot hash '" + path + "'");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  if (!S_ISREG(st.st_mode) || size < kMmapThreshold) {
    // Small files: one buffer per thread, reused from file to file.
    thread_local std::vector<std::uint8_t> buf;
    const std::size_t used = read_all(file.fd(), size, path, buf);
    const Digest d = hash(buf.data(), used, threads);
    if (buf.size() > 4 * kMmapThreshold) buf = std::vector<std::uint8_t>();  // keep it small
    if (size_out) *size_out = used;
    return d;
  }
  // A file truncated by another process while mapped raises SIGBUS; fingerprints are taken of
  // files that are not being written.
  const Mapping map(file.fd(), size, path);
  if (size_out) *size_out = size;
  return hash(map.data(), size, threads);
}

std::vector<FileDigest> hash_files(const std::vector<std::string>& paths, unsigned threads) {
  std::vector<FileDigest> out(paths.size());
  parallel_for(paths.size(), threads == 0 ? hardware_threads() : threads, [&](std::size_t i) {
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
