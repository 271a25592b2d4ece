// cairn::FileReader: open(2), fstat(2), read(2), pread(2) and mmap(2) with every failure reported
// as std::system_error(errno).
#include "cairn/file_reader.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace cairn {

void throw_file_error(int err, const std::string& what, const std::string& path) {
  throw std::system_error(err, std::generic_category(), what + " '" + path + "'");
}

FileReader::FileReader(const std::string& path)
    : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
  if (fd_ < 0) throw_file_error(errno, "cannot open", path_);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw_file_error(err, "cannot stat", path_);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd_);
    throw_file_error(EISDIR, "cannot hash", path_);
  }
  regular_ = S_ISREG(st.st_mode);
  size_ = st.st_size > 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

FileReader::~FileReader() { ::close(fd_); }

std::size_t FileReader::read_all(std::vector<std::uint8_t>& buf) const {
  // The size from fstat is only a hint: the file may be growing, or be a pseudo-file reporting 0.
  if (buf.size() < size_ + 1) buf.resize(static_cast<std::size_t>(size_) + 1);
  std::size_t used = 0;
  for (;;) {
    if (used == buf.size()) buf.resize(buf.size() * 2);
    const ssize_t got = ::read(fd_, buf.data() + used, buf.size() - used);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_file_error(errno, "cannot read", path_);
    }
    if (got == 0) break;
    used += static_cast<std::size_t>(got);
  }
  return used;
}

void FileReader::read_at(std::uint8_t* dst, std::uint64_t offset, std::uint64_t len) const {
  while (len > 0) {
    const ssize_t got = ::pread(fd_, dst, std::min<std::uint64_t>(len, 1u << 30),
                                static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_file_error(errno, "cannot read", path_);
    }
    if (got == 0) throw_file_error(EIO, "file shrank while it was read:", path_);
    dst += got;
    offset += static_cast<std::uint64_t>(got);
    len -= static_cast<std::uint64_t>(got);
  }
}

FileMapping::FileMapping(const FileReader& file) : size_(static_cast<std::size_t>(file.size())) {
  data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd(), 0);
  if (data_ == MAP_FAILED) throw_file_error(errno, "cannot mmap", file.path());
  ::madvise(data_, size_, MADV_WILLNEED);
}

FileMapping::~FileMapping() { ::munmap(data_, size_); }

}  // namespace cairn
