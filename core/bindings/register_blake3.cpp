// Bindings for BLAKE3: buffers are taken zero-copy through the buffer protocol and hashed with
// the GIL released. Private API: the typed public face is cairn.core.fingerprint.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "cairn/blake3.hpp"
#include "cairn/parallel.hpp"
#include "os_error.hpp"

namespace py = pybind11;
using cairn_bindings::check_path;
using cairn_bindings::raise_os_error;
namespace b3 = cairn::blake3;

constexpr std::size_t kDigestLen = b3::kOutLen;

namespace {

// A read-only, C-contiguous view of any object with the buffer protocol, released on scope exit.
class ByteView {
 public:
  explicit ByteView(const py::object& obj) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_C_CONTIGUOUS) != 0) throw py::error_already_set();
  }
  ~ByteView() { PyBuffer_Release(&view_); }
  ByteView(const ByteView&) = delete;
  ByteView& operator=(const ByteView&) = delete;
  const void* data() const { return view_.buf; }
  std::size_t size() const { return static_cast<std::size_t>(view_.len); }

 private:
  Py_buffer view_{};
};

py::bytes as_bytes(const std::uint8_t* p, std::size_t n) {
  return py::bytes(reinterpret_cast<const char*>(p), n);
}

cairn::SimdLevel parse_level(const std::string& name) {
  for (auto level : {cairn::SimdLevel::Portable, cairn::SimdLevel::SSE41, cairn::SimdLevel::AVX2,
                     cairn::SimdLevel::AVX512}) {
    if (name == cairn::simd_level_name(level)) return level;
  }
  throw py::value_error("unknown SIMD level '" + name +
                        "' (expected portable, sse4.1, avx2 or avx512)");
}

}  // namespace

void register_blake3(py::module_& m) {
  m.def("threads", &cairn::configured_threads,
        "Threads every parallel call of the core may use (the caller's included): CAIRN_THREADS "
        "when set to a positive integer, else the hardware threads; read once per process.");
  m.def(
      "blake3",
      [](const py::object& data, unsigned threads) {
        ByteView view(data);
        b3::Digest d;
        {
          py::gil_scoped_release release;
          d = b3::hash(view.data(), view.size(), threads);
        }
        return as_bytes(d.data(), d.size());
      },
      py::arg("data"), py::arg("threads") = 0,
      "BLAKE3 digest (32 bytes) of a C-contiguous buffer; threads=0 uses every hardware thread.");

  m.def(
      "_blake3_with_level",
      [](const py::object& data, const std::string& level, unsigned threads) {
        const cairn::SimdLevel lvl = parse_level(level);
        ByteView view(data);
        b3::Digest d;
        {
          py::gil_scoped_release release;
          d = b3::hash_with_level(view.data(), view.size(), lvl, threads);
        }
        return as_bytes(d.data(), d.size());
      },
      py::arg("data"), py::arg("level"), py::arg("threads") = 1,
      "BLAKE3 with a forced SIMD level (tests, benchmarks); ValueError if the CPU lacks it. "
      "Level sse4.1 has no kernel of its own and runs the portable one.");

  m.def(
      "blake3_file",
      [](const std::string& path, unsigned threads) {
        check_path(path);
        b3::Digest d;
        std::uint64_t size = 0;
        try {
          py::gil_scoped_release release;
          d = b3::hash_file(path, threads, &size);
        } catch (const std::system_error& e) {
          raise_os_error(e.code().value(), path);
        }
        return py::make_tuple(as_bytes(d.data(), d.size()), size);
      },
      py::arg("path"), py::arg("threads") = 0,
      "(digest, bytes hashed) of a file; OSError when it cannot be opened or read.");

  m.def(
      "blake3_files",
      [](const std::vector<std::string>& paths, unsigned threads) {
        for (const auto& path : paths) check_path(path);
        std::vector<b3::FileDigest> results;
        {
          py::gil_scoped_release release;
          results = b3::hash_files(paths, threads);
        }
        py::list out(results.size());
        for (std::size_t i = 0; i < results.size(); ++i) {
          if (results[i].error != 0) raise_os_error(results[i].error, paths[i]);
          out[i] = py::make_tuple(as_bytes(results[i].digest.data(), kDigestLen), results[i].size);
        }
        return out;
      },
      py::arg("paths"), py::arg("threads") = 0,
      "[(digest, bytes hashed)] of many files, hashed in parallel one thread per file; OSError "
      "naming the first file that could not be read.");

  m.def(
      "leaf_cvs",
      [](const py::object& data, std::size_t leaf_size, unsigned threads) {
        ByteView view(data);
        std::vector<b3::ChainingValue> cvs;
        {
          py::gil_scoped_release release;
          cvs = b3::leaf_cvs(view.data(), view.size(), leaf_size, threads);
        }
        py::list out(cvs.size());
        for (std::size_t i = 0; i < cvs.size(); ++i) out[i] = as_bytes(cvs[i].data(), cvs[i].size());
        return out;
      },
      py::arg("data"), py::arg("leaf_size"), py::arg("threads") = 0,
      "Chaining values of the (len-1)//leaf_size aligned leaves before the tail.");

  m.def(
      "leaf_cv",
      [](const py::object& leaf, std::uint64_t index, std::size_t leaf_size, unsigned threads) {
        ByteView view(leaf);
        if (view.size() != leaf_size) {
          throw py::value_error("a leaf must be exactly leaf_size=" + std::to_string(leaf_size) +
                                " bytes, got " + std::to_string(view.size()));
        }
        b3::ChainingValue cv;
        {
          py::gil_scoped_release release;
          cv = b3::leaf_cv(view.data(), leaf_size, index, threads);
        }
        return as_bytes(cv.data(), cv.size());
      },
      py::arg("leaf"), py::arg("index"), py::arg("leaf_size"), py::arg("threads") = 0,
      "Chaining value of the full leaf at position `index`.");

  m.def(
      "root_from_leaves",
      [](const std::vector<std::string>& cvs, const py::object& tail, std::size_t leaf_size,
         unsigned threads) {
        std::vector<b3::ChainingValue> nodes(cvs.size());
        for (std::size_t i = 0; i < cvs.size(); ++i) {
          if (cvs[i].size() != b3::kOutLen) {
            throw py::value_error("chaining value " + std::to_string(i) + " has " +
                                  std::to_string(cvs[i].size()) + " bytes, expected 32");
          }
          std::memcpy(nodes[i].data(), cvs[i].data(), b3::kOutLen);
        }
        ByteView view(tail);
        b3::Digest d;
        {
          py::gil_scoped_release release;
          d = b3::root_from_leaves(nodes.data(), nodes.size(), view.data(), view.size(), leaf_size,
                                   threads);
        }
        return as_bytes(d.data(), d.size());
      },
      py::arg("cvs"), py::arg("tail"), py::arg("leaf_size"), py::arg("threads") = 0,
      "Root digest from the leaves' chaining values and the tail's bytes.");

  m.def(
      "_blake3_levels",
      []() {
        py::list out;
        for (auto level : {cairn::SimdLevel::Portable, cairn::SimdLevel::SSE41,
                           cairn::SimdLevel::AVX2, cairn::SimdLevel::AVX512}) {
          if (level <= cairn::detected_simd_level()) out.append(cairn::simd_level_name(level));
        }
        return out;
      },
      "SIMD levels this CPU can run, for _blake3_with_level.");
}
