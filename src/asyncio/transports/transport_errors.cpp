#include "transport_errors.hpp"

#include <cerrno>

#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

std::exception_ptr make_os_error(int err, const std::string& what) {
    try {
        raise_os_error(err, what);
    } catch (...) {
        return std::current_exception();
    }
}

bool is_os_error(const std::exception_ptr& exc) noexcept {
    try {
        std::rethrow_exception(exc);
    } catch (const OSError&) {
        return true;
    } catch (...) {
        return false;
    }
}

std::optional<socket::Address> socket_peername(const socket::Socket& sock) {
    if (sock.fileno() < 0) return std::nullopt;
    try {
        return sock.getpeername();
    } catch (const OSError&) {
        return std::nullopt;  // not connected (any more)
    }
}

std::optional<socket::Address> socket_sockname(const socket::Socket& sock) {
    if (sock.fileno() < 0) return std::nullopt;
    try {
        return sock.getsockname();
    } catch (const OSError&) {
        return std::nullopt;
    }
}

std::any socket_extra_info(const socket::Socket& sock, std::string_view name) {
    if (name == "peername") {
        if (auto a = socket_peername(sock)) return *a;
    } else if (name == "sockname") {
        if (auto a = socket_sockname(sock)) return *a;
    } else if (name == "socket") {
        if (sock.fileno() >= 0) return &sock;
    }
    return {};
}

}  // namespace tulip::asyncio::detail
