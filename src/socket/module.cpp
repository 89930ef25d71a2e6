// Module functions that make sockets: the default timeout, socketpair, fromfd,
// create_connection, create_server, has_dualstack_ipv6.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <exception>
#include <vector>

#include "tulip/socket.hpp"

namespace tulip::socket {

namespace {

// < 0: None (blocking). Process-wide, as Python's socket.setdefaulttimeout().
std::atomic<double> g_default_timeout{-1.0};

}  // namespace

std::optional<double> getdefaulttimeout() noexcept {
    double t = g_default_timeout.load(std::memory_order_relaxed);
    return t < 0 ? std::nullopt : std::optional<double>(t);
}

void setdefaulttimeout(std::optional<double> seconds) {
    if (seconds && std::isnan(*seconds)) throw ValueError("setdefaulttimeout: Invalid value NaN (not a number)");
    if (seconds && *seconds < 0) throw ValueError("setdefaulttimeout: Timeout value must be non-negative");
    g_default_timeout.store(seconds ? *seconds : -1.0, std::memory_order_relaxed);
}

std::pair<Socket, Socket> socketpair(int family, int type, int proto) {
    int fds[2];
    if (::socketpair(family, type | SOCK_CLOEXEC, proto, fds) < 0) raise_last_os_error("socketpair");
    // Each end is owned as soon as it is wrapped, so a failure leaks neither.
    Socket a(fds[0], family, type, proto);
    Socket b;
    try {
        b = Socket(fds[1], family, type, proto);
    } catch (...) {
        ::close(fds[1]);
        throw;
    }
    if (type & SOCK_NONBLOCK) {
        a.setblocking(false);
        b.setblocking(false);
    }
    return {std::move(a), std::move(b)};
}

Socket fromfd(int fd, int family, int type, int proto) {
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) raise_last_os_error("fromfd " + std::to_string(fd));
    return Socket(copy, family, type, proto);
}

Socket create_connection(std::optional<std::string_view> host, std::uint16_t port) {
    return create_connection(host, port, getdefaulttimeout());
}

Socket create_connection(std::optional<std::string_view> host, std::uint16_t port, std::optional<double> timeout,
                         const std::optional<Address>& source_address, bool all_errors) {
    // As CPython: every address getaddrinfo() gives, in order. The errors are kept (all of them
    // for all_errors, else only the last) and raised once every address has failed.
    std::vector<std::exception_ptr> errors;
    for (const auto& entry : getaddrinfo(host, port, 0, SOCK_STREAM)) {
        try {
            Socket sock(entry.family, entry.type, entry.proto);
            sock.settimeout(timeout);
            if (source_address) sock.bind(*source_address);
            sock.connect(entry.address);
            return sock;
        } catch (const OSError&) {
            if (!all_errors) errors.clear();
            errors.push_back(std::current_exception());
        }
    }
    if (errors.empty())
        raise_os_error(EADDRNOTAVAIL, "create_connection " + std::string(host.value_or("None")) + ":" +
                                          std::to_string(port) + ": getaddrinfo returns an empty list");
    if (!all_errors) std::rethrow_exception(errors.front());
    throw ExceptionGroup("create_connection failed", std::move(errors));
}

bool has_dualstack_ipv6() {
    int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int off = 0;
    bool ok = ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0;
    ::close(fd);
    return ok;
}

Socket create_server(std::string_view host, std::uint16_t port, const ServerOptions& options) {
    if (options.dualstack_ipv6 && options.family != AF_INET6)
        throw ValueError("create_server: dualstack_ipv6 requires AF_INET6 family");
    if (options.dualstack_ipv6 && !has_dualstack_ipv6())
        throw ValueError("create_server: dualstack_ipv6 not supported on this platform");
    Socket sock(options.family, SOCK_STREAM);
    // Python sets SO_REUSEADDR on POSIX so that a restarted server can bind a port whose old
    // connections are still in TIME_WAIT.
    sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
    if (options.reuse_port) sock.setsockopt(SOL_SOCKET, SO_REUSEPORT, 1);
    if (options.family == AF_INET6) sock.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, options.dualstack_ipv6 ? 0 : 1);
    sock.bind(host, port);
    if (options.backlog)
        sock.listen(*options.backlog);
    else
        sock.listen();
    return sock;
}

}  // namespace tulip::socket
