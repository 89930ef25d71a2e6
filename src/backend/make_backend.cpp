// Picks the backend for a new loop: explicitly, from TULIP_BACKEND, or the best available.
#include <cstdlib>
#include <string>

#include <atomic>

#include "backend.hpp"
#include "tulip/exceptions.hpp"
#include "tulip/log.hpp"

namespace tulip::asyncio::detail {

std::unique_ptr<Backend> make_backend(std::string_view requested) {
    std::string name(requested);
    if (name.empty()) {
        if (const char* env = std::getenv("TULIP_BACKEND"); env && *env) name = env;
    }
    if (name == "io_uring") {
        std::string why;
        if (auto backend = make_io_uring_backend(why)) return backend;
        // Old kernel, seccomp or io_uring_disabled: fall back, and say why once per process.
        static std::atomic<bool> logged{false};
        if (!logged.exchange(true)) tulip::logger().warn("io_uring is not available ({}); using epoll", why);
        return make_epoll_backend();
    }
    // The automatic choice stays epoll until the transports run on the socket operations: for
    // the loop's poll-only users, io_uring's re-armed POLL_ADD costs more per event than epoll.
    // See docs/backends.md, "Making io_uring the default".
    if (name.empty() || name == "epoll") return make_epoll_backend();
    if (name == "poll") return make_poll_backend();
    if (name == "select") return make_select_backend();
    throw RuntimeError("unknown or unavailable tulip backend '" + name +
                       "' (this build has: io_uring, epoll, poll, select)");
}

}  // namespace tulip::asyncio::detail
