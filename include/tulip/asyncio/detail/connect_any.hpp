// create_connection's address loop: a non-blocking stream socket connected to the first of
// `infos` that accepts, tried in order. When all fail: the one error, the common error when all
// failed alike, or an OSError listing them ("Multiple exceptions: ..."), as Python's.
#pragma once

#include <optional>
#include <vector>

#include "tulip/asyncio/coro.hpp"
#include "tulip/socket.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

Coro<socket::Socket> connect_any(EventLoop& loop, std::vector<socket::AddrInfo> infos,
                                 std::optional<socket::Address> local_addr = std::nullopt);

}  // namespace tulip::asyncio::detail
