// EventLoop::create_server and create_unix_server (Python's base_events.create_server and
// unix_events.create_unix_server): bind the listening sockets, then hand them to a Server.
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/server.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

namespace {

socket::Socket bound_socket(const socket::AddrInfo& info, const ServerOptions& options) {
    socket::Socket sock(info.family, SOCK_STREAM, info.proto);
    if (options.reuse_address.value_or(true)) sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
    if (options.reuse_port) sock.setsockopt(SOL_SOCKET, SO_REUSEPORT, 1);
    // One socket per family, as Python: an IPv6 socket must not also take the IPv4 port.
    if (info.family == AF_INET6) sock.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1);
    try {
        sock.bind(info.address);
    } catch (const OSError& e) {
        raise_os_error(e.code().value(),
                       "error while attempting to bind on address " + info.address.to_string());
    }
    return sock;
}

}  // namespace

Coro<std::shared_ptr<Server>> EventLoop::create_server_impl(ProtocolFactory factory,
                                                            std::vector<std::optional<std::string>> hosts, int port,
                                                            ServerOptions options) {
    if (options.backlog <= 0) throw ValueError("create_server: backlog must be positive");
    std::vector<socket::Socket> sockets;
    if (options.sock) {
        if (!(hosts.size() == 1 && !hosts[0]) || port != 0)
            throw ValueError("create_server: host/port and sock can not be specified at the same time");
        if (options.sock->type() != SOCK_STREAM) throw ValueError("create_server: a stream socket is needed");
        sockets.push_back(std::move(*options.sock));
    } else {
        if (hosts.empty()) hosts.push_back(std::nullopt);
        std::vector<socket::AddrInfo> infos;
        for (const auto& host : hosts) {
            std::vector<socket::AddrInfo> some =
                co_await getaddrinfo(host, port, options.family, SOCK_STREAM, 0, options.flags | AI_PASSIVE);
            for (auto& info : some) {
                bool seen = std::any_of(infos.begin(), infos.end(),
                                        [&](const socket::AddrInfo& i) { return i.address == info.address; });
                if (!seen) infos.push_back(std::move(info));
            }
        }
        for (const auto& info : infos) {
            try {
                sockets.push_back(bound_socket(info, options));
            } catch (const OSError& e) {
                // An IPv6 address this host cannot bind (IPv6 disabled) is skipped, as Python does.
                if (e.code().value() == EADDRNOTAVAIL && info.family == AF_INET6) continue;
                throw;
            }
        }
        if (sockets.empty()) throw OSError(EADDRNOTAVAIL, "create_server: no address to listen on");
    }
    auto server = Server::make(*this, std::move(sockets), std::move(factory), options.backlog);
    if (options.start_serving) server->start_serving();
    co_return server;
}

Coro<std::shared_ptr<Server>> EventLoop::create_unix_server_impl(ProtocolFactory factory, std::string path,
                                                                 ServerOptions options) {
    if (options.backlog <= 0) throw ValueError("create_unix_server: backlog must be positive");
    std::vector<socket::Socket> sockets;
    if (options.sock) {
        if (!path.empty()) throw ValueError("create_unix_server: path and sock can not be specified at the same time");
        if (options.sock->family() != AF_UNIX || options.sock->type() != SOCK_STREAM)
            throw ValueError("create_unix_server: a Unix stream socket is needed");
        sockets.push_back(std::move(*options.sock));
    } else {
        if (path.empty()) throw ValueError("create_unix_server: path was not specified");
        if (path[0] != '\0') {
            // Remove a stale socket file left by an earlier server (never another kind of file).
            struct stat st {};
            if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
        }
        socket::Socket sock(AF_UNIX, SOCK_STREAM);
        try {
            sock.bind(socket::Address::unix_path(path));
        } catch (const OSError& e) {
            std::string shown = path[0] == '\0' ? "@" + path.substr(1) : path;
            if (e.code().value() == EADDRINUSE) raise_os_error(EADDRINUSE, "Address " + shown + " is already in use");
            throw;
        }
        sockets.push_back(std::move(sock));
    }
    auto server = Server::make(*this, std::move(sockets), std::move(factory), options.backlog);
    if (options.start_serving) server->start_serving();
    co_return server;
}

}  // namespace tulip::asyncio
