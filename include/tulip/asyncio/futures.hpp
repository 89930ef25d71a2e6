// Future<T>: asyncio.Future as a cheap, copyable handle to shared state.
//
// Completion guarantee: done callbacks and awaiting tasks are never run from inside set_result(),
// set_exception() or cancel(); they are scheduled on the loop, in the order they were added, as
// Python does. Everything here must be used from the loop's thread.
#pragma once

#include <coroutine>
#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "tulip/asyncio/detail/future_state.hpp"
#include "tulip/asyncio/detail/ref.hpp"

namespace tulip::asyncio {

class EventLoop;
EventLoop& get_event_loop();

using CallbackId = detail::CallbackId;

template <class T = void>
class Future {
public:
    using value_type = T;
    using State = detail::FutureState<T>;

    // A new pending future on the thread's current event loop (get_event_loop()).
    Future() : Future(get_event_loop()) {}
    explicit Future(EventLoop& loop) : state_(new State(loop)) {}

    bool done() const noexcept { return state_->done(); }
    bool cancelled() const noexcept { return state_->cancelled(); }
    // Python's cancel(msg=None): false when already done; otherwise cancels and schedules the
    // callbacks. A Task's cancel() asks its coroutine to stop instead (see Task).
    bool cancel(std::string msg = {}) const { return state_->cancel(std::move(msg)); }

    // The value; raises CancelledError if cancelled, the future's exception if it has one, and
    // InvalidStateError("Result is not set.") while pending.
    decltype(auto) result() const { return state_->result(); }
    // The exception (null when it finished with a value); raises as result() does otherwise.
    std::exception_ptr exception() const { return state_->exception(); }

    template <class... A>
    void set_result(A&&... a) const {
        state_->set_result(std::forward<A>(a)...);
    }
    void set_exception(std::exception_ptr e) const { state_->set_exception(std::move(e)); }
    template <class E, class = std::enable_if_t<!std::is_same_v<std::decay_t<E>, std::exception_ptr>>>
    void set_exception(E&& e) const {
        state_->set_exception(std::make_exception_ptr(std::forward<E>(e)));
    }

    // fn(Future<T>) is scheduled with call_soon once the future is done. Returns an id for
    // remove_done_callback (C++ callables cannot be compared as Python's are).
    template <class F>
    CallbackId add_done_callback(F&& fn) const {
        // The callback holds the state by pointer: the state owns the callback, and the loop
        // keeps the state alive while a scheduled callback waits to run.
        return state_->add_done_callback([state = state_.get(), fn = std::forward<F>(fn)]() mutable {
            fn(Future(detail::Ref<State>(state)));
        });
    }
    std::size_t remove_done_callback(CallbackId id) const { return state_->remove_done_callback(id); }

    EventLoop& get_loop() const noexcept { return state_->loop(); }

    struct Awaiter {
        State* state;
        bool suspended = false;

        bool await_ready() const noexcept { return state->done(); }
        void await_suspend(std::coroutine_handle<> h) {
            detail::TaskCore& task = detail::suspend_current_task(h, state);
            state->add_task_waiter(task);
            suspended = true;
        }
        T await_resume() {
            if (suspended) detail::raise_if_cancel_requested();
            if constexpr (std::is_void_v<T>) {
                state->result();
            } else if constexpr (std::is_copy_constructible_v<T>) {
                return state->result();
            } else {
                return std::move(state->result());
            }
        }
    };
    Awaiter operator co_await() const noexcept { return Awaiter{state_.get()}; }

    // The shared state, for tulip's own machinery.
    State* state() const noexcept { return state_.get(); }
    explicit Future(detail::Ref<State> s) noexcept : state_(std::move(s)) {}

    friend bool operator==(const Future& a, const Future& b) noexcept {
        return a.state_ == b.state_;
    }

protected:
    detail::Ref<State> state_;
};

}  // namespace tulip::asyncio
