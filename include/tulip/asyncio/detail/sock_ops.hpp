// The loop's socket operations on a raw, non-blocking fd (Python's loop.sock_recv and friends,
// 18.5.1.9). EventLoop's sock_* methods take a tulip::socket::Socket and call these.
//
// Each one tries the syscall at once and waits for readiness (detail::FdReadyAwaiter) only when
// the kernel says EAGAIN, so a socket with data ready costs one syscall and no backend
// operation. Cancelled while waiting, an operation has consumed or sent nothing more than what
// the caller already knows about, and leaves no operation in the backend.
//
// file_token (last argument, optional): socket::Socket::open_id() of the socket behind fd, which
// lets epoll keep fd registered between waits (detail::FdReadyAwaiter); 0 for a bare fd.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "tulip/asyncio/coro.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

// Up to buf.size() bytes; 0 at end of stream.
Coro<std::size_t> sock_recv_into(EventLoop& loop, int fd, std::span<std::byte> buf, std::uint32_t file_token = 0);
// Up to nbytes bytes; empty at end of stream.
Coro<std::string> sock_recv(EventLoop& loop, int fd, std::size_t nbytes, std::uint32_t file_token = 0);
// Sends everything. On an error or a cancellation part of the data may have been sent.
Coro<> sock_sendall(EventLoop& loop, int fd, std::span<const std::byte> data, std::uint32_t file_token = 0);
// Connects; `what` names the call in errors ("connect 127.0.0.1:9").
Coro<> sock_connect(EventLoop& loop, int fd, const sockaddr* addr, socklen_t len, std::string what,
                    std::uint32_t file_token = 0);
// Accepts a connection: a new non-blocking, close-on-exec fd, and the peer's address.
Coro<int> sock_accept(EventLoop& loop, int fd, sockaddr_storage& peer, socklen_t& peer_len,
                      std::uint32_t file_token = 0);
// One datagram into buf (truncated to buf.size(), as recvfrom(2) does) and its sender.
Coro<std::size_t> sock_recvfrom_into(EventLoop& loop, int fd, std::span<std::byte> buf, sockaddr_storage& from,
                                     socklen_t& from_len, std::uint32_t file_token = 0);
// One datagram to `to` (or to the connected peer when to is null).
Coro<std::size_t> sock_sendto(EventLoop& loop, int fd, std::span<const std::byte> data, const sockaddr* to,
                              socklen_t to_len, std::uint32_t file_token = 0);

}  // namespace tulip::asyncio::detail
