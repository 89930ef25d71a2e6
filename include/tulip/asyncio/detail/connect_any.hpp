// create_connection's address loop: a non-blocking stream socket connected to the first of
// `infos` that accepts, tried in order. When all fail: the one error, the common error when all
// failed alike, or an OSError listing them ("Multiple exceptions: ..."), as Python's.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "tulip/asyncio/coro.hpp"
#include "tulip/socket.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

// One attempt: a non-blocking socket of the address's family, bound to local_addr if given,
// connected. Throws OSError on failure; on cancellation the socket is closed.
Coro<socket::Socket> connect_one(EventLoop& loop, socket::AddrInfo info, std::optional<socket::Address> local_addr);

// The error after every attempt failed: `errors` are "address: message" in attempt order and
// `last` is the last attempt's exception. Rethrows it when it is the only one or all failed
// alike; else OSError("Multiple exceptions: ...").
[[noreturn]] void raise_connect_errors(const std::vector<std::string>& errors, std::exception_ptr last);

Coro<socket::Socket> connect_any(EventLoop& loop, std::vector<socket::AddrInfo> infos,
                                 std::optional<socket::Address> local_addr = std::nullopt);

}  // namespace tulip::asyncio::detail
