#include "write_flow_control.hpp"

#include <string>

#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/protocols.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

void WriteFlowControl::set_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
    std::size_t h = high ? *high : (low ? 4 * *low : 64 * 1024);
    std::size_t l = low ? *low : h / 4;
    if (h < l)
        throw ValueError("high (" + std::to_string(h) + ") must be >= low (" + std::to_string(l) + ") must be >= 0");
    high_ = h;
    low_ = l;
}

void WriteFlowControl::maybe_pause(std::size_t buffered, BaseProtocol* protocol, EventLoop& loop) {
    if (buffered <= high_ || paused_ || !protocol) return;
    paused_ = true;
    try {
        protocol->pause_writing();
    } catch (...) {
        loop.call_exception_handler({"protocol.pause_writing() failed", std::current_exception(), {}, {}});
    }
}

void WriteFlowControl::maybe_resume(std::size_t buffered, BaseProtocol* protocol, EventLoop& loop) {
    if (!paused_ || buffered > low_ || !protocol) return;
    paused_ = false;
    try {
        protocol->resume_writing();
    } catch (...) {
        loop.call_exception_handler({"protocol.resume_writing() failed", std::current_exception(), {}, {}});
    }
}

}  // namespace tulip::asyncio::detail
