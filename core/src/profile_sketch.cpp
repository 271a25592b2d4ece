// The log-bucket sketch's boundaries and bucket lookup (cairn/profile.hpp). The boundaries are
// std::pow(gamma, k), the same libm call behind Python's `gamma ** k`, so a bucket computed here
// and one computed by a reference in Python agree on every value, including those that sit exactly
// on a boundary; the fast lookup only guesses and is always finished against that table.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cairn/profile.hpp"

namespace cairn::profile {

namespace {

constexpr int kKeyShift = LogBuckets::kKeyShift;

uint64_t key_of(double m) {
  uint64_t bits;
  std::memcpy(&bits, &m, sizeof bits);
  return bits >> kKeyShift;
}

double lower_end(uint64_t key) {
  const uint64_t bits = key << kKeyShift;
  double m;
  std::memcpy(&m, &bits, sizeof m);
  return m;
}

}  // namespace

ValueType parse_value_type(const std::string& name) {
  static const std::pair<const char*, ValueType> kNames[] = {
      {"float32", ValueType::Float32}, {"float64", ValueType::Float64}, {"int8", ValueType::Int8},
      {"int16", ValueType::Int16},     {"int32", ValueType::Int32},     {"int64", ValueType::Int64},
      {"uint8", ValueType::UInt8},     {"uint16", ValueType::UInt16},   {"uint32", ValueType::UInt32},
      {"uint64", ValueType::UInt64}};
  for (const auto& [n, t] : kNames) {
    if (name == n) return t;
  }
  throw std::invalid_argument("unsupported value type '" + name +
                              "' (expected float32/64, int8..int64 or uint8..uint64)");
}

LogBuckets::LogBuckets(double alpha) {
  if (!(alpha >= kMinAlpha && alpha <= kMaxAlpha)) {
    throw std::invalid_argument("alpha must be in [" + std::to_string(kMinAlpha) + ", " +
                                std::to_string(kMaxAlpha) + "], got " + std::to_string(alpha));
  }
  gamma_ = (1.0 + alpha) / (1.0 - alpha);
  max_index_ = static_cast<int32_t>(std::ceil(std::log(kSketchMaxMagnitude) / std::log(gamma_)));
  // The bucket of kSketchMin: the smallest k with kSketchMin <= gamma**k, found from a guess by
  // walking the exact powers (they increase by a factor gamma per step, far above pow's error).
  int32_t k = static_cast<int32_t>(std::floor(std::log(kSketchMin) / std::log(gamma_)));
  while (std::pow(gamma_, k) < kSketchMin) ++k;
  while (std::pow(gamma_, k - 1) >= kSketchMin) --k;
  min_index_ = k;
  bounds_.resize(static_cast<size_t>(max_index_ - min_index_ + 2));
  for (int32_t j = min_index_ - 1; j <= max_index_; ++j) {
    bounds_[static_cast<size_t>(j - min_index_ + 1)] = std::pow(gamma_, j);
  }
  clamp_above_ = boundary(max_index_ - 1);
  first_key_ = key_of(kSketchMin);
  const uint64_t last_key = key_of(clamp_above_) + 1;
  guess_.resize(static_cast<size_t>(last_key - first_key_ + 1));
  for (uint64_t key = first_key_; key <= last_key; ++key) {
    const double lo = std::max(lower_end(key), kSketchMin);
    const auto it = std::lower_bound(bounds_.begin() + 1, bounds_.end(), lo);
    const int32_t bucket = static_cast<int32_t>(it - bounds_.begin()) - 1 + min_index_;
    guess_[static_cast<size_t>(key - first_key_)] = std::min(bucket, max_index_);
  }
}

int32_t LogBuckets::search(double m, int32_t lo, int32_t hi) const {
  const double* b = bounds_.data() + (lo - min_index_ + 1);
  return lo + static_cast<int32_t>(std::lower_bound(b, b + (hi - lo), m) - b);
}

void validate_edges(const double* edges, int64_t nedges, int64_t column) {
  for (int64_t j = 0; j < nedges; ++j) {
    if (std::isnan(edges[j])) {
      throw std::invalid_argument("column " + std::to_string(column) + ": edges[" + std::to_string(j) +
                                  "] is NaN; edges must be sorted numbers");
    }
    if (j > 0 && edges[j] < edges[j - 1]) {
      throw std::invalid_argument("column " + std::to_string(column) + ": edges are not sorted (edges[" +
                                  std::to_string(j) + "] < edges[" + std::to_string(j - 1) +
                                  "]); sort them ascending");
    }
  }
}

}  // namespace cairn::profile
