#include "tulip/asyncio/detail/sock_ops.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "tulip/asyncio/detail/fd_wait.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

namespace {

bool would_block(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK; }

// Calls io() (a syscall returning -1/errno on failure) until it succeeds, waiting for readiness
// in `direction` whenever it would block. EINTR is retried at once.
template <class Io>
Coro<ssize_t> retry_when_ready(EventLoop& loop, int fd, std::uint32_t token, bool write, Io io, const char* what) {
    for (;;) {
        ssize_t n = io();
        if (n >= 0) co_return n;
        int err = errno;
        if (err == EINTR) continue;
        if (!would_block(err)) raise_os_error(err, what);
        if (write) {
            co_await wait_writable(loop, fd, token);
        } else {
            co_await wait_readable(loop, fd, token);
        }
    }
}

}  // namespace

Coro<std::size_t> sock_recv_into(EventLoop& loop, int fd, std::span<std::byte> buf, std::uint32_t file_token) {
    ssize_t n = co_await retry_when_ready(
        loop, fd, file_token, false, [&] { return ::recv(fd, buf.data(), buf.size(), 0); }, "recv");
    co_return static_cast<std::size_t>(n);
}

Coro<std::string> sock_recv(EventLoop& loop, int fd, std::size_t nbytes, std::uint32_t file_token) {
    std::string out(nbytes, '\0');
    std::size_t n = co_await sock_recv_into(loop, fd, std::as_writable_bytes(std::span(out)), file_token);
    out.resize(n);
    co_return out;
}

Coro<> sock_sendall(EventLoop& loop, int fd, std::span<const std::byte> data, std::uint32_t file_token) {
    while (!data.empty()) {
        ssize_t n = co_await retry_when_ready(
            loop, fd, file_token, true, [&] { return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL); }, "send");
        data = data.subspan(static_cast<std::size_t>(n));
    }
}

Coro<> sock_connect(EventLoop& loop, int fd, const sockaddr* addr, socklen_t len, std::string what,
                    std::uint32_t file_token) {
    int r;
    do {
        r = ::connect(fd, addr, len);
    } while (r < 0 && errno == EINTR);
    if (r == 0) co_return;
    if (errno != EINPROGRESS) raise_os_error(errno, what);
    // Non-blocking connect: writable means done; SO_ERROR says how it went.
    co_await wait_writable(loop, fd, file_token);
    int err = 0;
    socklen_t err_len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) < 0) raise_os_error(errno, what);
    if (err != 0) raise_os_error(err, what);
}

Coro<int> sock_accept(EventLoop& loop, int fd, sockaddr_storage& peer, socklen_t& peer_len, std::uint32_t file_token) {
    // Out of fds, accept4 fails at once (the listener stays readable): the error is raised, never
    // waited on, so there is no busy loop. The connection stays queued for a later accept.
    auto accept_once = [&] {
        peer_len = sizeof peer;
        ssize_t r = ::accept4(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (r < 0 && errno == EMFILE)
            raise_os_error(EMFILE, "accept (the process's open-file limit, RLIMIT_NOFILE, is reached; the "
                                   "connection stays queued until an fd is free)");
        if (r < 0 && errno == ENFILE)
            raise_os_error(ENFILE, "accept (the system's open-file limit is reached; the connection stays "
                                   "queued until an fd is free)");
        return r;
    };
    ssize_t conn = co_await retry_when_ready(loop, fd, file_token, false, accept_once, "accept");
    co_return static_cast<int>(conn);
}

Coro<std::size_t> sock_recvfrom_into(EventLoop& loop, int fd, std::span<std::byte> buf, sockaddr_storage& from,
                                     socklen_t& from_len, std::uint32_t file_token) {
    ssize_t n = co_await retry_when_ready(
        loop, fd, file_token, false,
        [&] {
            from_len = sizeof from;
            return ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
        },
        "recvfrom");
    co_return static_cast<std::size_t>(n);
}

Coro<std::size_t> sock_sendto(EventLoop& loop, int fd, std::span<const std::byte> data, const sockaddr* to,
                              socklen_t to_len, std::uint32_t file_token) {
    ssize_t n = co_await retry_when_ready(
        loop, fd, file_token, true, [&] { return ::sendto(fd, data.data(), data.size(), MSG_NOSIGNAL, to, to_len); },
        "sendto");
    co_return static_cast<std::size_t>(n);
}

}  // namespace tulip::asyncio::detail
