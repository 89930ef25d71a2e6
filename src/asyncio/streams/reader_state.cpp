// StreamReaderState: feeding, waking the reader, and reading flow control (Python's
// StreamReader.feed_data, feed_eof, set_exception, _wait_for_data, _maybe_resume_transport).
#include "reader_state.hpp"

#include <string>

#include "tulip/asyncio/events.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

void StreamReaderState::feed_data(std::string_view data) {
    if (eof_) throw RuntimeError("StreamReader.feed_data() after feed_eof()");
    if (data.empty()) return;
    buffer_.append(data);
    wakeup_waiter();
    if (transport_ && !paused_ && buffer_.size() > 2 * limit_) {
        transport_->pause_reading();
        paused_ = true;
    }
}

void StreamReaderState::feed_eof() {
    eof_ = true;
    wakeup_waiter();
}

void StreamReaderState::set_exception(std::exception_ptr exc) {
    exception_ = exc;
    if (!waiter_) return;
    Future<> waiter = std::move(*waiter_);
    waiter_.reset();
    if (!waiter.cancelled()) waiter.set_exception(std::move(exc));
}

void StreamReaderState::set_transport(ReadTransport& transport) {
    if (transport_) throw RuntimeError("StreamReader.set_transport(): Transport already set");
    transport_ = &transport;
}

void StreamReaderState::wakeup_waiter() {
    if (!waiter_) return;
    Future<> waiter = std::move(*waiter_);
    waiter_.reset();
    if (!waiter.cancelled()) waiter.set_result();
}

void StreamReaderState::maybe_resume_transport() {
    if (paused_ && buffer_.size() <= limit_) {
        paused_ = false;
        if (transport_) transport_->resume_reading();
    }
}

Coro<> StreamReaderState::wait_for_data(const char* func_name) {
    // One future links feed_data() to one reader: with two, nobody could tell which of them
    // gets the next data.
    if (waiter_)
        throw RuntimeError(std::string(func_name) +
                           "() called while another coroutine is already waiting for incoming data");
    if (eof_) throw RuntimeError(std::string(func_name) + "() waits for data after EOF");
    if (paused_) {
        paused_ = false;
        if (transport_) transport_->resume_reading();
    }
    waiter_.emplace(get_running_loop());
    Future<> waiter = *waiter_;
    // Python's `finally: self._waiter = None`, also when cancelled. feed_data() may have
    // replaced nothing here: only this coroutine sets waiter_, and only the wakers clear it.
    struct Clear {
        StreamReaderState& s;
        const Future<>& mine;
        ~Clear() {
            if (s.waiter_ && *s.waiter_ == mine) s.waiter_.reset();
        }
    } clear{*this, waiter};
    co_await waiter;
}

}  // namespace tulip::asyncio::detail
