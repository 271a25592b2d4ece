// Compatibility of compiled CUDA code with a device: SASS for sm_XY runs on compute capability
// X.Y and later minors of the same major X (an "a" target only on X.Y itself); PTX for compute_XY
// is compiled by the driver for X.Y and any later capability.
#include "cairn/gpu_arch.hpp"

#include <cctype>
#include <sstream>

namespace cairn {

namespace {

bool parse_entry(const std::string& entry, CudaArch* out) {
  std::size_t i = 0;
  while (i < entry.size() && std::isdigit(static_cast<unsigned char>(entry[i]))) ++i;
  if (i < 2 || i > 3) return false;
  const int number = std::stoi(entry.substr(0, i));
  std::string rest = entry.substr(i);
  CudaArch arch;
  arch.major = number / 10;
  arch.minor = number % 10;
  if (!rest.empty() && (rest[0] == 'a' || rest[0] == 'f')) {
    arch.arch_specific = rest[0] == 'a';  // "f" (family) code runs on later minors, like plain SASS
    rest = rest.substr(1);
  }
  if (rest.empty()) {
    arch.sass = arch.ptx = true;
  } else if (rest == "-real") {
    arch.sass = true;
  } else if (rest == "-virtual") {
    arch.ptx = true;
  } else {
    return false;
  }
  *out = arch;
  return true;
}

std::string describe(const std::vector<CudaArch>& archs) {
  std::ostringstream out;
  const char* sep = "";
  for (const CudaArch& a : archs) {
    const std::string suffix = std::to_string(a.major * 10 + a.minor) + (a.arch_specific ? "a" : "");
    if (a.sass) out << sep << "sm_" << suffix, sep = ", ";
    if (a.ptx) out << sep << "compute_" << suffix << " PTX", sep = ", ";
  }
  return out.str();
}

}  // namespace

std::vector<CudaArch> parse_cuda_architectures(const std::string& spec, bool* unknown) {
  std::vector<CudaArch> archs;
  if (unknown) *unknown = false;
  std::string entry;
  std::istringstream in(spec);
  while (std::getline(in, entry, spec.find(';') != std::string::npos ? ';' : ',')) {
    if (entry.empty()) continue;
    CudaArch arch;
    if (parse_entry(entry, &arch)) {
      archs.push_back(arch);
    } else if (unknown) {
      *unknown = true;
    }
  }
  return archs;
}

std::string cuda_arch_mismatch(const std::string& spec, int major, int minor) {
  bool unknown = false;
  const std::vector<CudaArch> archs = parse_cuda_architectures(spec, &unknown);
  if (unknown || archs.empty()) return "";  // e.g. "native": only a launch could tell
  const int cc = major * 10 + minor;
  for (const CudaArch& a : archs) {
    const int built = a.major * 10 + a.minor;
    if (a.arch_specific) {
      if (cc == built) return "";
      continue;
    }
    if (a.sass && major == a.major && minor >= a.minor) return "";
    if (a.ptx && cc >= built) return "";
  }
  return "compute capability " + std::to_string(major) + "." + std::to_string(minor) +
         " has no kernels in this build (built for " + describe(archs) +
         "); rebuild with CMAKE_CUDA_ARCHITECTURES including " + std::to_string(cc);
}

}  // namespace cairn
