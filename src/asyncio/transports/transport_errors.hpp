// What every transport does the same way with errors and with its socket's addresses.
#pragma once

#include <any>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "tulip/socket.hpp"

namespace tulip::asyncio::detail {

// The OSError subclass for err (ConnectionResetError, BrokenPipeError, ...), as an exception_ptr
// for connection_lost or error_received.
std::exception_ptr make_os_error(int err, const std::string& what);

// A non-blocking call that found nothing to do (or was interrupted): try again later.
inline bool is_would_block(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

// Python's rule for a transport's fatal error: OS errors (resets, broken pipes) reach
// connection_lost only; anything else is also reported to the loop's exception handler.
bool is_os_error(const std::exception_ptr& exc) noexcept;

// get_extra_info's "peername", "sockname" and "socket" for a transport over `sock`; empty for any
// other name, or when the socket is closed or not connected.
std::any socket_extra_info(const socket::Socket& sock, std::string_view name);
std::optional<socket::Address> socket_peername(const socket::Socket& sock);
std::optional<socket::Address> socket_sockname(const socket::Socket& sock);

}  // namespace tulip::asyncio::detail
