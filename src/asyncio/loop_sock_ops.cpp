// EventLoop's sock_* methods: the Socket-typed face of detail::sock_ops.
#include <sys/socket.h>

#include "tulip/asyncio/detail/sock_ops.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

namespace {

int nonblocking_fd(const socket::Socket& sock, const char* call) {
    if (sock.fileno() < 0) raise_os_error(EBADF, std::string(call) + ": the socket is closed");
    if (sock.getblocking())
        throw ValueError(std::string(call) + ": the socket must be non-blocking (call setblocking(false))");
    return sock.fileno();
}

// Names the open socket to the backend, so that epoll can keep it registered between waits.
std::uint32_t file_token(const socket::Socket& sock) noexcept { return static_cast<std::uint32_t>(sock.open_id()); }

}  // namespace

Coro<std::string> EventLoop::sock_recv(socket::Socket& sock, std::size_t nbytes) {
    int fd = nonblocking_fd(sock, "sock_recv");
    co_return co_await detail::sock_recv(*this, fd, nbytes, file_token(sock));
}

Coro<std::size_t> EventLoop::sock_recv_into(socket::Socket& sock, std::span<std::byte> buf) {
    int fd = nonblocking_fd(sock, "sock_recv_into");
    co_return co_await detail::sock_recv_into(*this, fd, buf, file_token(sock));
}

Coro<std::pair<std::size_t, socket::Address>> EventLoop::sock_recvfrom_into(socket::Socket& sock,
                                                                           std::span<std::byte> buf) {
    int fd = nonblocking_fd(sock, "sock_recvfrom_into");
    sockaddr_storage from{};
    socklen_t from_len = 0;
    std::size_t n = co_await detail::sock_recvfrom_into(*this, fd, buf, from, from_len, file_token(sock));
    co_return std::pair<std::size_t, socket::Address>(
        n, socket::Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&from), from_len));
}

Coro<std::pair<std::string, socket::Address>> EventLoop::sock_recvfrom(socket::Socket& sock, std::size_t bufsize) {
    std::string data(bufsize, '\0');
    auto [n, from] = co_await sock_recvfrom_into(sock, std::as_writable_bytes(std::span(data)));
    data.resize(n);
    co_return std::pair<std::string, socket::Address>(std::move(data), std::move(from));
}

Coro<> EventLoop::sock_sendall(socket::Socket& sock, std::span<const std::byte> data) {
    int fd = nonblocking_fd(sock, "sock_sendall");
    co_await detail::sock_sendall(*this, fd, data, file_token(sock));
}

Coro<> EventLoop::sock_sendall(socket::Socket& sock, std::string_view data) {
    return sock_sendall(sock, std::as_bytes(std::span(data.data(), data.size())));
}

Coro<std::size_t> EventLoop::sock_sendto(socket::Socket& sock, std::string_view data, const socket::Address& address) {
    int fd = nonblocking_fd(sock, "sock_sendto");
    sockaddr_storage to{};
    socklen_t to_len = address.to_sockaddr(to);
    co_return co_await detail::sock_sendto(*this, fd, std::as_bytes(std::span(data.data(), data.size())),
                                           reinterpret_cast<const sockaddr*>(&to), to_len, file_token(sock));
}

Coro<> EventLoop::sock_connect(socket::Socket& sock, const socket::Address& address) {
    int fd = nonblocking_fd(sock, "sock_connect");
    sockaddr_storage to{};
    socklen_t to_len = address.to_sockaddr(to);
    co_await detail::sock_connect(*this, fd, reinterpret_cast<const sockaddr*>(&to), to_len,
                                  "connect " + address.to_string(), file_token(sock));
}

Coro<std::pair<socket::Socket, socket::Address>> EventLoop::sock_accept(socket::Socket& sock) {
    int fd = nonblocking_fd(sock, "sock_accept");
    sockaddr_storage peer{};
    socklen_t peer_len = 0;
    int conn_fd = co_await detail::sock_accept(*this, fd, peer, peer_len, file_token(sock));
    socket::Socket conn(socket::Socket::Fileno{conn_fd});
    conn.setblocking(false);
    co_return std::pair<socket::Socket, socket::Address>(
        std::move(conn), socket::Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer), peer_len));
}

}  // namespace tulip::asyncio
