// Coro<T>: the return type of a tulip coroutine function (Python's `async def`).
//
// A Coro is lazy: nothing runs until it is awaited (then it runs inline, in the awaiting task) or
// handed to create_task(). It is move-only and can be awaited once.
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
    Coro(Coro&& o) noexcept : h_(std::exchange(o.h_, {})) {}
    Coro& operator=(Coro&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, {});
        }
        return *this;
    }
    Coro(const Coro&) = delete;
    Coro& operator=(const Coro&) = delete;
    ~Coro() { reset(); }

    bool valid() const noexcept { return static_cast<bool>(h_); }

    // Hands the frame to a task (create_task); the Coro is empty afterwards.
    handle_type release() noexcept { return std::exchange(h_, {}); }

    struct Awaiter {
        handle_type child;

        bool await_ready() const noexcept { return false; }
        // Runs the child inline. If it finished without suspending, the caller continues at once
        // (return false) instead of being resumed from the child's frame.
        bool await_suspend(std::coroutine_handle<> caller) {
            child.resume();
            if (child.promise().finished()) return false;
            child.promise().set_continuation(caller);
            return true;
        }
        T await_resume() { return child.promise().take_result(); }
    };

    Awaiter operator co_await() & { return Awaiter{checked()}; }
    Awaiter operator co_await() && { return Awaiter{checked()}; }

private:
    explicit Coro(handle_type h) noexcept : h_(h) {}

    handle_type checked() const {
        if (!h_) throw RuntimeError("cannot await an empty Coro (moved from or given to a task)");
        if (h_.promise().finished()) throw RuntimeError("cannot reuse already awaited coroutine");
        return h_;
    }
    void reset() noexcept {
        if (h_) h_.destroy();
        h_ = {};
    }

    handle_type h_;
};

}  // namespace tulip::asyncio
