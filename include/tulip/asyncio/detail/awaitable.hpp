// What the functions that combine awaitables (combinators.hpp, timeouts.hpp, taskgroups.hpp)
// share: which types they accept, their result types, and the bookkeeping of done callbacks they
// add to futures they do not own.
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio::detail {

// --- what can be combined: Future<T>, Task<T> (a Future<T>) and Coro<T> ----------------------

template <class A>
struct AwaitableTraits {};
template <class T>
struct AwaitableTraits<Future<T>> {
    using result = T;
    static constexpr bool is_future = true;
};
template <class T>
struct AwaitableTraits<Task<T>> {
    using result = T;
    static constexpr bool is_future = true;
};
template <class T>
struct AwaitableTraits<Coro<T>> {
    using result = T;
    static constexpr bool is_future = false;
};

// A Future<T>, Task<T> or Coro<T> (references and const stripped).
template <class A>
concept Awaitable = requires { typename AwaitableTraits<std::remove_cvref_t<A>>::result; };

// A Future<T> or Task<T>.
template <class A>
concept FutureLike = Awaitable<A> && AwaitableTraits<std::remove_cvref_t<A>>::is_future;

template <class A>
using awaitable_result_t = typename AwaitableTraits<std::remove_cvref_t<A>>::result;

// A result slot for T: void becomes std::monostate (gather's tuples and vectors).
template <class T>
using value_or_monostate_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// --- turning awaitables into futures or coroutines -----------------------------------------

// The loop a future belongs to, or null for a coroutine (which has none until it is a task).
template <class A>
EventLoop* loop_of(const A& a) noexcept {
    if constexpr (FutureLike<A>) {
        return &a.get_loop();
    } else {
        return nullptr;
    }
}

// Raises std::invalid_argument if `a` is a future of another loop than `loop`; checked before
// any coroutine becomes a task, so that a refused call leaves no task behind.
template <class A>
void check_loop(const A& a, EventLoop& loop, const char* who) {
    if (EventLoop* own = loop_of(a); own && own != &loop)
        throw std::invalid_argument(std::string(who) + ": the futures belong to different event loops");
}

// ensure_future on a given loop: a future stays itself (and must belong to `loop`), a coroutine
// becomes a task of `loop`. `who` names the caller in the error message.
template <class T>
Future<T> to_future(Future<T> f, EventLoop& loop, const char* who) {
    check_loop(f, loop, who);
    return f;
}
template <class T>
Future<T> to_future(Coro<T>&& coro, EventLoop& loop, const char*) {
    return loop.create_task(std::move(coro));
}

// Awaiting a future from inside a coroutine, so that every awaitable can be handled as a Coro.
template <class T>
Coro<T> await_future(Future<T> f) {
    co_return co_await f;
}
template <class T>
Coro<T> to_coro(Coro<T>&& c) {
    return std::move(c);
}
template <class T>
Coro<T> to_coro(Future<T> f) {
    return await_future(std::move(f));
}

// The result of a done future, as a value: copied when T is copyable (others may read the
// future too), moved out otherwise. Raises what result() raises.
template <class T>
T take_result(const Future<T>& f) {
    if constexpr (std::is_void_v<T>) {
        f.result();
    } else if constexpr (std::is_copy_constructible_v<T>) {
        return f.result();
    } else {
        return std::move(f.result());
    }
}

// The same for a result container, where void becomes std::monostate.
template <class T>
value_or_monostate_t<T> take_value(const Future<T>& f) {
    if constexpr (std::is_void_v<T>) {
        f.result();
        return {};
    } else {
        return take_result(f);
    }
}

inline bool is_cancelled_error(const std::exception_ptr& e) noexcept {
    if (!e) return false;
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError&) {
        return true;
    } catch (...) {
        return false;
    }
}

// "0.1" for 0.1 seconds, for messages.
inline std::string format_seconds(double seconds) {
    std::ostringstream out;
    out << seconds;
    return out.str();
}

// A loop time with millisecond digits ("12345.678"), as Python's Timeout repr rounds it.
inline std::string format_loop_time(double when) {
    std::ostringstream out;
    out.setf(std::ios::fixed);
    out.precision(3);
    out << when;
    return out.str();
}

// Done callbacks added to futures this code does not own, removed again when the guard goes:
// when the waiting coroutine finishes, fails, is cancelled or has its frame destroyed. A
// callback the future has already scheduled cannot be removed and still runs, so what it
// captures must stay valid on its own (shared or reference-counted state).
class DoneCallbacks {
public:
    DoneCallbacks() = default;
    DoneCallbacks(const DoneCallbacks&) = delete;
    DoneCallbacks& operator=(const DoneCallbacks&) = delete;
    ~DoneCallbacks() { remove_all(); }

    void add(FutureStateBase& future, std::function<void()> callback) {
        CallbackId id = future.add_done_callback(std::move(callback));
        entries_.emplace_back(Ref<FutureStateBase>(&future), id);
    }
    void remove_all() noexcept {
        for (auto& [future, id] : entries_) {
            if (!future->done()) future->remove_done_callback(id);
        }
        entries_.clear();
    }

private:
    std::vector<std::pair<Ref<FutureStateBase>, CallbackId>> entries_;
};

// Removes repeated futures (the same state), keeping the first of each: Python's set(fs).
template <class F>
void remove_duplicates(std::vector<F>& fs) {
    std::unordered_set<const void*> seen;
    seen.reserve(fs.size());
    std::size_t kept = 0;
    for (std::size_t i = 0; i < fs.size(); ++i) {
        if (!seen.insert(fs[i].state()).second) continue;
        if (kept != i) fs[kept] = std::move(fs[i]);
        ++kept;
    }
    fs.erase(fs.begin() + static_cast<std::ptrdiff_t>(kept), fs.end());
}

}  // namespace tulip::asyncio::detail
