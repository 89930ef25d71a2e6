// The state behind a StreamReader handle: its buffer, EOF and exception flags, the one waiting
// reader, and the transport it pauses.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tulip/asyncio/coro.hpp"
#include "tulip/asyncio/detail/future_state.hpp"
#include "tulip/asyncio/detail/task_core.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/streams.hpp"
#include "tulip/asyncio/transports.hpp"

namespace tulip::asyncio::detail {

// A byte buffer that is appended at the back and consumed at the front. Consuming only moves a
// start offset; the bytes before it are dropped when they are more than half the storage, so
// both ends cost amortised O(1) per byte (CPython's bytearray does the same with ob_start).
class StreamBuffer {
public:
    std::size_t size() const noexcept { return data_.size() - start_; }
    bool empty() const noexcept { return size() == 0; }
    std::string_view view() const noexcept { return std::string_view(data_).substr(start_); }

    void append(std::string_view bytes);
    // Puts bytes back in front of the buffer (a read that gave them up).
    void prepend(std::string_view bytes);
    // Removes and returns the first n bytes (n <= size()). Taking everything from an
    // uncompacted buffer moves the storage out instead of copying it.
    std::string take(std::size_t n);
    void discard(std::size_t n) noexcept;
    void clear() noexcept;

private:
    std::string data_;
    std::size_t start_ = 0;
};

class StreamReaderState final : public StreamReaderStateBase {
public:
    explicit StreamReaderState(std::size_t limit) : limit_(limit) {}

    void feed_data(std::string_view data);
    // Puts bytes that a read took back at the front, as if it had not taken them (flow control
    // included).
    void unread(std::string_view data);
    void feed_eof();
    void set_exception(std::exception_ptr exc);
    void set_transport(ReadTransport& transport);
    // connection_lost(): the transport may go away after it, so forget it.
    void forget_transport() noexcept { transport_ = nullptr; }

    std::exception_ptr exception() const noexcept { return exception_; }
    bool failed() const noexcept { return exception_ != nullptr; }
    bool eof() const noexcept { return eof_; }
    std::size_t limit() const noexcept { return limit_; }
    StreamBuffer& buffer() noexcept { return buffer_; }
    const StreamBuffer& buffer() const noexcept { return buffer_; }

    // Rethrows the stored exception, if any.
    void raise_if_failed() const {
        if (exception_) [[unlikely]]
            raise_failed();
    }
    // Out of line: a read's common path then saves no registers for the throw.
    [[noreturn, gnu::noinline]] void raise_failed() const;
    // Resumes a paused transport once the buffer holds at most `limit` bytes.
    void maybe_resume_transport();

    // The awaitable of wait_for_data().
    class DataWait {
    public:
        DataWait(StreamReaderState& state, const char* func_name) noexcept : state_(state), func_name_(func_name) {}
        DataWait(const DataWait&) = delete;
        DataWait& operator=(const DataWait&) = delete;
        bool await_ready() {
            waiter_.prepare(state_, func_name_);
            return false;
        }
        void await_suspend(std::coroutine_handle<> h) noexcept { waiter_.suspend(h); }
        void await_resume() { waiter_.resume(); }

    private:
        StreamReaderState& state_;
        const char* func_name_;
        StreamDataWaiter waiter_;
    };

    // Waits until feed_data, feed_eof or set_exception is called (raising what the latter
    // gives). RuntimeError if another coroutine waits already. Resumes a paused transport
    // first, or a read of more than 2 x limit bytes would wait forever. The caller's frame
    // must hold a reference to this state. No frame and no future: the waiter lives in the
    // awaiting frame.
    DataWait wait_for_data(const char* func_name) noexcept { return DataWait(*this, func_name); }
    // Whether a read may wait without before_wait(): nobody waits yet, no EOF, not paused.
    bool may_wait_at_once() const noexcept { return !waiter_ && !eof_ && !paused_; }
    // Registers the waiter, after may_wait_at_once() or before_wait().
    void begin_wait(StreamDataWaiter& waiter) noexcept { waiter_ = &waiter; }
    // The checks before a wait that may_wait_at_once() found needed: raises for a second
    // waiter or a wait after EOF; resumes a paused transport.
    void before_wait(const char* func_name);
    // A waiter that goes away (cancelled, or its frame destroyed) stops being the waiter.
    void end_wait(const StreamDataWaiter& waiter) noexcept {
        if (waiter_ == &waiter) take_waiter();
    }

    // The readuntil() algorithm for separators sorted by length (shortest first, non-empty).
    Coro<std::string> readuntil(std::span<const std::string_view> separators);

    // Receiving straight into a waiting read_into()'s buffer (StreamReaderProtocol's side of
    // detail::DirectReceiver): the buffer while one waits, else empty. Only read_into() gives
    // its waiter a buffer, and it waits only on an empty stream, which stays empty while it
    // waits (the first data wakes it), so there is nothing buffered to go first.
    std::span<std::byte> direct_buffer() const noexcept {
        return waiter_ ? waiter_->direct_buffer() : std::span<std::byte>();
    }
    // n > 0 bytes were received into direct_buffer(): wakes the read.
    void direct_received(std::size_t n) noexcept {
        waiter_->delivered(n);
        wakeup_waiter();
    }

private:
    void wakeup_waiter() noexcept {
        if (StreamDataWaiter* w = take_waiter()) w->wake();
    }
    // Unregisters the waiter (null if none).
    StreamDataWaiter* take_waiter() noexcept { return std::exchange(waiter_, nullptr); }
    void maybe_pause_transport();

    StreamBuffer buffer_;
    std::size_t limit_;
    StreamDataWaiter* waiter_ = nullptr;
    std::exception_ptr exception_;
    ReadTransport* transport_ = nullptr;
    bool eof_ = false;
    bool paused_ = false;
};

}  // namespace tulip::asyncio::detail

namespace tulip::asyncio {

inline detail::StreamReaderState& StreamReader::state() const noexcept {
    return static_cast<detail::StreamReaderState&>(*state_);
}

inline detail::StreamReaderState& ReadIntoAwaiter::state() const noexcept {
    return static_cast<detail::StreamReaderState&>(*state_);
}

}  // namespace tulip::asyncio

namespace tulip::asyncio::detail {

// --- the waiter's steps, inline: they run once per read that waits --------------------------

inline void StreamDataWaiter::prepare(StreamReaderState& state, const char* func_name) {
    TaskCore* task = current_task_core();
    if (!task || !state.may_wait_at_once()) [[unlikely]] {
        prepare_slowly(state, func_name);
        return;
    }
    begin(state, *task);
}

inline void StreamDataWaiter::begin(StreamReaderState& state, TaskCore& task) noexcept {
    state.begin_wait(*this);
    task.future_state().add_ref();
    state_ = &state;
    task_ = &task;
}

inline void StreamDataWaiter::resume() {
    if (exception_) [[unlikely]]
        std::rethrow_exception(exception_);
    raise_if_cancel_requested(*task_);
}

inline void StreamDataWaiter::wake() noexcept {
    state_ = nullptr;
    task_->future_state().loop().schedule_task_step_adopt(*task_);
}

inline void StreamDataWaiter::wake(std::exception_ptr exc) noexcept {
    exception_ = std::move(exc);
    wake();
}

}  // namespace tulip::asyncio::detail
