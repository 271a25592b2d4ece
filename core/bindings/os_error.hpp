// File errors from the core (std::system_error carrying errno, see cairn/file_reader.hpp) become
// the OSError subclass Python itself would raise for that errno (FileNotFoundError,
// PermissionError, IsADirectoryError, ...), naming the path, on every path that reads files.
#pragma once
#include <Python.h>
#include <pybind11/pybind11.h>

#include <cerrno>
#include <string>

namespace cairn_bindings {

[[noreturn]] inline void raise_os_error(int err, const std::string& path) {
  errno = err;
  PyErr_SetFromErrnoWithFilename(PyExc_OSError, path.c_str());
  throw pybind11::error_already_set();
}

// Paths arrive as file-system bytes (os.fsencode), so names that are not UTF-8 work; a NUL would
// silently cut the path short, so it is refused as Python's open() does.
inline void check_path(const std::string& path) {
  if (path.find('\0') != std::string::npos) throw pybind11::value_error("embedded null byte in path");
}

}  // namespace cairn_bindings
