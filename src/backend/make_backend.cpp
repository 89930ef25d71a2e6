// Picks the backend for a new loop: explicitly, from TULIP_BACKEND, or the best available.
#include <cstdlib>
#include <string>

#include "backend.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

std::unique_ptr<Backend> make_backend(std::string_view requested) {
    std::string name(requested);
    if (name.empty()) {
        if (const char* env = std::getenv("TULIP_BACKEND"); env && *env) name = env;
    }
    if (name.empty() || name == "epoll") return make_epoll_backend();
    if (name == "poll") return make_poll_backend();
    if (name == "select") return make_select_backend();
    throw RuntimeError("unknown or unavailable tulip backend '" + name +
                       "' (this build has: epoll, poll, select)");
}

}  // namespace tulip::asyncio::detail
