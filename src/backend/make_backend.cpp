// Picks the backend for a new loop: explicitly, from TULIP_BACKEND, or the best available:
// io_uring when the kernel has every feature its transports use, else epoll.
#include <atomic>
#include <cstdlib>
#include <string>

#include "backend.hpp"
#include "io_uring_probe.hpp"
#include "tulip/exceptions.hpp"
#include "tulip/log.hpp"

namespace tulip::asyncio::detail {
namespace {

std::unique_ptr<Backend> io_uring_or_epoll() {
    std::string why;
    if (io_uring_usable(why)) {
        if (auto backend = make_io_uring_backend(why)) return backend;
    }
    // Old kernel, seccomp or io_uring_disabled: fall back, and say why once per process.
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true)) tulip::logger().warn("io_uring is not available ({}); using epoll", why);
    return make_epoll_backend();
}

}  // namespace

std::unique_ptr<Backend> make_backend(std::string_view requested) {
    std::string name(requested);
    if (name.empty()) {
        if (const char* env = std::getenv("TULIP_BACKEND"); env && *env) name = env;
    }
    if (name.empty() || name == "io_uring") return io_uring_or_epoll();
    if (name == "epoll") return make_epoll_backend();
    if (name == "poll") return make_poll_backend();
    if (name == "select") return make_select_backend();
    throw RuntimeError("unknown or unavailable tulip backend '" + name +
                       "' (this build has: io_uring, epoll, poll, select)");
}

}  // namespace tulip::asyncio::detail
