// The write-buffer water marks of a transport: Python's _FlowControlMixin as a member object.
// The transport tells it how much is buffered after each change; it sends the protocol
// pause_writing() when the buffer grows past the high mark and resume_writing() when it drains
// to the low mark, each once per crossing. What either callback throws goes to the loop's
// exception handler; the transport carries on.
#pragma once

#include <cstddef>
#include <optional>
#include <utility>

namespace tulip::asyncio {
class BaseProtocol;
class EventLoop;
}  // namespace tulip::asyncio

namespace tulip::asyncio::detail {

class WriteFlowControl {
public:
    // Python's defaults: high 64 KiB, or 4 * low when only low is given; low = high / 4.
    // ValueError when high < low. The caller re-checks maybe_pause() afterwards.
    void set_limits(std::optional<std::size_t> high, std::optional<std::size_t> low);
    // {low, high}, as WriteTransport::get_write_buffer_limits.
    std::pair<std::size_t, std::size_t> limits() const noexcept { return {low_, high_}; }
    bool paused() const noexcept { return paused_; }

    // pause_writing() if `buffered` is above the high mark and the protocol is not paused yet.
    void maybe_pause(std::size_t buffered, BaseProtocol* protocol, EventLoop& loop);
    // resume_writing() if the protocol is paused and `buffered` is down to the low mark.
    void maybe_resume(std::size_t buffered, BaseProtocol* protocol, EventLoop& loop);

private:
    std::size_t high_ = 64 * 1024;
    std::size_t low_ = 16 * 1024;
    bool paused_ = false;  // pause_writing() sent, resume_writing() not yet
};

}  // namespace tulip::asyncio::detail
