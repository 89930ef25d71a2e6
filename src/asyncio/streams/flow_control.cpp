// FlowControlMixin (Python's streams.FlowControlMixin): lets drain() wait while the transport
// has asked to pause writing.
#include <cerrno>

#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/streams.hpp"

namespace tulip::asyncio {

void FlowControlMixin::pause_writing() { paused_ = true; }

void FlowControlMixin::resume_writing() {
    paused_ = false;
    // Every drain() waiting goes on; setting results only schedules them.
    drain_waiters_.wake_pending(drain_waiters_.size());
}

void FlowControlMixin::connection_lost(std::exception_ptr exc) {
    connection_lost_ = true;
    // Waiters exist only while paused; wake them with the loss.
    if (!paused_) return;
    for (detail::Waiter* w = drain_waiters_.front(); w; w = w->next()) {
        if (w->future().done()) continue;
        if (exc) {
            w->future().set_exception(exc);
        } else {
            w->future().set_result();
        }
    }
}

Coro<> FlowControlMixin::drain_helper() {
    // Python raises ConnectionResetError('Connection lost') without an errno; an OSError here
    // carries one, and ECONNRESET is the errno that ConnectionResetError stands for.
    if (connection_lost_) throw ConnectionResetError(ECONNRESET, "Connection lost");
    if (!paused_) co_return;
    detail::Waiter waiter(drain_waiters_, get_running_loop());
    co_await waiter.future();  // the Waiter leaves the list when this frame ends, however
}

Coro<> FlowControlMixin::wait_closed() {
    throw RuntimeError("FlowControlMixin::wait_closed(): this protocol does not track when it is closed");
    co_return;
}

}  // namespace tulip::asyncio
