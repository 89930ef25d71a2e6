// The one waiting reader of a stream (Python's StreamReader._wait_for_data) and read_into(),
// which waits through it. One file, so that read_into()'s path inlines the waiter's steps.
#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "reader_state.hpp"
#include "tulip/asyncio/detail/future_state.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/exceptions.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio::detail {

void StreamReaderState::before_wait(const char* func_name) {
    // One waiter links feed_data() to one reader: with two, nobody could tell which of them
    // gets the next data.
    if (waiter_)
        throw RuntimeError(std::string(func_name) +
                           "() called while another coroutine is already waiting for incoming data");
    if (eof_) throw RuntimeError(std::string(func_name) + "() waits for data after EOF");
    if (paused_) {
        paused_ = false;
        if (transport_) transport_->resume_reading();
    }
}

void StreamDataWaiter::prepare_slowly(StreamReaderState& state, const char* func_name) {
    TaskCore* task = current_task_core();
    if (!task)
        throw RuntimeError(std::string(func_name) +
                           "(): co_await outside a task: run the coroutine with asyncio::run(), "
                           "create_task() or run_until_complete()");
    state.before_wait(func_name);
    begin(state, *task);
}

void StreamDataWaiter::abandon() noexcept {
    // The frame is destroyed while it waits (its task abandoned as the loop closes): leave the
    // reader and let go of the task.
    state_->end_wait(*this);
    state_ = nullptr;
    task_->future_state().release();
}

std::size_t StreamDataWaiter::deliver(std::string_view data) noexcept {
    const std::size_t n = std::min(data.size(), direct_.size());
    if (n != 0) std::memcpy(direct_.data(), data.data(), n);
    direct_ = {};
    received_ = n;
    return n;
}

bool StreamDataWaiter::cancel_wait(const std::string& msg) {
    if (!state_) return false;  // woken already: the cancel is delivered when the task resumes
    state_->end_wait(*this);
    wake(std::make_exception_ptr(CancelledError(msg)));
    return true;
}

}  // namespace tulip::asyncio::detail

namespace tulip::asyncio {

using detail::StreamReaderState;

bool ReadIntoAwaiter::await_ready() {
    StreamReaderState& s = state();
    s.raise_if_failed();
    if (buffer_.empty() || !s.buffer().empty() || s.eof()) return true;
    waiter_.receive_into(buffer_);
    waiter_.prepare(s, "read_into");
    return false;
}

std::size_t ReadIntoAwaiter::await_resume() {
    std::size_t got = 0;
    if (waiter_.registered()) {  // the read waited
        got = waiter_.received();
        if (waiter_.must_raise()) [[unlikely]]
            raise_after_wait(got);
        // The usual end of a read that waited: its data came straight into the buffer.
        if (got == buffer_.size() || state().buffer().empty()) return got;
    }
    return take_buffered(got);
}

void ReadIntoAwaiter::raise_after_wait(std::size_t got) {
    try {
        waiter_.resume();
    } catch (...) {
        // Cancelled after the data had come into the buffer: give it back, take nothing.
        if (got != 0) state().unread(std::string_view(reinterpret_cast<const char*>(buffer_.data()), got));
        throw;
    }
}

std::size_t ReadIntoAwaiter::take_buffered(std::size_t got) {
    // From the stream's buffer: all of it when the read did not wait, else what came after
    // the data that woke it.
    StreamReaderState& s = state();
    std::string_view data = s.buffer().view();
    const std::size_t n = std::min(data.size(), buffer_.size() - got);
    if (n == 0) return got;
    std::memcpy(buffer_.data() + got, data.data(), n);
    s.buffer().discard(n);
    s.maybe_resume_transport();
    return got + n;
}

}  // namespace tulip::asyncio
