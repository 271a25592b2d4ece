// One line per area; each area's bindings live in their own register_<area>.cpp.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_blake3(py::module_& m);
void register_aggregate(py::module_& m);
void register_gpu(py::module_& m);
void register_profile(py::module_& m);

void register_areas(py::module_& m) {
  register_blake3(m);
  register_aggregate(m);
  register_gpu(m);
  register_profile(m);
}
