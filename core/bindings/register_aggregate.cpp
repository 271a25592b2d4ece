// Bindings for cairn/aggregate.hpp. Arrays are taken zero-copy: each must already be 1-D,
// C-contiguous and of an accepted dtype (the Python wrapper cairn.core.aggregate prepares them);
// anything else is a TypeError, never a silent copy. The GIL is released while kernels run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cairn/aggregate.hpp"

namespace py = pybind11;
namespace agg = cairn::agg;

namespace {

template <class T>
bool has_dtype(const py::array& a) {
  return a.dtype().is(py::dtype::of<T>());
}

template <class T>
const T* view(const py::array& a, const char* name) {
  if (!has_dtype<T>(a) || a.ndim() != 1 || !(a.flags() & py::array::c_style)) {
    throw py::type_error(std::string(name) + " must be a 1-D C-contiguous array of " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " + std::string(py::str(a.dtype())));
  }
  return static_cast<const T*>(a.data());
}

// Calls fn(T{}) with T the value dtype (float or double).
template <class F>
auto by_value_dtype(const py::array& values, F&& fn) {
  if (has_dtype<double>(values)) return fn(double{});
  if (has_dtype<float>(values)) return fn(float{});
  throw py::type_error("values must be float32 or float64, got " + std::string(py::str(values.dtype())));
}

// The CSR layout of a call: borrowed offsets, or values regrouped by segment id.
template <class T>
struct Layout {
  const T* values = nullptr;
  int64_t n = 0;
  const int64_t* offsets = nullptr;
  int64_t nseg = 0;
  agg::Grouped<T> grouped;  // filled when grouping by ids
};

template <class T>
void group(Layout<T>& layout, const py::array& ids, int64_t nseg, bool want_order, int threads) {
  if (has_dtype<int32_t>(ids)) {
    const int32_t* id = view<int32_t>(ids, "segment_ids");
    py::gil_scoped_release release;
    layout.grouped = agg::group_by_ids(layout.values, layout.n, id, nseg, want_order, threads);
  } else {
    const int64_t* id = view<int64_t>(ids, "segment_ids");
    py::gil_scoped_release release;
    layout.grouped = agg::group_by_ids(layout.values, layout.n, id, nseg, want_order, threads);
  }
  layout.values = layout.grouped.values.data();
  layout.offsets = layout.grouped.offsets.data();
  layout.nseg = nseg;
}

template <class T>
Layout<T> make_layout(const py::array& values, const std::optional<py::array>& offsets,
                      const std::optional<py::array>& ids, int64_t nseg, bool want_order, int threads) {
  Layout<T> layout;
  layout.values = view<T>(values, "values");
  layout.n = values.shape(0);
  if (offsets) {
    layout.offsets = view<int64_t>(*offsets, "offsets");
    layout.nseg = offsets->shape(0) - 1;
    if (layout.nseg < 0) throw py::value_error("offsets must have at least one entry");
  } else if (ids) {
    if (ids->ndim() != 1 || ids->shape(0) != layout.n) {
      throw py::value_error("segment_ids must have one entry per value");
    }
    if (nseg < 0) throw py::value_error("num_segments must be >= 0");
    group(layout, *ids, nseg, want_order, threads);
  } else {
    throw py::value_error("give offsets or segment_ids");
  }
  return layout;
}

py::array_t<double> doubles(int64_t n) { return py::array_t<double>(static_cast<py::ssize_t>(n)); }
py::array_t<int64_t> int64s(int64_t n) { return py::array_t<int64_t>(static_cast<py::ssize_t>(n)); }

const std::set<std::string> kReduceOps = {"count", "nan_count", "sum", "min", "max", "mean",
                                          "var", "std", "first", "last"};
const std::set<std::string> kRollingOps = {"count", "sum", "mean", "var", "std", "min", "max"};

void check_ops(const std::vector<std::string>& ops, const std::set<std::string>& known) {
  for (const auto& op : ops) {
    if (!known.count(op)) throw py::value_error("unknown op '" + op + "'");
  }
}

py::dict segment_reduce(const py::array& values, const std::optional<py::array>& offsets,
                        const std::optional<py::array>& ids, int64_t nseg,
                        const std::vector<std::string>& ops, int ddof, int threads) {
  check_ops(ops, kReduceOps);
  return by_value_dtype(values, [&](auto tag) {
    using T = decltype(tag);
    const T* v = view<T>(values, "values");
    const int64_t n = values.shape(0);
    if (offsets) {
      nseg = offsets->shape(0) - 1;
      if (nseg < 0) throw py::value_error("offsets must have at least one entry");
    } else if (!ids) {
      throw py::value_error("give offsets or segment_ids");
    } else if (ids->ndim() != 1 || ids->shape(0) != n) {
      throw py::value_error("segment_ids must have one entry per value");
    } else if (nseg < 0) {
      throw py::value_error("num_segments must be >= 0");
    }
    py::dict result;
    agg::ReduceOutputs out;
    for (const auto& op : ops) {
      if (op == "count" || op == "nan_count") {
        auto a = int64s(nseg);
        (op == "count" ? out.count : out.nan_count) = a.mutable_data();
        result[op.c_str()] = a;
      } else {
        auto a = doubles(nseg);
        double* p = a.mutable_data();
        if (op == "sum") out.sum = p;
        if (op == "min") out.min = p;
        if (op == "max") out.max = p;
        if (op == "mean") out.mean = p;
        if (op == "var") out.var = p;
        if (op == "std") out.std = p;
        if (op == "first") out.first = p;
        if (op == "last") out.last = p;
        result[op.c_str()] = a;
      }
    }
    if (offsets) {
      const int64_t* offs = view<int64_t>(*offsets, "offsets");
      py::gil_scoped_release release;
      agg::segment_reduce(v, n, offs, nseg, out, ddof, threads);
    } else if (has_dtype<int32_t>(*ids)) {
      const int32_t* id = view<int32_t>(*ids, "segment_ids");
      py::gil_scoped_release release;
      agg::segment_reduce_by_ids(v, n, id, nseg, out, ddof, threads);
    } else {
      const int64_t* id = view<int64_t>(*ids, "segment_ids");
      py::gil_scoped_release release;
      agg::segment_reduce_by_ids(v, n, id, nseg, out, ddof, threads);
    }
    return result;
  });
}

py::array_t<double> segment_quantiles(const py::array& values, const std::optional<py::array>& offsets,
                                      const std::optional<py::array>& ids, int64_t nseg, const py::array& q,
                                      int threads) {
  const double* qs = view<double>(q, "q");
  const int64_t nq = q.shape(0);
  return by_value_dtype(values, [&](auto tag) {
    using T = decltype(tag);
    Layout<T> layout = make_layout<T>(values, offsets, ids, nseg, false, threads);
    py::array_t<double> out({static_cast<py::ssize_t>(layout.nseg), static_cast<py::ssize_t>(nq)});
    double* p = out.mutable_data();
    py::gil_scoped_release release;
    agg::segment_quantiles(layout.values, layout.n, layout.offsets, layout.nseg, qs, nq, p, threads);
    return out;
  });
}

template <bool kLttb>
py::array_t<int64_t> downsample(const py::array& x, const py::array& y, int64_t n_out) {
  if (x.ndim() != 1 || y.ndim() != 1 || x.shape(0) != y.shape(0)) {
    throw py::value_error("x and y must be 1-D and of equal length");
  }
  const int64_t n = x.shape(0);
  auto run = [&](auto xt, auto yt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    const X* xs = view<X>(x, "x");
    const Y* ys = view<Y>(y, "y");
    std::vector<int64_t> idx;
    {
      py::gil_scoped_release release;
      idx = kLttb ? agg::lttb(xs, ys, n, n_out) : agg::downsample_minmax(xs, ys, n, n_out);
    }
    auto out = int64s(static_cast<int64_t>(idx.size()));
    std::copy(idx.begin(), idx.end(), out.mutable_data());
    return out;
  };
  const bool x_int = has_dtype<int64_t>(x);
  if (!x_int && !has_dtype<double>(x)) throw py::type_error("x must be int64 or float64");
  if (has_dtype<float>(y)) return x_int ? run(int64_t{}, float{}) : run(double{}, float{});
  if (has_dtype<double>(y)) return x_int ? run(int64_t{}, double{}) : run(double{}, double{});
  throw py::type_error("y must be float32 or float64");
}

py::dict rolling(const py::array& values, const std::optional<py::array>& offsets,
                 const std::optional<py::array>& ids, int64_t nseg, int64_t window, int64_t min_periods,
                 int ddof, const std::vector<std::string>& ops, int threads) {
  check_ops(ops, kRollingOps);
  if (offsets) {
    nseg = offsets->shape(0) - 1;
    if (nseg < 0) throw py::value_error("offsets must have at least one entry");
  } else if (!ids) {
    throw py::value_error("give offsets or segment_ids");
  } else if (ids->ndim() != 1 || ids->shape(0) != values.shape(0)) {
    throw py::value_error("segment_ids must have one entry per value");
  } else if (nseg < 0) {
    throw py::value_error("num_segments must be >= 0");
  }
  return by_value_dtype(values, [&](auto tag) {
    using T = decltype(tag);
    const T* v = view<T>(values, "values");
    const int64_t n = values.shape(0);
    py::dict result;
    agg::RollingOutputs out;
    for (const auto& op : ops) {
      if (op == "count") {
        auto a = int64s(n);
        out.count = a.mutable_data();
        result["count"] = a;
        continue;
      }
      auto a = doubles(n);
      double* p = a.mutable_data();
      if (op == "sum") out.sum = p;
      if (op == "mean") out.mean = p;
      if (op == "var") out.var = p;
      if (op == "std") out.std = p;
      if (op == "min") out.min = p;
      if (op == "max") out.max = p;
      result[op.c_str()] = a;
    }
    if (offsets) {
      const int64_t* offs = view<int64_t>(*offsets, "offsets");
      py::gil_scoped_release release;
      agg::rolling(v, n, offs, nseg, window, min_periods, ddof, out, threads);
    } else if (has_dtype<int32_t>(*ids)) {
      const int32_t* id = view<int32_t>(*ids, "segment_ids");
      py::gil_scoped_release release;
      agg::rolling_by_ids(v, n, id, nseg, window, min_periods, ddof, out, threads);
    } else {
      const int64_t* id = view<int64_t>(*ids, "segment_ids");
      py::gil_scoped_release release;
      agg::rolling_by_ids(v, n, id, nseg, window, min_periods, ddof, out, threads);
    }
    return result;
  });
}

py::tuple segment_histogram(const py::array& values, const std::optional<py::array>& offsets,
                            const std::optional<py::array>& ids, int64_t nseg, const py::array& edges,
                            int threads) {
  const double* e = view<double>(edges, "edges");
  const int64_t nedges = edges.shape(0);
  if (nedges < 2) throw py::value_error("edges must have at least 2 entries");
  return by_value_dtype(values, [&](auto tag) {
    using T = decltype(tag);
    Layout<T> layout = make_layout<T>(values, offsets, ids, nseg, false, threads);
    py::array_t<int64_t> counts({static_cast<py::ssize_t>(layout.nseg), static_cast<py::ssize_t>(nedges - 1)});
    auto under = int64s(layout.nseg), over = int64s(layout.nseg), nan = int64s(layout.nseg);
    int64_t *pc = counts.mutable_data(), *pu = under.mutable_data(), *po = over.mutable_data(),
            *pn = nan.mutable_data();
    {
      py::gil_scoped_release release;
      agg::segment_histogram(layout.values, layout.n, layout.offsets, layout.nseg, e, nedges, pc, pu, po, pn,
                             threads);
    }
    return py::make_tuple(counts, under, over, nan);
  });
}

}  // namespace

void register_aggregate(py::module_& m) {
  m.def("segment_reduce", &segment_reduce, py::arg("values"), py::arg("offsets"), py::arg("segment_ids"),
        py::arg("num_segments"), py::arg("ops"), py::arg("ddof"), py::arg("threads"),
        "Segmented reductions; returns {op: array}.");
  m.def("segment_quantiles", &segment_quantiles, py::arg("values"), py::arg("offsets"),
        py::arg("segment_ids"), py::arg("num_segments"), py::arg("q"), py::arg("threads"),
        "Exact per-segment quantiles, shape (num_segments, len(q)).");
  m.def("downsample_minmax", &downsample<false>, py::arg("x"), py::arg("y"), py::arg("n_out"),
        "Indices of min/max/last points per x bucket.");
  m.def("lttb", &downsample<true>, py::arg("x"), py::arg("y"), py::arg("n_out"),
        "Indices chosen by largest-triangle-three-buckets.");
  m.def("rolling", &rolling, py::arg("values"), py::arg("offsets"), py::arg("segment_ids"),
        py::arg("num_segments"), py::arg("window"),
        py::arg("min_periods"), py::arg("ddof"), py::arg("ops"), py::arg("threads"),
        "Trailing-window statistics per segment; returns {op: array}.");
  m.def("segment_histogram", &segment_histogram, py::arg("values"), py::arg("offsets"),
        py::arg("segment_ids"), py::arg("num_segments"), py::arg("edges"), py::arg("threads"),
        "Per-segment histograms: (counts, underflow, overflow, nan_count).");
}
