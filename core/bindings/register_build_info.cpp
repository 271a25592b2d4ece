#include <pybind11/pybind11.h>

#include "cairn/build_info.hpp"

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
    cairn::GpuStatus gpu;
    {
      py::gil_scoped_release release;
      gpu = cairn::gpu_status();
    }
    info["gpu_usable"] = gpu.usable;
    info["gpu_count"] = gpu.device_count;
    info["gpu_name"] = gpu.device_name.empty() ? py::object(py::none()) : py::str(gpu.device_name);
    info["gpu_compute_capability"] =
        gpu.usable ? py::object(py::make_tuple(gpu.compute_capability_major, gpu.compute_capability_minor))
                   : py::object(py::none());
    info["gpu_reason"] = gpu.reason.empty() ? py::object(py::none()) : py::str(gpu.reason);
    return info;
  }, "Version, compiler, SIMD level, whether CUDA was compiled and whether a GPU is usable now.");
}
