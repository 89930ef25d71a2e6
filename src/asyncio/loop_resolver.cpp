// EventLoop::getaddrinfo / getnameinfo: the blocking resolver, run on the default executor.
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

namespace {

// The job owns copies of its arguments: the caller's may be gone when a worker runs it. It is
// built as a named value before the co_await: with a lambda temporary written inside the co_await
// expression, g++ 12 freed the lambda's captured string twice.
struct AddrInfoJob {
    std::optional<std::string> host;
    int port, family, type, proto, flags;
    std::vector<socket::AddrInfo> operator()() const {
        return socket::getaddrinfo(host ? std::optional<std::string_view>(*host) : std::nullopt, port, family, type,
                                   proto, flags);
    }
};

struct NameInfoJob {
    socket::Address address;
    int flags;
    std::pair<std::string, std::string> operator()() const { return socket::getnameinfo(address, flags); }
};

}  // namespace

Coro<std::vector<socket::AddrInfo>> EventLoop::getaddrinfo(std::optional<std::string> host, int port, int family,
                                                           int type, int proto, int flags) {
    auto lookup = run_in_executor(AddrInfoJob{std::move(host), port, family, type, proto, flags});
    co_return co_await lookup;
}

Coro<std::pair<std::string, std::string>> EventLoop::getnameinfo(socket::Address address, int flags) {
    auto lookup = run_in_executor(NameInfoJob{std::move(address), flags});
    co_return co_await lookup;
}

}  // namespace tulip::asyncio
