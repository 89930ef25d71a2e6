// Coro<T>: the return type of a tulip coroutine function (Python's `async def`).
//
// A Coro is lazy: nothing runs until it is awaited (then it runs inline, in the awaiting task) or
// handed to create_task(). It is move-only and can be awaited once.
//
// A Coro can also be made already finished, without a coroutine frame: Coro<T>::ready(value)
// (Coro<>::ready() for void) and Coro<T>::ready_exception(e). A function that returns a Coro
// and often has nothing to wait for (StreamWriter::drain()) returns one of those on that path:
// awaiting it does not suspend and costs no frame. Everything that accepts a Coro accepts them;
// where a frame is needed (create_task and everything built on it) release() makes a trivial
// one, the rare path.
//
// Stack depth: awaiting a Coro resumes it from await_suspend and, when it completes without
// suspending, continues the caller by returning false, so a loop of a million co_awaits of
// Coros that finish synchronously uses constant stack even where the compiler does not turn
// symmetric transfer into a tail call (GCC at -O0 and under ASan).
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "tulip/asyncio/detail/block_cache.hpp"
#include "tulip/exceptions.hpp"

namespace tulip::asyncio {

namespace detail {

// What a Coro holds besides its frame: whether it was made finished (ready(), ready_exception())
// and whether that outcome was taken by an await.
enum class CoroReady : unsigned char { no, value, error, taken };

// The value of a Coro made with ready(value); nothing for Coro<>.
template <class T>
struct ReadyValue {
    std::optional<T> value;
};
template <>
struct ReadyValue<void> {};

// The task that owns a top-level coroutine, told when it finishes.
class CoroOwner {
public:
    virtual void on_coro_finished() noexcept = 0;

protected:
    ~CoroOwner() = default;
};

class PromiseBase {
public:
    // Coroutine frames come from the per-thread block cache (block_cache.hpp); the frame is
    // freed with the size it was allocated with.
    static void* operator new(std::size_t size) { return block_cache::allocate(size); }
    static void operator delete(void* p, std::size_t size) noexcept { block_cache::deallocate(p, size); }

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct FinalAwaiter {
        bool await_ready() noexcept { return false; }
        template <class P>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
            PromiseBase& p = h.promise();
            p.finished_ = true;
            if (p.owner_) {
                // The owning task takes the result and may destroy this frame: touch nothing
                // of it afterwards.
                p.owner_->on_coro_finished();
                return std::noop_coroutine();
            }
            if (p.continuation_) return p.continuation_;
            return std::noop_coroutine();
        }
        void await_resume() noexcept {}
    };
    FinalAwaiter final_suspend() noexcept { return {}; }

    void unhandled_exception() noexcept { exception_ = std::current_exception(); }

    bool finished() const noexcept { return finished_; }
    std::exception_ptr exception() const noexcept { return exception_; }
    void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }
    void set_owner(CoroOwner* owner) noexcept { owner_ = owner; }

private:
    std::coroutine_handle<> continuation_;
    CoroOwner* owner_ = nullptr;
    std::exception_ptr exception_;
    bool finished_ = false;
};

template <class T>
class Promise : public PromiseBase {
public:
    template <class U>
    void return_value(U&& v) {
        value_.emplace(std::forward<U>(v));
    }
    // The coroutine's result; rethrows what it raised.
    T take_result() {
        if (exception()) std::rethrow_exception(exception());
        return std::move(*value_);
    }

private:
    std::optional<T> value_;
};

template <>
class Promise<void> : public PromiseBase {
public:
    void return_void() noexcept {}
    void take_result() {
        if (exception()) std::rethrow_exception(exception());
    }
};

}  // namespace detail

template <class T = void>
class [[nodiscard]] Coro {
public:
    struct promise_type : detail::Promise<T> {
        Coro get_return_object() noexcept {
            return Coro(std::coroutine_handle<promise_type>::from_promise(*this));
        }
    };
    using handle_type = std::coroutine_handle<promise_type>;
    using value_type = T;

    Coro() noexcept = default;
    Coro(Coro&& o) noexcept
        : h_(std::exchange(o.h_, {})),
          error_(std::move(o.error_)),
          ready_value_(std::move(o.ready_value_)),
          ready_(std::exchange(o.ready_, detail::CoroReady::no)) {}
    Coro& operator=(Coro&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, {});
            error_ = std::move(o.error_);
            ready_value_ = std::move(o.ready_value_);
            ready_ = std::exchange(o.ready_, detail::CoroReady::no);
        }
        return *this;
    }
    Coro(const Coro&) = delete;
    Coro& operator=(const Coro&) = delete;
    ~Coro() {
        if (h_) h_.destroy();
    }

    // A Coro that is already finished with this result: no frame; awaiting it does not suspend.
    static Coro ready()
        requires std::is_void_v<T>
    {
        Coro c;
        c.ready_ = detail::CoroReady::value;
        return c;
    }
    template <class U>
        requires(!std::is_void_v<T> && std::is_constructible_v<T, U &&>)
    static Coro ready(U&& value) {
        Coro c;
        c.ready_value_.value.emplace(std::forward<U>(value));
        c.ready_ = detail::CoroReady::value;
        return c;
    }
    // A Coro that is already finished with an exception, which awaiting it raises. ValueError
    // for a null exception.
    static Coro ready_exception(std::exception_ptr error) {
        if (!error) throw ValueError("Coro::ready_exception() needs an exception, not null");
        Coro c;
        c.error_ = std::move(error);
        c.ready_ = detail::CoroReady::error;
        return c;
    }

    // False for a Coro made empty (default-constructed, moved from, or given to a task).
    bool valid() const noexcept { return h_ || ready_ != detail::CoroReady::no; }

    // Hands the frame to a task (create_task); the Coro is empty afterwards. A Coro made by
    // ready() or ready_exception() gets a trivial frame here that finishes with its outcome.
    // RuntimeError for a Coro that was already awaited.
    handle_type release() {
        if (h_ && h_.promise().finished()) throw RuntimeError("cannot reuse already awaited coroutine");
        if (ready_ == detail::CoroReady::no) return std::exchange(h_, {});
        if (ready_ == detail::CoroReady::taken) throw RuntimeError("cannot reuse already awaited coroutine");
        return finish_in_frame(std::move(*this)).release();
    }

    struct Awaiter {
        handle_type child;  // null for a Coro made finished: `self` holds the outcome
        Coro* self;

        bool await_ready() const noexcept { return !child; }
        // Runs the child inline. If it finished without suspending, the caller continues at once
        // (return false) instead of being resumed from the child's frame.
        bool await_suspend(std::coroutine_handle<> caller) {
            child.resume();
            if (child.promise().finished()) return false;
            child.promise().set_continuation(caller);
            return true;
        }
        T await_resume() {
            if (child) return child.promise().take_result();
            return self->take_ready();
        }
    };

    Awaiter operator co_await() & { return checked(); }
    Awaiter operator co_await() && { return checked(); }

private:
    explicit Coro(handle_type h) noexcept : h_(h) {}

    Awaiter checked() {
        if (h_) {
            if (h_.promise().finished()) throw RuntimeError("cannot reuse already awaited coroutine");
            return Awaiter{h_, this};
        }
        // Made finished and not awaited yet: the usual case first.
        if (ready_ == detail::CoroReady::value || ready_ == detail::CoroReady::error) [[likely]]
            return Awaiter{{}, this};
        if (ready_ == detail::CoroReady::no)
            throw RuntimeError("cannot await an empty Coro (moved from or given to a task)");
        throw RuntimeError("cannot reuse already awaited coroutine");
    }
    // The outcome of a Coro made finished, once.
    T take_ready() {
        ready_ = detail::CoroReady::taken;
        if (error_) [[unlikely]]
            std::rethrow_exception(std::exchange(error_, {}));
        if constexpr (!std::is_void_v<T>) return std::move(*ready_value_.value);
    }
    // The frame that release() gives a Coro made finished.
    static Coro finish_in_frame(Coro finished) {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(finished);
        } else {
            co_return co_await std::move(finished);
        }
    }
    void reset() noexcept {
        if (h_) h_.destroy();
        h_ = {};
        error_ = {};
        if constexpr (!std::is_void_v<T>) ready_value_.value.reset();
        ready_ = detail::CoroReady::no;
    }

    handle_type h_;
    std::exception_ptr error_;  // ready_exception()'s, until awaited
    [[no_unique_address]] detail::ReadyValue<T> ready_value_;
    detail::CoroReady ready_ = detail::CoroReady::no;
};

}  // namespace tulip::asyncio
