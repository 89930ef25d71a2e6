// Protocol callbacks that every transport makes the same way.
#pragma once

#include <exception>

namespace tulip::asyncio {
class BaseProtocol;
class EventLoop;
}  // namespace tulip::asyncio

namespace tulip::asyncio::detail {

// protocol->connection_lost(exc) (nothing when `protocol` is null); returns what it threw, or null.
// The transport releases its fd and protocol next, then hands the result to
// report_connection_lost_failure, so the report comes after the cleanup (as Python's finally).
std::exception_ptr protocol_connection_lost(BaseProtocol* protocol, std::exception_ptr exc) noexcept;

// "Exception in protocol.connection_lost()" to the loop's exception handler, if `failed` is set.
void report_connection_lost_failure(EventLoop& loop, std::exception_ptr failed);

}  // namespace tulip::asyncio::detail
