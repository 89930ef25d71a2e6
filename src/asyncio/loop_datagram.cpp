// EventLoop::create_datagram_endpoint (Python's base_events.create_datagram_endpoint): make a
// UDP or Unix datagram socket, bound and/or connected as asked, and wrap it in a datagram
// transport with the factory's protocol.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "transports/datagram_transport.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/tasks.hpp"
#include "tulip/log.hpp"

namespace tulip::asyncio {

namespace {

// One candidate socket: a family and protocol with the local and remote address to use.
struct AddrPair {
    int family = 0;
    int proto = 0;
    std::optional<socket::Address> local;
    std::optional<socket::Address> remote;
};

void check_given_socket(const DatagramOptions& o) {
    if (o.sock->fileno() < 0) raise_os_error(EBADF, "create_datagram_endpoint: the socket is closed");
    if (o.sock->type() != SOCK_DGRAM)
        throw ValueError("create_datagram_endpoint: a datagram socket (SOCK_DGRAM) is needed, got type " +
                         std::to_string(o.sock->type()));
    if (o.local_addr || o.remote_addr || o.local_path || o.remote_path || o.family || o.proto || o.flags ||
        o.reuse_port || o.allow_broadcast)
        throw ValueError(
            "create_datagram_endpoint: socket modifier options (local_addr, remote_addr, local_path, remote_path, "
            "family, proto, flags, reuse_port, allow_broadcast) can not be used when sock is specified");
}

// A stale socket file left by an earlier run would make bind fail: remove it, as Python does.
void remove_stale_socket_file(const std::string& path) {
    if (path.empty() || path[0] == '\0') return;  // abstract names have no file
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && ::unlink(path.c_str()) != 0)
        tulip::logger().error("Unable to check or remove stale UNIX socket {}: errno {}", path, errno);
}

std::optional<socket::Address> unix_address(const std::optional<std::string>& path) {
    if (!path) return std::nullopt;
    return socket::Address::unix_path(*path);
}

// The socket of one candidate, bound and connected; OSError on failure.
Coro<socket::Socket> open_one(EventLoop& loop, const AddrPair& pair, const DatagramOptions& o) {
    socket::Socket sock(pair.family, SOCK_DGRAM, pair.proto);
    if (o.reuse_port) sock.setsockopt(SOL_SOCKET, SO_REUSEPORT, 1);
    if (o.allow_broadcast) sock.setsockopt(SOL_SOCKET, SO_BROADCAST, 1);
    sock.setblocking(false);
    if (pair.local) sock.bind(*pair.local);
    // As Python: a broadcast endpoint keeps remote_addr as its default destination unconnected.
    if (pair.remote && !o.allow_broadcast) co_await loop.sock_connect(sock, *pair.remote);
    co_return sock;
}

// Python's pairing of resolved addresses: one candidate per (family, proto) for which every
// given address resolved.
Coro<std::vector<AddrPair>> datagram_candidates(EventLoop& loop, const DatagramOptions& o) {
    if (o.family == AF_UNIX || o.local_path || o.remote_path) {
        if (o.local_addr || o.remote_addr)
            throw ValueError("create_datagram_endpoint: Unix sockets take local_path/remote_path, not host and port");
        if (o.local_path) remove_stale_socket_file(*o.local_path);
        co_return std::vector<AddrPair>{{AF_UNIX, o.proto, unix_address(o.local_path), unix_address(o.remote_path)}};
    }
    if (!o.local_addr && !o.remote_addr) {
        if (o.family == 0) throw ValueError("create_datagram_endpoint: unexpected address family (give family, or an address)");
        co_return std::vector<AddrPair>{{o.family, o.proto, std::nullopt, std::nullopt}};
    }
    std::vector<AddrPair> pairs;  // in the resolver's order, as Python's ordered dict
    auto find = [&](int family, int proto) -> AddrPair& {
        for (auto& p : pairs)
            if (p.family == family && p.proto == proto) return p;
        pairs.push_back({family, proto, std::nullopt, std::nullopt});
        return pairs.back();
    };
    for (int idx = 0; idx < 2; ++idx) {
        const auto& addr = idx == 0 ? o.local_addr : o.remote_addr;
        if (!addr) continue;
        // "" binds the wildcard, as Python's socket.bind(("", port)).
        std::optional<std::string> host;
        int flags = o.flags;
        if (addr->first.empty()) flags |= AI_PASSIVE;
        else host = addr->first;
        std::vector<socket::AddrInfo> infos =
            co_await loop.getaddrinfo(host, addr->second, o.family, SOCK_DGRAM, o.proto, flags);
        if (infos.empty()) throw OSError(0, "getaddrinfo(" + addr->first + ") returned an empty list");
        for (const auto& info : infos) {
            AddrPair& p = find(info.family, info.proto);
            auto& slot = idx == 0 ? p.local : p.remote;
            if (!slot) slot = info.address;
        }
    }
    std::vector<AddrPair> complete;
    for (auto& p : pairs)
        if ((!o.local_addr || p.local) && (!o.remote_addr || p.remote)) complete.push_back(std::move(p));
    if (complete.empty()) throw ValueError("create_datagram_endpoint: can not get address information");
    co_return complete;
}

}  // namespace

Coro<EventLoop::DatagramTransportAndProtocol> EventLoop::create_datagram_endpoint_impl(ProtocolFactory factory,
                                                                                     DatagramOptions options) {
    check_closed();
    socket::Socket sock;
    std::optional<socket::Address> remote;
    if (options.sock) {
        check_given_socket(options);
        sock = std::move(*options.sock);
        try {
            remote = sock.getpeername();
        } catch (const OSError&) {
        }  // not connected
    } else {
        std::vector<AddrPair> candidates = co_await datagram_candidates(*this, options);
        std::exception_ptr first_error;
        bool opened = false;
        for (const AddrPair& pair : candidates) {
            std::exception_ptr failed;
            try {
                sock = co_await open_one(*this, pair, options);
                remote = pair.remote;
                opened = true;
            } catch (const OSError&) {
                failed = std::current_exception();
            }
            if (opened) break;
            if (!first_error) first_error = failed;  // Python raises the first one
        }
        if (!opened) std::rethrow_exception(first_error);
    }

    auto protocol = std::dynamic_pointer_cast<DatagramProtocol>(factory());
    if (!protocol) throw ValueError("create_datagram_endpoint: the protocol factory returned no DatagramProtocol");
    Future<void> waiter = create_future<void>();
    auto transport = detail::DatagramSocketTransport::create(*this, std::move(sock), protocol, std::move(remote), waiter);
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
    co_return DatagramTransportAndProtocol(std::move(transport), std::move(protocol));
}

}  // namespace tulip::asyncio
