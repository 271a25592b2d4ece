// The private extension module cairn._core. Each area registers itself from its own file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_build_info(py::module_& m);
void register_areas(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "Cairn's C++/CUDA core (private; use cairn.core)";
  register_build_info(m);
  register_areas(m);
}
