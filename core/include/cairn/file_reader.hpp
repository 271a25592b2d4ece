// The one way the core reads a file, used by the CPU and the GPU fingerprint paths alike, so that a
// file that cannot be read fails the same way on either device: every failure is a
// std::system_error carrying the errno value (ENOENT, EACCES, EISDIR, ...) and naming the path,
// which the bindings turn into the matching OSError subclass (FileNotFoundError, PermissionError,
// IsADirectoryError, ...). Nothing here touches a GPU, so a file error comes before any GPU work.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cairn {

// Throws std::system_error(err) with a message "<what> '<path>'".
[[noreturn]] void throw_file_error(int err, const std::string& what, const std::string& path);

class FileReader {
 public:
  // Opens and stats the file; a directory is refused with EISDIR.
  explicit FileReader(const std::string& path);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Whether this is a regular file, whose size is known up front (pipes and pseudo-files are not).
  bool regular() const { return regular_; }
  // The size at open time: exact for a regular file, only a hint for anything else.
  std::uint64_t size() const { return size_; }

  // Reads from the current position to end of file into `buf` (grown as needed, never shrunk);
  // returns the number of bytes read.
  std::size_t read_all(std::vector<std::uint8_t>& buf) const;

  // Reads exactly `len` bytes at `offset` (safe from several threads at once). A file that ends
  // early changed while it was read: EIO.
  void read_at(std::uint8_t* dst, std::uint64_t offset, std::uint64_t len) const;

 private:
  std::string path_;
  int fd_;
  bool regular_ = false;
  std::uint64_t size_ = 0;
};

// A read-only memory mapping of a whole regular file, unmapped on scope exit.
class FileMapping {
 public:
  explicit FileMapping(const FileReader& file);
  ~FileMapping();
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  const void* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  void* data_;
  std::size_t size_;
};

}  // namespace cairn
