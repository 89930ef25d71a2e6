// create_connection's address loop: a non-blocking stream socket connected to the first of
// `infos` that accepts, tried in order. When all fail: the one error, the common errno when all
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

// One failed attempt: the address tried and the OSError it raised.
struct ConnectFailure {
    std::string address;
    std::exception_ptr error;
};

// The error after every attempt failed (`failures` in attempt order, at least one):
// - one attempt: its exception, rethrown;
// - all with the same errno: that errno's OSError subclass (ConnectionRefusedError, ...) saying
//   "connect to each of A, B failed: <strerror>";
// - otherwise OSError("Multiple exceptions: A: <error>, B: <error>") with errno 0, as Python's
//   errno None; its message never ends in strerror(0)'s "Success".
// CPython's rule compares the messages, but ours name the address, so two refused addresses
// would never be "alike": the errno is what is compared.
[[noreturn]] void raise_connect_errors(const std::vector<ConnectFailure>& failures);

Coro<socket::Socket> connect_any(EventLoop& loop, std::vector<socket::AddrInfo> infos,
                                 std::optional<socket::Address> local_addr = std::nullopt);

}  // namespace tulip::asyncio::detail
