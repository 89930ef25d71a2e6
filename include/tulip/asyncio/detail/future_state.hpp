// The shared state behind Future<T> and Task<T>.
//
// States are owned by the loop's thread: the reference count is not atomic. Code that hands a
// state to another thread (run_in_executor) moves the one reference it holds and never copies it
// there.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tulip/asyncio/detail/block_cache.hpp"
#include "tulip/asyncio/detail/task_core.hpp"
#include "tulip/asyncio/exceptions.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

using CallbackId = std::uint64_t;

class FutureStateBase : public Waitable {
public:
    enum class State : std::uint8_t { pending, cancelled, finished };

    explicit FutureStateBase(EventLoop& loop) noexcept : loop_(&loop) {}
    FutureStateBase(const FutureStateBase&) = delete;
    FutureStateBase& operator=(const FutureStateBase&) = delete;
    virtual ~FutureStateBase();

    // Future and task states come from the per-thread block cache (block_cache.hpp); the
    // virtual destructor passes the size of the complete object.
    static void* operator new(std::size_t size) { return block_cache::allocate(size); }
    static void operator delete(void* p, std::size_t size) noexcept { block_cache::deallocate(p, size); }

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) delete this;
    }
    std::uint32_t ref_count() const noexcept { return refs_; }

    EventLoop& loop() const noexcept { return *loop_; }
    State state() const noexcept { return state_; }
    bool done() const noexcept { return state_ != State::pending; }
    bool cancelled() const noexcept { return state_ == State::cancelled; }

    // Future.cancel(msg); Task overrides it with Task.cancel().
    virtual bool cancel(std::string msg);
    bool cancel_wait(const std::string& msg) override { return cancel(msg); }

    // Python's Future.set_exception; InvalidStateError when already done.
    void set_exception(std::exception_ptr e);
    // Python's Future.exception(): the exception or null; raises CancelledError when cancelled
    // and InvalidStateError while pending.
    std::exception_ptr exception();
    // What result() does before returning the value: raise if pending, cancelled or failed.
    void raise_if_not_successful();

    const std::string& cancel_message() const noexcept { return cancel_message_; }
    CancelledError make_cancelled_error() const { return CancelledError(cancel_message_); }

    // A task suspended on this future; stepped (without allocation) once it is done.
    void add_task_waiter(TaskCore& task);
    // Python's add_done_callback: cb is scheduled with call_soon once the future is done (at
    // once if it already is).
    CallbackId add_done_callback(std::function<void()> cb);
    // Removes every registration of id; returns how many were removed.
    std::size_t remove_done_callback(CallbackId id);

    virtual bool is_task() const noexcept { return false; }
    // "Future" or "Task 'name'", for messages.
    virtual std::string describe() const { return "Future"; }

protected:
    // Python's Future.cancel() proper: also used when a task's coroutine ends cancelled.
    bool cancel_future(std::string msg);
    void check_pending(const char* operation) const;
    // Records the final state and schedules the waiting tasks and the done callbacks.
    void finish(State s);
    void mark_exception_retrieved() noexcept { exception_retrieved_ = true; }

private:
    void schedule_callbacks();

    EventLoop* loop_;
    std::uint32_t refs_ = 0;
    State state_ = State::pending;
    bool exception_retrieved_ = false;
    std::exception_ptr exception_;
    std::string cancel_message_;
    TaskCore* first_waiter_ = nullptr;  // the common case: one task awaits this future
    std::vector<TaskCore*> more_waiters_;
    std::vector<std::pair<CallbackId, std::function<void()>>> callbacks_;
    CallbackId next_callback_id_ = 1;
};

template <class T>
class FutureState : public FutureStateBase {
public:
    using FutureStateBase::FutureStateBase;

    template <class... A>
    void set_result(A&&... a) {
        check_pending("set_result");
        value_.emplace(std::forward<A>(a)...);
        finish(State::finished);
    }
    T& result() {
        raise_if_not_successful();
        return *value_;
    }

private:
    std::optional<T> value_;
};

template <>
class FutureState<void> : public FutureStateBase {
public:
    using FutureStateBase::FutureStateBase;

    void set_result() {
        check_pending("set_result");
        finish(State::finished);
    }
    void result() { raise_if_not_successful(); }
};

}  // namespace tulip::asyncio::detail
