// EventLoop::create_connection and friends (Python's base_events.create_connection,
// unix_events.create_unix_connection, connect_accepted_socket): open a connected socket, then
// wrap it in a stream transport with the factory's protocol.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "transports/socket_transport.hpp"
#include "tulip/asyncio/detail/connect_any.hpp"
#include "tulip/asyncio/detail/staggered_connect.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

namespace {

void check_stream_socket(const socket::Socket& sock, const char* call) {
    if (sock.fileno() < 0) raise_os_error(EBADF, std::string(call) + ": the socket is closed");
    if (sock.type() != SOCK_STREAM)
        throw ValueError(std::string(call) + ": a stream socket (SOCK_STREAM) is needed, got type " +
                         std::to_string(sock.type()));
}

std::string describe(const socket::AddrInfo& info) { return info.address.to_string(); }

}  // namespace

namespace detail {

Coro<socket::Socket> connect_one(EventLoop& loop, socket::AddrInfo info, std::optional<socket::Address> local_addr) {
    socket::Socket sock(info.family, SOCK_STREAM, info.proto);
    sock.setblocking(false);
    if (local_addr) sock.bind(*local_addr);
    co_await loop.sock_connect(sock, info.address);
    co_return sock;
}

namespace {

// The category of the errno-less error above. std::system_error appends the category's message to
// what(), and generic_category's for 0 is strerror(0), "Success".
class ConnectErrorsCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "connect"; }
    std::string message(int) const override { return "the attempts failed with different errors"; }
};

const std::error_category& connect_errors_category() noexcept {
    static const ConnectErrorsCategory category;
    return category;
}

// An OSError built on that category (the constructor taking a code is protected).
class MultipleConnectErrors final : public OSError {
public:
    explicit MultipleConnectErrors(const std::string& what)
        : OSError(std::error_code(0, connect_errors_category()), what) {}
};

std::error_code code_of(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const OSError& e) {
        return e.code();
    }
}

std::string message_of(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const OSError& e) {
        return e.what();
    }
}

}  // namespace

void raise_connect_errors(const std::vector<ConnectFailure>& failures) {
    if (failures.size() == 1) std::rethrow_exception(failures.front().error);
    std::error_code first = code_of(failures.front().error);
    bool alike = true;
    std::string addresses;
    std::string all = "Multiple exceptions: ";
    for (std::size_t i = 0; i < failures.size(); ++i) {
        alike = alike && code_of(failures[i].error) == first;
        addresses += (i ? ", " : "") + failures[i].address;
        all += (i ? ", " : "") + failures[i].address + ": " + message_of(failures[i].error);
    }
    // Every attempt failed the same way (all refused, say): keep that error's type, as Python does.
    if (alike && first.category() == std::generic_category())
        raise_os_error(first.value(), "connect to each of " + addresses + " failed");
    if (alike) std::rethrow_exception(failures.front().error);
    throw MultipleConnectErrors(all);
}

Coro<socket::Socket> connect_any(EventLoop& loop, std::vector<socket::AddrInfo> infos,
                                 std::optional<socket::Address> local_addr) {
    if (infos.empty()) throw ValueError("connect_any: no address to connect to");
    // Try every address in turn (Python's order when happy_eyeballs_delay is not given).
    std::vector<ConnectFailure> failures;
    for (const auto& info : infos) {
        std::exception_ptr failed;
        try {
            socket::Socket sock = co_await connect_one(loop, info, local_addr);
            co_return sock;
        } catch (const OSError&) {
            failed = std::current_exception();
        }
        failures.push_back({describe(info), failed});
    }
    raise_connect_errors(failures);
}

}  // namespace detail

Coro<socket::Socket> EventLoop::open_connection_socket(std::optional<std::string> host, int port,
                                                       ConnectionOptions options) {
    if (options.sock) {
        if (host || port != 0)
            throw ValueError("create_connection: host and port may not be specified together with sock");
        check_stream_socket(*options.sock, "create_connection");
        co_return std::move(*options.sock);
    }
    if (!host) throw ValueError("create_connection: host and port must be given when sock is not");
    std::vector<socket::AddrInfo> infos =
        co_await getaddrinfo(host, port, options.family, SOCK_STREAM, options.proto, options.flags);
    if (infos.empty()) throw OSError(0, "getaddrinfo(" + *host + ") returned an empty list");
    if (options.happy_eyeballs_delay && !options.interleave) options.interleave = 1;
    if (options.interleave) infos = detail::interleave_addrinfos(std::move(infos), *options.interleave);
    if (options.happy_eyeballs_delay)
        co_return co_await detail::staggered_connect(*this, std::move(infos), *options.happy_eyeballs_delay,
                                                     std::move(options.local_addr));
    co_return co_await detail::connect_any(*this, std::move(infos), std::move(options.local_addr));
}

Coro<socket::Socket> EventLoop::open_unix_connection_socket(std::string path, ConnectionOptions options) {
    if (options.sock) {
        if (!path.empty()) throw ValueError("create_unix_connection: path and sock can not be specified at the same time");
        check_stream_socket(*options.sock, "create_unix_connection");
        if (options.sock->family() != AF_UNIX)
            throw ValueError("create_unix_connection: a Unix socket (AF_UNIX) is needed");
        co_return std::move(*options.sock);
    }
    if (path.empty()) throw ValueError("create_unix_connection: no path was specified");
    socket::Socket sock(AF_UNIX, SOCK_STREAM);
    sock.setblocking(false);
    co_await sock_connect(sock, socket::Address::unix_path(path));
    co_return sock;
}

Coro<EventLoop::TransportAndProtocol> EventLoop::make_connection_transport(socket::Socket sock,
                                                                          ProtocolFactory factory) {
    check_stream_socket(sock, "create_connection");
    std::shared_ptr<BaseProtocol> protocol = factory();
    if (!protocol) throw ValueError("the protocol factory returned no protocol");
    Future<void> waiter = create_future<void>();
    auto transport = detail::SocketTransport::create(*this, std::move(sock), protocol, waiter);
    std::exception_ptr failed;
    try {
        co_await waiter;
    } catch (...) {
        failed = std::current_exception();
    }
    if (failed) {
        transport->close();
        std::rethrow_exception(failed);
    }
    co_return TransportAndProtocol(std::move(transport), std::move(protocol));
}

}  // namespace tulip::asyncio
