#include <pybind11/pybind11.h>

#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "cairn/build_info.hpp"
#include "cairn/gpu_arch.hpp"

namespace py = pybind11;

#ifndef CAIRN_CXX_COMPILER
#define CAIRN_CXX_COMPILER "unknown"
#endif

void register_build_info(py::module_& m) {
  m.def("build_info", []() {
    py::dict info;
    info["version"] = CAIRN_VERSION;
    info["compiler"] = CAIRN_CXX_COMPILER;
    info["simd"] = cairn::simd_level_name(cairn::detected_simd_level());
    info["cuda_compiled"] = cairn::cuda_compiled();
#ifdef CAIRN_CUDA_COMPILER
    info["cuda_compiler"] = CAIRN_CUDA_COMPILER;
#else
    info["cuda_compiler"] = py::none();
#endif
    // CMAKE_CUDA_ARCHITECTURES entries, e.g. ["80-real", "90"]: sm_80 SASS, sm_90 SASS + PTX.
    std::vector<std::string> archs;
    const std::string spec = cairn::built_cuda_architectures();
    std::size_t start = 0;
    while (start < spec.size()) {
      std::size_t end = spec.find(',', start);
      if (end == std::string::npos) end = spec.size();
      if (end > start) archs.push_back(spec.substr(start, end - start));
      start = end + 1;
    }
    info["cuda_architectures"] = archs;
    cairn::GpuStatus gpu;
    {
      py::gil_scoped_release release;
      gpu = cairn::gpu_status();
    }
    info["gpu_usable"] = gpu.usable;
    info["gpu_count"] = gpu.device_count;
    info["gpu_name"] = gpu.device_name.empty() ? py::object(py::none()) : py::str(gpu.device_name);
    info["gpu_compute_capability"] =
        gpu.compute_capability_major > 0 ? py::object(py::make_tuple(gpu.compute_capability_major, gpu.compute_capability_minor))
                   : py::object(py::none());
    info["gpu_reason"] = gpu.reason.empty() ? py::object(py::none()) : py::str(gpu.reason);
    return info;
  }, "Version, compiler, SIMD level, whether CUDA was compiled (and for which architectures) "
     "and whether a GPU is usable now.");
  m.def("_cuda_arch_mismatch", &cairn::cuda_arch_mismatch, py::arg("architectures"),
        py::arg("major"), py::arg("minor"),
        "Tests only: why a device of this compute capability cannot run kernels built for these "
        "CMAKE_CUDA_ARCHITECTURES (',' or ';' separated), or '' when it can.");
}
