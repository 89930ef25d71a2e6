// Python 3.11's asyncio.timeout() and asyncio.timeout_at() (asyncio/timeouts.py).
//
// C++ has no `async with`. A timeout scope is a Timeout object whose run() awaits, inside the
// current task, the code it limits: a Coro (a lambda coroutine makes a block of statements, and
// wraps other awaitables such as sleep()), a Future or a Task.
//
//     // Python:  async with asyncio.timeout(10):
//     //              await long_running_task()
//     co_await asyncio::timeout(10s, long_running_task());          // the shorthand
//
//     auto t = asyncio::timeout(10s);                                // the object, for
//     co_await t.run([&]() -> asyncio::Coro<> {                      // reschedule()/expired()
//         co_await step_one();
//         t.reschedule(loop.time() + 5);
//         co_await step_two();
//     }());
//
// run() returns what the awaitable returns. A Timeout is entered once (run() a second time raises
// RuntimeError) and must outlive its run(): keep it in the coroutine that awaits run().
//
// Cancellation, as in Python: when the deadline passes, the timeout cancels the current task.
// The CancelledError unwinds the awaited code (which may catch it to clean up) back to run(),
// which turns it into TimeoutError (tulip::TimeoutError, an OSError with ETIMEDOUT; the
// CancelledError is nested in it, as Python's __cause__). Only the timeout's own cancellation
// is turned into TimeoutError: run() withdraws its request with Task::uncancel() and converts
// only when no other cancel() request is left beyond those pending at entry, so a cancel() from
// outside, even one that arrives together with the deadline, still propagates as CancelledError
// (and so does a cancellation while the deadline has not passed). Of nested timeouts that
// expire together, the outermost converts; the inner ones let CancelledError through. If the
// awaited code swallows the CancelledError and returns, run() returns its value; if it raises
// something else, that propagates unchanged.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "tulip/asyncio/detail/awaitable.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

// A timeout argument: seconds as a double (Python's float), any std::chrono duration, or
// std::nullopt for "no timeout" (Python's None).
class Delay {
public:
    Delay() noexcept = default;
    Delay(std::nullopt_t) noexcept {}
    Delay(double seconds) noexcept : seconds_(seconds) {}
    Delay(std::optional<double> seconds) noexcept : seconds_(seconds) {}
    template <class Rep, class Period>
    Delay(std::chrono::duration<Rep, Period> d) noexcept
        : seconds_(std::chrono::duration_cast<std::chrono::duration<double>>(d).count()) {}

    const std::optional<double>& seconds() const noexcept { return seconds_; }

private:
    std::optional<double> seconds_;
};

class Timeout {
public:
    // A timeout that fires at loop time `when` (never when empty). timeout() and timeout_at()
    // are the usual ways to make one. For the TimeoutError's message: `label` names the caller
    // and `delay` is the delay that `when` came from, if any.
    explicit Timeout(std::optional<double> when, std::string label = "timeout_at",
                     std::optional<double> delay = std::nullopt)
        : when_(when), label_(std::move(label)), delay_(delay) {}
    // Non-copyable and non-movable: the scheduled expiry points at this object.
    Timeout(const Timeout&) = delete;
    Timeout& operator=(const Timeout&) = delete;
    ~Timeout() { handle_.cancel(); }

    // The deadline in loop time, or none.
    std::optional<double> when() const noexcept { return when_; }

    // Moves the deadline (none disables it; one already past fires on the next iteration).
    // Only while run() is running: RuntimeError before ("has not been entered") and after.
    void reschedule(std::optional<double> when) {
        if (state_ != State::entered) {
            if (state_ == State::created) throw RuntimeError("Timeout has not been entered");
            throw RuntimeError("Cannot change state of " + std::string(state_name()) + " Timeout");
        }
        rescheduled_ = rescheduled_ || when != when_;
        when_ = when;
        handle_.cancel();
        handle_ = {};
        if (!when) return;
        if (*when <= loop_->time()) {
            handle_ = loop_->call_soon([this] { on_timeout(); });
        } else {
            handle_ = loop_->call_at(*when, [this] { on_timeout(); });
        }
    }

    // True once the deadline has passed while run() was running.
    bool expired() const noexcept { return state_ == State::expiring || state_ == State::expired; }

    // Python's repr: "<Timeout [active] when=12.345>", "<Timeout [expired]>", ...
    std::string repr() const {
        std::string out = "<Timeout [" + std::string(state_name()) + "]";
        if (state_ == State::entered)
            out += " when=" + (when_ ? detail::format_loop_time(*when_) : std::string("None"));
        return out + ">";
    }

    // Awaits `body` inside this timeout, in the current task, and returns what it returns.
    // See the top of this header for what happens at the deadline and on cancellation.
    template <class A>
        requires detail::Awaitable<A>
    Coro<detail::awaitable_result_t<A>> run(A&& body) {
        return run_coro(detail::to_coro(std::forward<A>(body)));
    }

private:
    enum class State : std::uint8_t { created, entered, expiring, expired, exited };

    const char* state_name() const noexcept {
        switch (state_) {
        case State::created: return "created";
        case State::entered: return "active";
        case State::expiring: return "expiring";
        case State::expired: return "expired";
        case State::exited: return "finished";
        }
        return "?";
    }

    template <class T>
    Coro<T> run_coro(Coro<T> body) {
        enter();
        std::exception_ptr error;
        std::optional<detail::value_or_monostate_t<T>> value;
        try {
            if constexpr (std::is_void_v<T>) {
                co_await std::move(body);
                value.emplace();
            } else {
                value.emplace(co_await std::move(body));
            }
        } catch (...) {
            error = std::current_exception();
        }
        leave(error);
        if constexpr (!std::is_void_v<T>) co_return std::move(*value);
    }

    void enter() {
        if (state_ != State::created) throw RuntimeError("Timeout has already been entered");
        TaskRef task = current_task();
        if (!task) throw RuntimeError("Timeout should be used inside a task");
        loop_ = &get_running_loop();
        state_ = State::entered;
        task_ = task;
        cancelling_at_entry_ = task.cancelling();
        reschedule(when_);
    }

    // Python's __aexit__: rethrows `error`, or raises TimeoutError in its place when it is the
    // CancelledError this timeout caused.
    void leave(std::exception_ptr error) {
        handle_.cancel();
        handle_ = {};
        TaskRef task = std::exchange(task_, TaskRef());
        if (state_ == State::expiring) {
            state_ = State::expired;
            // uncancel() first: it must run whatever the error.
            if (task.uncancel() <= cancelling_at_entry_ && detail::is_cancelled_error(error)) {
                try {
                    std::rethrow_exception(error);
                } catch (...) {
                    std::throw_with_nested(TimeoutError(ETIMEDOUT, timeout_message()));
                }
            }
        } else if (state_ == State::entered) {
            state_ = State::exited;
        }
        if (error) std::rethrow_exception(error);
    }

    void on_timeout() {
        if (state_ != State::entered) return;
        task_.cancel();
        state_ = State::expiring;
        handle_ = {};  // the loop holds the running callback; drop ours early, as Python does
    }

    std::string timeout_message() const {
        if (delay_ && !rescheduled_)
            return label_ + ": timed out after " + detail::format_seconds(*delay_) + " s";
        return label_ + ": deadline " + (when_ ? detail::format_loop_time(*when_) : "None") +
               " (loop time) passed";
    }

    std::optional<double> when_;
    std::string label_;
    std::optional<double> delay_;
    State state_ = State::created;
    bool rescheduled_ = false;
    EventLoop* loop_ = nullptr;
    Handle handle_;
    TaskRef task_;
    std::uint32_t cancelling_at_entry_ = 0;
};

// asyncio.timeout(delay): a Timeout whose deadline is `delay` from now on the running loop
// (none: never). Needs a running loop.
inline Timeout timeout(Delay delay) {
    const auto& seconds = delay.seconds();
    if (!seconds) return Timeout(std::nullopt, "timeout");
    return Timeout(get_running_loop().time() + *seconds, "timeout", *seconds);
}

// asyncio.timeout_at(when): a Timeout whose deadline is loop time `when` (none: never).
inline Timeout timeout_at(std::optional<double> when) { return Timeout(when, "timeout_at"); }

namespace detail {
// A Timeout lives in a coroutine frame (it cannot move), so the shorthand forms need one.
template <class T>
Coro<T> run_in_timeout(std::optional<double> when, std::string label, std::optional<double> delay,
                       Coro<T> body) {
    Timeout scope(when, std::move(label), delay);
    co_return co_await scope.run(std::move(body));
}

// The deadline `delay` from now on the running loop, or none.
inline std::optional<double> deadline_after(const Delay& delay) {
    if (!delay.seconds()) return std::nullopt;
    return get_running_loop().time() + *delay.seconds();
}
}  // namespace detail

// The shorthand: `co_await asyncio::timeout(1s, work())` awaits work() within a timeout of one
// second and returns its result, raising TimeoutError at the deadline. The deadline counts from
// this call, which needs a running loop.
template <class A>
    requires detail::Awaitable<A>
Coro<detail::awaitable_result_t<A>> timeout(Delay delay, A&& body) {
    return detail::run_in_timeout(detail::deadline_after(delay), "timeout", delay.seconds(),
                                  detail::to_coro(std::forward<A>(body)));
}

// `co_await asyncio::timeout_at(when, work())`: the same with a deadline in loop time.
template <class A>
    requires detail::Awaitable<A>
Coro<detail::awaitable_result_t<A>> timeout_at(std::optional<double> when, A&& body) {
    return detail::run_in_timeout(when, "timeout_at", std::nullopt,
                                  detail::to_coro(std::forward<A>(body)));
}

}  // namespace tulip::asyncio
