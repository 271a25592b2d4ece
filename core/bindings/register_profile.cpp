// Bindings for cairn/profile.hpp. Columns arrive as buffers, zero-copy: per column a value type
// name and its pieces (data buffer, validity buffer or None, offset in elements, length), as
// cairn.core.profile prepares them from Arrow arrays (Array.buffers(), Array.offset) or numpy
// arrays. Every buffer is bounds-checked against the offset and length before the GIL is released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cairn/profile.hpp"

namespace py = pybind11;
namespace prof = cairn::profile;

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
  py::list out;
  for (const auto& s : stats) {
    py::object hist = s.has_hist ? py::object(int64_array(s.hist)) : py::object(py::none());
    out.append(py::make_tuple(s.count, s.missing, s.min, s.max, s.mean, s.m2, s.zero, s.pos_offset,
                              int64_array(s.pos), s.neg_offset, int64_array(s.neg), hist));
  }
  return out;
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
}
