// Timeout conversions and the shared fd check of the select module.
#include <cmath>
#include <string>

#include "tulip/exceptions.hpp"
#include "tulip/select.hpp"

namespace tulip::select {
namespace {

// 2^62 ns, about 146 years: far enough to mean "forever", far from overflowing a time_point.
constexpr double kMaxNs = 4611686018427387904.0;

double checked(double value) {
    if (std::isnan(value)) throw ValueError("Invalid value NaN (not a number)");
    return value;
}

}  // namespace

std::chrono::nanoseconds Timeout::clamp(double ns) {
    checked(ns);
    if (ns >= kMaxNs) return std::chrono::nanoseconds{static_cast<std::int64_t>(kMaxNs)};
    if (ns <= -kMaxNs) return std::chrono::nanoseconds{-static_cast<std::int64_t>(kMaxNs)};
    return std::chrono::nanoseconds{static_cast<std::int64_t>(std::ceil(ns))};
}

Timeout Timeout::seconds(double s) { return Timeout(std::chrono::duration<double>(checked(s))); }

Timeout Timeout::milliseconds(double ms) { return Timeout(std::chrono::duration<double, std::milli>(checked(ms))); }

namespace detail {

void raise_negative_fd(int fd) {
    throw ValueError("file descriptor cannot be a negative integer (" + std::to_string(fd) + ")");
}

}  // namespace detail
}  // namespace tulip::select
