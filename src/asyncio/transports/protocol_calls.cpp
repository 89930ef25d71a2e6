#include "protocol_calls.hpp"

#include <utility>

#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/protocols.hpp"

namespace tulip::asyncio::detail {

std::exception_ptr protocol_connection_lost(BaseProtocol* protocol, std::exception_ptr exc) noexcept {
    if (!protocol) return nullptr;
    try {
        protocol->connection_lost(std::move(exc));
    } catch (...) {
        return std::current_exception();
    }
    return nullptr;
}

void report_connection_lost_failure(EventLoop& loop, std::exception_ptr failed) {
    if (failed) loop.call_exception_handler({"Exception in protocol.connection_lost()", std::move(failed), {}, {}});
}

}  // namespace tulip::asyncio::detail
