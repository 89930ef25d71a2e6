// StreamReaderState: feeding, waking the reader, and reading flow control (Python's
// StreamReader.feed_data, feed_eof, set_exception, _wait_for_data, _maybe_resume_transport).
#include "reader_state.hpp"

#include <string>
#include <utility>

#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/exceptions.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

void StreamReaderStateBase::destroy() noexcept { delete static_cast<StreamReaderState*>(this); }

void StreamReaderState::feed_data(std::string_view data) {
    if (eof_) throw RuntimeError("StreamReader.feed_data() after feed_eof()");
    if (data.empty()) return;
    if (waiter_ && buffer_.empty()) {
        // A waiting read_into() takes the data straight into its own buffer; the rest, if any,
        // is buffered behind it, in order.
        data.remove_prefix(waiter_->deliver(data));
        if (data.empty()) {
            wakeup_waiter();
            return;
        }
    }
    buffer_.append(data);
    wakeup_waiter();
    maybe_pause_transport();
}

void StreamReaderState::raise_failed() const { std::rethrow_exception(exception_); }

void StreamReaderState::unread(std::string_view data) {
    buffer_.prepend(data);
    maybe_pause_transport();
}

void StreamReaderState::maybe_pause_transport() {
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
    if (StreamDataWaiter* w = take_waiter()) w->wake(std::move(exc));
}

void StreamReaderState::set_transport(ReadTransport& transport) {
    if (transport_) throw RuntimeError("StreamReader.set_transport(): Transport already set");
    transport_ = &transport;
}

void StreamReaderState::maybe_resume_transport() {
    if (paused_ && buffer_.size() <= limit_) {
        paused_ = false;
        if (transport_) transport_->resume_reading();
    }
}

}  // namespace tulip::asyncio::detail
