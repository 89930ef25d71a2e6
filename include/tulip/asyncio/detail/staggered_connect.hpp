// create_connection's happy eyeballs (RFC 8305, Python 3.8's staggered.staggered_race and
// base_events._interleave_addrinfos).
#pragma once

#include <optional>
#include <vector>

#include "tulip/asyncio/coro.hpp"
#include "tulip/socket.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

// The addresses grouped by family in order of first appearance, then taken alternately one of
// each family, after the first `first_family_count - 1` of the first family. ValueError when
// first_family_count < 1.
std::vector<socket::AddrInfo> interleave_addrinfos(std::vector<socket::AddrInfo> infos, int first_family_count = 1);

// A staggered race over `infos`: the first attempt starts at once; each next one starts when the
// latest attempt fails or `delay` seconds after it started, whichever comes first. The first
// socket to connect is returned; every other attempt is cancelled (its socket closed) before
// this returns. When all fail: the error connect_any reports. Cancelling this cancels every
// attempt.
Coro<socket::Socket> staggered_connect(EventLoop& loop, std::vector<socket::AddrInfo> infos, double delay,
                                       std::optional<socket::Address> local_addr = std::nullopt);

}  // namespace tulip::asyncio::detail
