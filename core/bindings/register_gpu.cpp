// Bindings of the GPU area: BLAKE3 on CUDA (device memory, host buffers, files) and its host
// emulation for tests. Long calls release the GIL.
#include <Python.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <system_error>

#include "cairn/aggregate_gpu.hpp"
#include "cairn/blake3_gpu.hpp"
#include "cairn/charts_gpu.hpp"
#include "os_error.hpp"

namespace py = pybind11;

namespace {

// A contiguous read-only view of any buffer-protocol object, released on scope exit.
class ByteView {
 public:
  explicit ByteView(const py::object& obj) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0) throw py::error_already_set();
  }
  ~ByteView() { PyBuffer_Release(&view_); }
  ByteView(const ByteView&) = delete;
  ByteView& operator=(const ByteView&) = delete;
  const void* data() const { return view_.buf; }
  uint64_t size() const { return static_cast<uint64_t>(view_.len); }

 private:
  Py_buffer view_{};
};

cairn::gpu::ValueType value_type(const std::string& dtype, const char* name) {
  if (dtype == "float32") return cairn::gpu::ValueType::Float32;
  if (dtype == "float64") return cairn::gpu::ValueType::Float64;
  throw py::value_error(std::string(name) + " must be float32 or float64, not " + dtype);
}

cairn::gpu::XType x_type(const std::string& dtype) {
  if (dtype == "int64") return cairn::gpu::XType::Int64;
  if (dtype == "float64") return cairn::gpu::XType::Float64;
  throw py::value_error("x must be int64 or float64, not " + dtype);
}

template <class T>
T* device_ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

py::bytes digest_bytes(const cairn::gpu::Digest& d) {
  return py::bytes(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace

// Output pointers of segment_reduce_cuda from a {name: device pointer or None} dict.
cairn::gpu::SegmentOutputs segment_outputs(const py::dict& outputs) {
  cairn::gpu::SegmentOutputs out;
  for (const auto& item : outputs) {
    const std::string name = py::cast<std::string>(item.first);
    if (item.second.is_none()) continue;
    const auto ptr = py::cast<uintptr_t>(item.second);
    if (name == "count") out.count = reinterpret_cast<int64_t*>(ptr);
    else if (name == "nan_count") out.nan_count = reinterpret_cast<int64_t*>(ptr);
    else if (name == "sum") out.sum = reinterpret_cast<double*>(ptr);
    else if (name == "min") out.min = reinterpret_cast<double*>(ptr);
    else if (name == "max") out.max = reinterpret_cast<double*>(ptr);
    else if (name == "mean") out.mean = reinterpret_cast<double*>(ptr);
    else if (name == "var") out.var = reinterpret_cast<double*>(ptr);
    else throw py::value_error("unknown segment output '" + name +
                               "' (count, nan_count, sum, min, max, mean, var)");
  }
  return out;
}

static void register_gpu_charts(py::module_& m) {
  m.def(
      "segment_first_last_cuda",
      [](uintptr_t values, const std::string& dtype, uintptr_t offsets, int64_t nseg,
         uintptr_t first, uintptr_t last, uintptr_t stream) {
        const auto type = value_type(dtype, "values");
        py::gil_scoped_release release;
        cairn::gpu::segment_first_last_device(device_ptr<const void>(values), type,
                                              device_ptr<const int64_t>(offsets), nseg,
                                              device_ptr<double>(first), device_ptr<double>(last),
                                              stream);
      },
      py::arg("values"), py::arg("dtype"), py::arg("offsets"), py::arg("nseg"), py::arg("first"),
      py::arg("last"), py::arg("stream") = 0,
      "First and last non-NaN value per segment on the GPU (device pointers; 0 = not wanted).");
  m.def(
      "segment_histogram_cuda",
      [](uintptr_t values, const std::string& dtype, uintptr_t offsets, int64_t nseg,
         uintptr_t edges, int64_t nedges, uintptr_t counts, uintptr_t underflow,
         uintptr_t overflow, uintptr_t nan_count, uintptr_t stream) {
        const auto type = value_type(dtype, "values");
        py::gil_scoped_release release;
        cairn::gpu::segment_histogram_device(
            device_ptr<const void>(values), type, device_ptr<const int64_t>(offsets), nseg,
            device_ptr<const double>(edges), nedges, device_ptr<int64_t>(counts),
            device_ptr<int64_t>(underflow), device_ptr<int64_t>(overflow),
            device_ptr<int64_t>(nan_count), stream);
      },
      py::arg("values"), py::arg("dtype"), py::arg("offsets"), py::arg("nseg"), py::arg("edges"),
      py::arg("nedges"), py::arg("counts"), py::arg("underflow"), py::arg("overflow"),
      py::arg("nan_count"), py::arg("stream") = 0,
      "Per-segment histograms on the GPU over device pointers (validated inputs).");
  m.def(
      "downsample_minmax_cuda",
      [](uintptr_t x, const std::string& xdtype, uintptr_t y, const std::string& ydtype, int64_t n,
         int64_t n_out, uintptr_t triples, uintptr_t stream) {
        const auto xt = x_type(xdtype);
        const auto yt = value_type(ydtype, "y");
        py::gil_scoped_release release;
        cairn::gpu::downsample_minmax_device(device_ptr<const void>(x), xt,
                                             device_ptr<const void>(y), yt, n, n_out,
                                             device_ptr<int64_t>(triples), stream);
      },
      py::arg("x"), py::arg("xdtype"), py::arg("y"), py::arg("ydtype"), py::arg("n"),
      py::arg("n_out"), py::arg("triples"), py::arg("stream") = 0,
      "(min, max, last) index per bucket (-1: none) on the GPU; 3 * (n_out // 3) entries.");
  m.def(
      "lttb_cuda",
      [](uintptr_t x, const std::string& xdtype, uintptr_t y, const std::string& ydtype, int64_t n,
         int64_t n_out, uintptr_t indices, uintptr_t stream) {
        const auto xt = x_type(xdtype);
        const auto yt = value_type(ydtype, "y");
        py::gil_scoped_release release;
        cairn::gpu::lttb_device(device_ptr<const void>(x), xt, device_ptr<const void>(y), yt, n,
                                n_out, device_ptr<int64_t>(indices), stream);
      },
      py::arg("x"), py::arg("xdtype"), py::arg("y"), py::arg("ydtype"), py::arg("n"),
      py::arg("n_out"), py::arg("indices"), py::arg("stream") = 0,
      "The n_out indices LTTB keeps, on the GPU (needs n > n_out >= 3).");
}

// Tests only: the chart/histogram kernels' decomposition emulated on the CPU (float64 y/values).
static void register_gpu_charts_emulation(py::module_& m) {
  using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;
  using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
  m.def(
      "_segment_histogram_gpu_host_emulation",
      [](const F64& values, const I64& offsets, const F64& edges) {
        const int64_t nseg = offsets.size() - 1, nedges = edges.size();
        py::array_t<int64_t> counts({nseg, nedges - 1});
        py::array_t<int64_t> under(nseg), over(nseg), nan(nseg);
        cairn::gpu::segment_histogram_host_emulation(
            values.data(), offsets.data(), nseg, edges.data(), nedges, counts.mutable_data(),
            under.mutable_data(), over.mutable_data(), nan.mutable_data());
        return py::make_tuple(counts, under, over, nan);
      },
      py::arg("values"), py::arg("offsets"), py::arg("edges"));
  m.def(
      "_downsample_minmax_gpu_host_emulation",
      [](const py::array& x, const F64& y, int64_t n_out) {
        const bool ints = py::dtype::of<int64_t>().is(x.dtype());
        const py::array xs = ints ? py::array(I64::ensure(x)) : py::array(F64::ensure(x));
        const int64_t nb = n_out / 3;
        py::array_t<int64_t> triples({nb, int64_t{3}});
        cairn::gpu::downsample_minmax_host_emulation(
            xs.data(), ints ? cairn::gpu::XType::Int64 : cairn::gpu::XType::Float64, y.data(),
            y.size(), n_out, triples.mutable_data());
        return triples;
      },
      py::arg("x"), py::arg("y"), py::arg("n_out"));
  m.def(
      "_lttb_gpu_host_emulation",
      [](const py::array& x, const F64& y, int64_t n_out) {
        const bool ints = py::dtype::of<int64_t>().is(x.dtype());
        const py::array xs = ints ? py::array(I64::ensure(x)) : py::array(F64::ensure(x));
        py::array_t<int64_t> out(n_out);
        cairn::gpu::lttb_host_emulation(
            xs.data(), ints ? cairn::gpu::XType::Int64 : cairn::gpu::XType::Float64, y.data(),
            y.size(), n_out, out.mutable_data());
        return out;
      },
      py::arg("x"), py::arg("y"), py::arg("n_out"));
}

void register_gpu(py::module_& m) {
  register_gpu_charts(m);
  register_gpu_charts_emulation(m);
  m.def(
      "blake3_cuda_device",
      [](uintptr_t ptr, uint64_t nbytes, uintptr_t stream) {
        cairn::gpu::Digest d;
        {
          py::gil_scoped_release release;
          d = cairn::gpu::blake3_device(reinterpret_cast<const void*>(ptr), nbytes, stream);
        }
        return digest_bytes(d);
      },
      py::arg("ptr"), py::arg("nbytes"), py::arg("stream") = 0,
      "BLAKE3 digest (32 bytes) of nbytes of CUDA device memory at ptr, queued on stream "
      "(a cudaStream_t as int; 0 = legacy default stream).");
  m.def(
      "blake3_cuda_host",
      [](const py::object& buffer) {
        ByteView view(buffer);
        cairn::gpu::Digest d;
        {
          py::gil_scoped_release release;
          d = cairn::gpu::blake3_host(view.data(), view.size());
        }
        return digest_bytes(d);
      },
      py::arg("buffer"),
      "BLAKE3 digest of a contiguous host buffer, streamed to the GPU through pinned staging.");
  m.def(
      "blake3_cuda_file",
      [](const std::string& path) {
        cairn_bindings::check_path(path);
        cairn::gpu::Digest d;
        try {
          py::gil_scoped_release release;
          d = cairn::gpu::blake3_file(path);
        } catch (const std::system_error& e) {
          cairn_bindings::raise_os_error(e.code().value(), path);
        }
        return digest_bytes(d);
      },
      py::arg("path"),
      "BLAKE3 digest of a file, read into pinned buffers and hashed on the GPU; OSError (as on "
      "the CPU path, before any GPU work) when it cannot be opened or read.");
  m.def(
      "blake3_cuda_device_seconds",
      [](uintptr_t ptr, uint64_t nbytes, int repeats) {
        py::gil_scoped_release release;
        return cairn::gpu::blake3_device_seconds(reinterpret_cast<const void*>(ptr), nbytes,
                                                 repeats);
      },
      py::arg("ptr"), py::arg("nbytes"), py::arg("repeats") = 5,
      "Benchmark helper: mean seconds per device-resident hash (CUDA events, after a warm-up).");
  m.def(
      "_blake3_gpu_host_emulation",
      [](const py::object& buffer, unsigned block_log2_chunks) {
        ByteView view(buffer);
        cairn::gpu::Digest d;
        {
          py::gil_scoped_release release;
          d = cairn::gpu::blake3_host_emulation(view.data(), view.size(), block_log2_chunks);
        }
        return digest_bytes(d);
      },
      py::arg("buffer"), py::arg("block_log2_chunks") = 0,
      "Tests only: the GPU path's chunk and tree code run on the CPU (0 = one device pass, "
      "k > 0 = staged blocks of 2^k chunks combined on the host).");
  m.def(
      "segment_reduce_cuda",
      [](uintptr_t values, const std::string& dtype, int64_t n, uintptr_t offsets, int64_t nseg,
         const py::dict& outputs, int ddof, uintptr_t stream) {
        cairn::gpu::ValueType type;
        if (dtype == "float32") type = cairn::gpu::ValueType::Float32;
        else if (dtype == "float64") type = cairn::gpu::ValueType::Float64;
        else throw py::value_error("values must be float32 or float64, not " + dtype);
        const cairn::gpu::SegmentOutputs out = segment_outputs(outputs);
        py::gil_scoped_release release;
        cairn::gpu::segment_reduce_device(reinterpret_cast<const void*>(values), type, n,
                                          reinterpret_cast<const int64_t*>(offsets), nseg, out,
                                          ddof, stream);
      },
      py::arg("values"), py::arg("dtype"), py::arg("n"), py::arg("offsets"), py::arg("nseg"),
      py::arg("outputs"), py::arg("ddof") = 0, py::arg("stream") = 0,
      "Segmented reductions on the GPU over device pointers; outputs maps count, nan_count (int64) "
      "and sum, min, max, mean, var (float64) to device pointers of nseg elements, or None.");
  m.def(
      "_segment_reduce_gpu_host_emulation",
      [](py::array values, py::array_t<int64_t, py::array::c_style | py::array::forcecast> offsets,
         int ddof, bool vector_loads) {
        cairn::gpu::ValueType type;
        if (values.dtype().is(py::dtype::of<float>())) type = cairn::gpu::ValueType::Float32;
        else if (values.dtype().is(py::dtype::of<double>())) type = cairn::gpu::ValueType::Float64;
        else throw py::type_error("values must be float32 or float64");
        if (!(values.flags() & py::array::c_style) || values.ndim() != 1) {
          throw py::value_error("values must be a contiguous 1-D array");
        }
        if (offsets.ndim() != 1 || offsets.size() < 1) {
          throw py::value_error("offsets must be 1-D with nseg + 1 >= 1 elements");
        }
        const int64_t nseg = static_cast<int64_t>(offsets.size()) - 1;
        py::array_t<int64_t> count(nseg), nan_count(nseg);
        py::array_t<double> sum(nseg), min(nseg), max(nseg), mean(nseg), var(nseg);
        cairn::gpu::SegmentOutputs out;
        out.count = count.mutable_data();
        out.nan_count = nan_count.mutable_data();
        out.sum = sum.mutable_data();
        out.min = min.mutable_data();
        out.max = max.mutable_data();
        out.mean = mean.mutable_data();
        out.var = var.mutable_data();
        {
          py::gil_scoped_release release;
          cairn::gpu::segment_reduce_host_emulation(values.data(), type, values.size(),
                                                    offsets.data(), nseg, out, ddof, vector_loads);
        }
        py::dict result;
        result["count"] = count;
        result["nan_count"] = nan_count;
        result["sum"] = sum;
        result["min"] = min;
        result["max"] = max;
        result["mean"] = mean;
        result["var"] = var;
        return result;
      },
      py::arg("values"), py::arg("offsets"), py::arg("ddof") = 0, py::arg("vector_loads") = false,
      "Tests only: the GPU segmented-reduction decomposition run on the CPU (NumPy in and out); "
      "vector_loads=True emulates the float32 float4 short-segment kernel.");
}
