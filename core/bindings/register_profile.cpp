// Bindings for cairn/profile.hpp. Columns arrive as buffers, zero-copy: per column a value type
// name and its pieces (data buffer, validity buffer or None, offset in elements, length), as
// cairn.core.profile prepares them from Arrow arrays (Array.buffers(), Array.offset) or numpy
// arrays. Every buffer is bounds-checked against the offset and length before the GIL is released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cairn/profile.hpp"
#include "cairn/profile_gpu.hpp"

namespace py = pybind11;
namespace prof = cairn::profile;
namespace gprof = cairn::gpu::prof;

namespace {

// A read-only view of an object with the buffer protocol, held until the computation is done.
class BufferView {
 public:
  explicit BufferView(const py::handle& obj) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_C_CONTIGUOUS) != 0) throw py::error_already_set();
  }
  ~BufferView() { PyBuffer_Release(&view_); }
  BufferView(const BufferView&) = delete;
  BufferView& operator=(const BufferView&) = delete;
  const uint8_t* data() const { return static_cast<const uint8_t*>(view_.buf); }
  int64_t size() const { return static_cast<int64_t>(view_.len); }

 private:
  Py_buffer view_{};
};

int64_t item_size(prof::ValueType t) {
  switch (t) {
    case prof::ValueType::Int8:
    case prof::ValueType::UInt8: return 1;
    case prof::ValueType::Int16:
    case prof::ValueType::UInt16: return 2;
    case prof::ValueType::Float32:
    case prof::ValueType::Int32:
    case prof::ValueType::UInt32: return 4;
    default: return 8;
  }
}

std::string where(size_t c) { return "column " + std::to_string(c) + ": "; }

py::array_t<int64_t> int64_array(const std::vector<int64_t>& v) {
  py::array_t<int64_t> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

py::list stats_tuples(const std::vector<prof::NumericStats>& stats) {
  py::list out;
  for (const auto& s : stats) {
    py::object hist = s.has_hist ? py::object(int64_array(s.hist)) : py::object(py::none());
    out.append(py::make_tuple(s.count, s.missing, s.min, s.max, s.mean, s.m2, s.zero, s.pos_offset,
                              int64_array(s.pos), s.neg_offset, int64_array(s.neg), hist));
  }
  return out;
}

py::list profile_numeric(const py::list& columns, const py::list& edges, double alpha, int threads) {
  if (edges.size() != columns.size()) {
    throw py::value_error("edges has " + std::to_string(edges.size()) + " entries for " +
                          std::to_string(columns.size()) + " columns; give one per column (None for none)");
  }
  std::vector<std::unique_ptr<BufferView>> held;
  std::vector<prof::Column> cols(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    const auto spec = columns[c].cast<py::tuple>();
    if (spec.size() != 2) throw py::value_error(where(c) + "expected (type name, pieces)");
    prof::Column& col = cols[c];
    try {
      col.type = prof::parse_value_type(spec[0].cast<std::string>());
    } catch (const std::invalid_argument& e) {
      throw py::type_error(where(c) + e.what());
    }
    const int64_t width = item_size(col.type);
    for (const auto& item : spec[1].cast<py::list>()) {
      const auto piece = item.cast<py::tuple>();
      if (piece.size() != 4) throw py::value_error(where(c) + "a piece is (data, validity, offset, length)");
      const int64_t offset = piece[2].cast<int64_t>(), length = piece[3].cast<int64_t>();
      if (offset < 0 || length < 0) throw py::value_error(where(c) + "offset and length must be >= 0");
      prof::Piece p;
      p.length = length;
      p.validity_bit = offset;
      if (!piece[0].is_none()) {
        held.push_back(std::make_unique<BufferView>(piece[0]));
        if (held.back()->size() < (offset + length) * width) {
          throw py::value_error(where(c) + "data buffer holds " + std::to_string(held.back()->size()) +
                                " bytes, fewer than offset + length values need");
        }
        p.data = held.back()->data() + offset * width;
      }
      if (!piece[1].is_none()) {
        held.push_back(std::make_unique<BufferView>(piece[1]));
        if (held.back()->size() < (offset + length + 7) / 8) {
          throw py::value_error(where(c) + "validity bitmap shorter than offset + length bits");
        }
        p.validity = held.back()->data();
      }
      col.pieces.push_back(p);
    }
    if (!edges[c].is_none()) {
      const auto e = edges[c].cast<py::array>();
      if (!e.dtype().is(py::dtype::of<double>()) || e.ndim() != 1 || !(e.flags() & py::array::c_style)) {
        throw py::type_error(where(c) + "edges must be a 1-D C-contiguous float64 array");
      }
      col.has_edges = true;
      col.edges = static_cast<const double*>(e.data());
      col.nedges = e.shape(0);
    }
  }
  std::vector<prof::NumericStats> stats;
  {
    py::gil_scoped_release release;
    stats = prof::numeric_stats(cols, alpha, threads);
  }
  return stats_tuples(stats);
}

// The sketch's boundary table for the GPU path, computed by LogBuckets (std::pow) on the host.
struct HostTable {
  std::vector<double> bounds;
  gprof::SketchTable table;
  explicit HostTable(double alpha) {
    const prof::LogBuckets b(alpha);
    for (int32_t k = b.min_index() - 1; k <= b.max_index(); ++k) bounds.push_back(b.boundary(k));
    table.inv_log_gamma = 1.0 / std::log(b.gamma());
    table.min_index = b.min_index();
    table.max_index = b.max_index();
    table.clamp_above = b.boundary(b.max_index() - 1);
    table.bounds = bounds.data();
  }
};

// Device columns from (data pointer, "float32"|"float64", length, edges pointer, nedges or -1 for
// no histogram); the Python face has validated them (cairn.core.profile_gpu).
std::vector<gprof::DeviceColumn> device_columns(const py::list& columns) {
  std::vector<gprof::DeviceColumn> cols;
  for (size_t c = 0; c < columns.size(); ++c) {
    const auto spec = columns[c].cast<py::tuple>();
    if (spec.size() != 5) throw py::value_error(where(c) + "expected (data, dtype, length, edges, nedges)");
    gprof::DeviceColumn col;
    col.data = reinterpret_cast<const void*>(spec[0].cast<uintptr_t>());
    const auto dtype = spec[1].cast<std::string>();
    if (dtype != "float32" && dtype != "float64") {
      throw py::type_error(where(c) + "device columns must be float32 or float64, not " + dtype);
    }
    col.float32 = dtype == "float32";
    col.length = spec[2].cast<int64_t>();
    col.edges = reinterpret_cast<const double*>(spec[3].cast<uintptr_t>());
    col.nedges = spec[4].cast<int64_t>();
    col.has_edges = col.nedges >= 0;
    if (!col.has_edges) col.nedges = 0;
    if (col.length < 0) throw py::value_error(where(c) + "length must be >= 0");
    cols.push_back(col);
  }
  return cols;
}

py::list profile_numeric_cuda(const py::list& columns, double alpha, uintptr_t stream) {
  const HostTable t(alpha);
  const auto cols = device_columns(columns);
  std::vector<prof::NumericStats> stats;
  {
    py::gil_scoped_release release;
    stats = gprof::numeric_stats_device(cols, t.table, stream);
  }
  return stats_tuples(stats);
}

double profile_numeric_cuda_seconds(const py::list& columns, double alpha, int repeats) {
  const HostTable t(alpha);
  const auto cols = device_columns(columns);
  py::gil_scoped_release release;
  return gprof::numeric_stats_device_seconds(cols, t.table, repeats);
}

// Tests only: the kernel's decomposition on the CPU, over 1-D contiguous float32/float64 arrays.
py::list profile_numeric_emulation(const py::list& columns, const py::list& edges, double alpha) {
  if (edges.size() != columns.size()) throw py::value_error("give one edges entry per column");
  const HostTable t(alpha);
  std::vector<gprof::DeviceColumn> cols(columns.size());
  std::vector<py::array> keep;
  for (size_t c = 0; c < columns.size(); ++c) {
    const auto a = columns[c].cast<py::array>();
    const bool f32 = a.dtype().is(py::dtype::of<float>());
    if ((!f32 && !a.dtype().is(py::dtype::of<double>())) || a.ndim() != 1 || !(a.flags() & py::array::c_style)) {
      throw py::type_error(where(c) + "a 1-D contiguous float32 or float64 array");
    }
    keep.push_back(a);
    cols[c].data = a.data();
    cols[c].float32 = f32;
    cols[c].length = a.shape(0);
    if (!edges[c].is_none()) {
      const auto e = edges[c].cast<py::array_t<double, py::array::c_style | py::array::forcecast>>();
      keep.push_back(e);
      prof::validate_edges(e.data(), e.shape(0), static_cast<int64_t>(c));
      cols[c].edges = e.data();
      cols[c].nedges = e.shape(0);
      cols[c].has_edges = true;
    }
  }
  std::vector<prof::NumericStats> stats;
  {
    py::gil_scoped_release release;
    stats = gprof::numeric_stats_host_emulation(cols, t.table);
  }
  return stats_tuples(stats);
}

py::tuple sketch_layout(double alpha) {
  const prof::LogBuckets b(alpha);
  return py::make_tuple(b.gamma(), b.min_index(), b.max_index());
}

}  // namespace

void register_profile(py::module_& m) {
  m.def("profile_numeric", &profile_numeric, py::arg("columns"), py::arg("edges"), py::arg("alpha"),
        py::arg("threads"),
        "Numeric column statistics in one pass: per column a tuple (count, missing, min, max, mean, m2, "
        "zero, pos_offset, pos, neg_offset, neg, hist or None).");
  m.def("profile_sketch_layout", &sketch_layout, py::arg("alpha"),
        "(gamma, min_index, max_index) of the log-bucket sketch for alpha.");
  m.def("profile_numeric_cuda", &profile_numeric_cuda, py::arg("columns"), py::arg("alpha"),
        py::arg("stream") = 0,
        "Numeric column statistics on the GPU over device columns (data pointer, dtype, length, edges "
        "pointer, nedges or -1); the same tuples as profile_numeric.");
  m.def("profile_numeric_cuda_seconds", &profile_numeric_cuda_seconds, py::arg("columns"),
        py::arg("alpha"), py::arg("repeats") = 3,
        "Benchmark helper: mean seconds of the GPU profile of device columns (CUDA events).");
  m.def("_profile_numeric_gpu_host_emulation", &profile_numeric_emulation, py::arg("columns"),
        py::arg("edges"), py::arg("alpha"),
        "Tests only: the GPU profile kernel's decomposition run on the CPU over numpy columns.");
}
