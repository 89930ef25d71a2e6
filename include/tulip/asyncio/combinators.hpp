// The functions of Python's asyncio/tasks.py that combine awaitables: gather, wait, wait_for,
// as_completed, shield, and run_coroutine_threadsafe (the Task half of tasks.py is tasks.hpp).
//
// "Awaitable" below means a Future<T>, a Task<T> or a Coro<T>. Where Python wraps a coroutine
// in a task (ensure_future), so does tulip: a Coro passed to gather, shield or as_completed
// starts running as a task of the loop at once. Pass Coros as rvalues (they are move-only).
//
// Python's ValueError is std::invalid_argument here (an empty wait(), futures of two loops).
#pragma once

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "tulip/asyncio/detail/awaitable.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/futures.hpp"
#include "tulip/asyncio/tasks.hpp"
#include "tulip/asyncio/timeouts.hpp"

namespace tulip::asyncio {

// ============================================================================================
// gather
// ============================================================================================

// The tag that asks gather() for Python's return_exceptions=True.
struct ReturnExceptions {
    explicit constexpr ReturnExceptions() = default;
};
inline constexpr ReturnExceptions return_exceptions{};

// What one child of gather(return_exceptions, ...) ended with: a value or an exception (a
// cancelled child gives a CancelledError carrying its cancel message, as in Python).
template <class T>
class Outcome {
public:
    explicit Outcome(std::exception_ptr error) noexcept : error_(std::move(error)) {}
    template <class... A>
    explicit Outcome(std::in_place_t, A&&... a) : value_(std::in_place, std::forward<A>(a)...) {}

    bool has_value() const noexcept { return !error_; }
    explicit operator bool() const noexcept { return has_value(); }
    // The value; rethrows the exception when there is one.
    T& value() & {
        check();
        return *value_;
    }
    const T& value() const& {
        check();
        return *value_;
    }
    T&& value() && {
        check();
        return std::move(*value_);
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    // The exception, or null.
    const std::exception_ptr& exception() const noexcept { return error_; }
    // True when the exception is a CancelledError.
    bool cancelled() const noexcept { return detail::is_cancelled_error(error_); }

private:
    void check() const {
        if (error_) std::rethrow_exception(error_);
    }
    std::optional<T> value_;
    std::exception_ptr error_;
};

template <>
class Outcome<void> {
public:
    Outcome() noexcept = default;
    explicit Outcome(std::exception_ptr error) noexcept : error_(std::move(error)) {}
    explicit Outcome(std::in_place_t) noexcept {}

    bool has_value() const noexcept { return !error_; }
    explicit operator bool() const noexcept { return has_value(); }
    // Rethrows the exception when there is one.
    void value() const {
        if (error_) std::rethrow_exception(error_);
    }
    const std::exception_ptr& exception() const noexcept { return error_; }
    bool cancelled() const noexcept { return detail::is_cancelled_error(error_); }

private:
    std::exception_ptr error_;
};

namespace detail {

// The future gather() returns (Python's _GatheringFuture). Its cancel() cancels the children
// instead of the future itself, and the future then fails with CancelledError once they are all
// done, as a Task's cancel() only asks.
//
// Ownership: it holds its children; their done callbacks reach it through a link that it clears
// when it dies, so that a child that never finishes does not keep it alive (C++ has no cycle
// collector). Children it no longer exists for keep their unretrieved exceptions, and report
// them when they die, as Python reports the abandoned gathering future's.
template <class R>
class GatheringState final : public FutureState<R> {
public:
    // Builds the result from the children once they all succeeded (or, with return_exceptions,
    // once they are all done).
    using Collect = std::function<R()>;

    GatheringState(EventLoop& loop, std::vector<Ref<FutureStateBase>> distinct_children,
                   bool return_exceptions, Collect collect)
        : FutureState<R>(loop),
          children_(std::move(distinct_children)),
          collect_(std::move(collect)),
          return_exceptions_(return_exceptions) {}
    ~GatheringState() override { link_->target = nullptr; }

    // Python's _GatheringFuture.cancel(): cancels every child; true if any of them could be.
    bool cancel(std::string msg) override {
        if (this->done()) return false;
        bool any = false;
        for (auto& child : children_) any = child->cancel(msg) || any;
        // Even with return_exceptions the gather then ends with CancelledError (bpo-32684).
        if (any) cancel_requested_ = true;
        return any;
    }

    // Adds the done callbacks; called once a Future owns this state.
    void watch_children() {
        if (children_.empty()) {
            this->set_result(collect_());
            return;
        }
        for (std::size_t i = 0; i < children_.size(); ++i) {
            children_[i]->add_done_callback([link = link_, i] {
                if (link->target) link->target->on_child_done(i);
            });
        }
    }

private:
    struct Link {
        GatheringState* target;
    };

    void on_child_done(std::size_t i) {
        FutureStateBase& child = *children_[i];
        ++finished_;
        if (this->done()) {
            // The gather already failed: its caller saw the first exception; the later ones are
            // not worth a "never retrieved" report.
            if (!child.cancelled()) (void)child.exception();
            return;
        }
        if (!return_exceptions_) {
            if (child.cancelled()) {
                this->set_exception(std::make_exception_ptr(child.make_cancelled_error()));
                return;
            }
            if (std::exception_ptr error = child.exception()) {
                this->set_exception(std::move(error));
                return;
            }
        }
        if (finished_ < children_.size()) return;
        if (cancel_requested_) {
            for (auto& c : children_)
                if (!c->cancelled()) (void)c->exception();  // marks them retrieved
            this->set_exception(std::make_exception_ptr(child.make_cancelled_error()));
            return;
        }
        try {
            this->set_result(collect_());
        } catch (...) {
            this->set_exception(std::current_exception());
        }
    }

    std::shared_ptr<Link> link_ = std::make_shared<Link>(Link{this});
    std::vector<Ref<FutureStateBase>> children_;
    Collect collect_;
    std::size_t finished_ = 0;
    bool return_exceptions_;
    bool cancel_requested_ = false;
};

// One child's slot in gather(return_exceptions, ...)'s result.
template <class T>
Outcome<T> take_outcome(const Future<T>& f) {
    if (f.cancelled()) return Outcome<T>(std::make_exception_ptr(f.state()->make_cancelled_error()));
    if (std::exception_ptr error = f.exception()) return Outcome<T>(std::move(error));
    if constexpr (std::is_void_v<T>) {
        return Outcome<T>(std::in_place);
    } else {
        return Outcome<T>(std::in_place, take_result(f));
    }
}

template <bool ReturnExc, class T>
auto take_slot(const Future<T>& f) {
    if constexpr (ReturnExc) {
        return take_outcome(f);
    } else {
        return take_value(f);
    }
}

template <bool ReturnExc, class T>
using gather_slot_t = std::conditional_t<ReturnExc, Outcome<T>, value_or_monostate_t<T>>;

inline void add_distinct(std::vector<Ref<FutureStateBase>>& children,
                         std::unordered_set<const void*>& seen, FutureStateBase* state) {
    if (seen.insert(state).second) children.emplace_back(state);
}

template <class R>
Future<R> make_gathering_future(EventLoop& loop, std::vector<Ref<FutureStateBase>> children,
                                bool return_exceptions, std::function<R()> collect) {
    auto* state = new GatheringState<R>(loop, std::move(children), return_exceptions, std::move(collect));
    Future<R> outer{Ref<FutureState<R>>(state)};
    state->watch_children();
    return outer;
}

template <bool ReturnExc, class... A>
auto gather_pack(A&&... aws) {
    using R = std::tuple<gather_slot_t<ReturnExc, awaitable_result_t<A>>...>;
    EventLoop* loop = nullptr;
    ((loop = loop ? loop : loop_of(aws)), ...);
    if (!loop) loop = &get_event_loop();
    (check_loop(aws, *loop, "gather"), ...);
    // Braces: the coroutines become tasks in argument order.
    std::tuple<Future<awaitable_result_t<A>>...> futures{
        to_future(std::forward<A>(aws), *loop, "gather")...};
    std::vector<Ref<FutureStateBase>> children;
    std::unordered_set<const void*> seen;
    std::apply([&](auto&... f) { (add_distinct(children, seen, f.state()), ...); }, futures);
    auto collect = [futures]() -> R {
        return std::apply([](const auto&... f) { return R{take_slot<ReturnExc>(f)...}; }, futures);
    };
    return make_gathering_future<R>(*loop, std::move(children), ReturnExc, std::move(collect));
}

template <bool ReturnExc, class A>
auto gather_vector(std::vector<A> aws) {
    using T = awaitable_result_t<A>;
    using R = std::vector<gather_slot_t<ReturnExc, T>>;
    EventLoop* loop = nullptr;
    for (const auto& a : aws)
        if (!loop) loop = loop_of(a);
    if (!loop) loop = &get_event_loop();
    for (const auto& a : aws) check_loop(a, *loop, "gather");
    std::vector<Future<T>> futures;
    futures.reserve(aws.size());
    for (auto& a : aws) futures.push_back(to_future(std::move(a), *loop, "gather"));
    std::vector<Ref<FutureStateBase>> children;
    std::unordered_set<const void*> seen;
    for (auto& f : futures) add_distinct(children, seen, f.state());
    auto collect = [futures = std::move(futures)]() -> R {
        R out;
        out.reserve(futures.size());
        for (const auto& f : futures) out.push_back(take_slot<ReturnExc>(f));
        return out;
    };
    return make_gathering_future<R>(*loop, std::move(children), ReturnExc, std::move(collect));
}

}  // namespace detail

// gather(a, b, c): a Future of std::tuple of the results, in argument order (void results are
// std::monostate). Coros become tasks at once. The first exception (or a child's cancellation,
// as CancelledError) fails the gather at once; the other children keep running and their later
// exceptions are dropped, as in Python. The same future given twice is waited for once (a
// move-only result is moved into the gather's result: give such a future once). Futures of
// another loop than the first future's raise std::invalid_argument before any task is made.
//
// Cancellation: cancelling the returned future cancels every child that is not done (a task
// awaiting the gather is cancelled this way too); the gather then ends with CancelledError once
// they are all done, even with return_exceptions. Cancelling one child from elsewhere is not a
// cancellation of the gather: it fails with CancelledError like any other exception (or, with
// return_exceptions, that child's slot holds the CancelledError).
template <class... A>
    requires(detail::Awaitable<A> && ...)
auto gather(A&&... aws) {
    return detail::gather_pack<false>(std::forward<A>(aws)...);
}

// gather(return_exceptions, a, b): never fails because of a child; each slot is an Outcome<T>,
// holding the value or the exception (a cancelled child: a CancelledError).
template <class... A>
    requires(detail::Awaitable<A> && ...)
auto gather(ReturnExceptions, A&&... aws) {
    return detail::gather_pack<true>(std::forward<A>(aws)...);
}

// gather over a vector of Futures, Tasks or (moved) Coros: a Future of std::vector of the results.
template <class A>
    requires detail::Awaitable<A>
auto gather(std::vector<A> aws) {
    return detail::gather_vector<false>(std::move(aws));
}
template <class A>
    requires detail::Awaitable<A>
auto gather(ReturnExceptions, std::vector<A> aws) {
    return detail::gather_vector<true>(std::move(aws));
}

// ============================================================================================
// shield
// ============================================================================================

namespace detail {

// The outer future of shield(): it copies the inner's outcome, and cancelling it leaves the
// inner alone. Like gather's, it is reached from the inner's callback through a link it clears
// when it dies.
template <class T>
class ShieldState final : public FutureState<T> {
public:
    ShieldState(EventLoop& loop, Future<T> inner) : FutureState<T>(loop), inner_(std::move(inner)) {}
    ~ShieldState() override {
        link_->target = nullptr;
        stop_watching();
    }

    void watch_inner() {
        inner_callback_ = inner_.state()->add_done_callback([link = link_] {
            if (link->target) link->target->on_inner_done();
        });
    }

    // Cancels only the outer future. The inner stops reporting to it (Python's
    // _outer_done_callback), so an exception the inner raises later is reported as never
    // retrieved when it dies, rather than lost.
    bool cancel(std::string msg) override {
        if (!FutureState<T>::cancel(std::move(msg))) return false;
        stop_watching();
        return true;
    }

private:
    struct Link {
        ShieldState* target;
    };

    void stop_watching() noexcept {
        if (!inner_.done()) inner_.remove_done_callback(inner_callback_);
    }

    void on_inner_done() {
        if (this->done()) {
            if (!inner_.cancelled()) (void)inner_.exception();  // marks it retrieved
            return;
        }
        if (inner_.cancelled()) {
            this->cancel_future({});
        } else if (std::exception_ptr error = inner_.exception()) {
            this->set_exception(std::move(error));
        } else if constexpr (std::is_void_v<T>) {
            this->set_result();
        } else {
            this->set_result(take_result(inner_));
        }
    }

    std::shared_ptr<Link> link_ = std::make_shared<Link>(Link{this});
    Future<T> inner_;
    CallbackId inner_callback_ = 0;
};

}  // namespace detail

// shield(aw): a future with aw's outcome that can be cancelled without cancelling aw (a Coro
// becomes a task). `co_await shield(x)` is `co_await x`, except that cancelling the awaiting
// task cancels only the shield: the task gets CancelledError while x keeps running. If x is
// already done, x itself is returned. Keep a handle on x (or make it a task that you await
// later) if its result or its failure matters after a cancellation.
template <class T>
Future<T> shield(Future<T> inner) {
    if (inner.done()) return inner;
    auto* state = new detail::ShieldState<T>(inner.get_loop(), inner);
    Future<T> outer{detail::Ref<detail::FutureState<T>>(state)};
    state->watch_inner();
    return outer;
}
template <class T>
Future<T> shield(Coro<T>&& coro) {
    return shield(Future<T>(get_event_loop().create_task(std::move(coro))));
}

// ============================================================================================
// wait
// ============================================================================================

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

// wait()'s result: Python's (done, pending) pair of sets, as vectors in the order given.
// `auto [done, pending] = co_await asyncio::wait(fs);`
template <class F>
struct DoneAndPending {
    std::vector<F> done;
    std::vector<F> pending;
};

namespace detail {

// What wait()'s callbacks share (it outlives the wait if a callback is already scheduled).
struct WaitProgress {
    Future<void> waiter;
    std::size_t remaining;
    ReturnWhen return_when;
    TimerHandle timer;

    void on_completion(FutureStateBase& f) {
        --remaining;
        bool first_exception = return_when == ReturnWhen::FIRST_EXCEPTION && !f.cancelled() &&
                               f.exception() != nullptr;
        if (remaining == 0 || return_when == ReturnWhen::FIRST_COMPLETED || first_exception) {
            timer.cancel();
            if (!waiter.done()) waiter.set_result();
        }
    }
};

// Cancels a timer when the scope ends (the frame may be destroyed mid-wait).
struct CancelTimerOnExit {
    TimerHandle& timer;
    ~CancelTimerOnExit() { timer.cancel(); }
};

inline void check_return_when(ReturnWhen return_when) {
    switch (return_when) {
    case ReturnWhen::FIRST_COMPLETED:
    case ReturnWhen::FIRST_EXCEPTION:
    case ReturnWhen::ALL_COMPLETED:
        return;
    }
    throw std::invalid_argument("wait: invalid return_when value: " +
                                std::to_string(static_cast<int>(return_when)));
}

}  // namespace detail

// wait(fs, timeout, return_when): waits until return_when holds (ALL_COMPLETED by default) or
// the timeout passes, and returns the futures split into done and pending. Raises
// std::invalid_argument (Python's ValueError) for an empty fs. Repeated futures count once.
//
// Nothing is cancelled, ever: on timeout the unfinished ones are simply returned in `pending`
// (no TimeoutError), and cancelling the task that awaits wait() leaves the futures running.
// Coros are not accepted (Python 3.11 removed them): make tasks first.
template <class F>
    requires detail::FutureLike<F>
Coro<DoneAndPending<F>> wait(std::vector<F> fs, Delay timeout = {},
                             ReturnWhen return_when = ALL_COMPLETED) {
    if (fs.empty()) throw std::invalid_argument("wait: the set of futures is empty");
    detail::check_return_when(return_when);
    EventLoop& loop = get_running_loop();
    detail::remove_duplicates(fs);

    auto waiter = loop.create_future<void>();
    auto progress = std::make_shared<detail::WaitProgress>(
        detail::WaitProgress{waiter, fs.size(), return_when, {}});
    detail::CancelTimerOnExit cancel_timer{progress->timer};
    if (timeout.seconds()) {
        progress->timer = loop.call_later(*timeout.seconds(), [waiter] {
            if (!waiter.done()) waiter.set_result();
        });
    }
    detail::DoneCallbacks callbacks;
    for (auto& f : fs) {
        callbacks.add(*f.state(), [progress, state = detail::Ref<detail::FutureStateBase>(f.state())] {
            progress->on_completion(*state);
        });
    }
    co_await waiter;

    DoneAndPending<F> out;
    for (auto& f : fs) (f.done() ? out.done : out.pending).push_back(std::move(f));
    co_return out;
}

// Python's `wait(fs, return_when=...)` without a timeout.
template <class F>
    requires detail::FutureLike<F>
Coro<DoneAndPending<F>> wait(std::vector<F> fs, ReturnWhen return_when) {
    return wait(std::move(fs), std::nullopt, return_when);
}

// ============================================================================================
// wait_for
// ============================================================================================

namespace detail {

// Python's _cancel_and_wait: cancels `fut` and waits until it is done. It waits on a future of
// its own rather than on `fut`, so that the wait itself stays cancellable.
template <class T>
Coro<> cancel_and_wait(Future<T> fut) {
    auto waiter = fut.get_loop().template create_future<void>();
    DoneCallbacks callbacks;
    callbacks.add(*fut.state(), [waiter] {
        if (!waiter.done()) waiter.set_result();
    });
    fut.cancel();
    co_await waiter;
}

template <class T>
Future<T> ensure_future_now(Future<T> f) {
    return f;
}
template <class T>
Future<T> ensure_future_now(Coro<T> c) {
    return create_task(std::move(c));
}

// X is Coro<T> or Future<T>.
template <class T, class X>
Coro<T> wait_for_impl(X aw, std::optional<double> timeout) {
    if (timeout && *timeout <= 0) {
        // Checked once, without starting a coroutine that is not running yet (Python 3.12).
        Future<T> fut = ensure_future_now(std::move(aw));
        if (fut.done()) co_return take_result(fut);
        co_await cancel_and_wait(fut);
        try {
            co_return take_result(fut);
        } catch (const CancelledError&) {
            std::throw_with_nested(
                TimeoutError(ETIMEDOUT, "wait_for: timed out after " + format_seconds(*timeout) + " s"));
        }
    }
    Timeout scope(deadline_after(timeout), "wait_for", timeout);
    co_return co_await scope.run(std::move(aw));
}

}  // namespace detail

// wait_for(aw, timeout): aw's result, or TimeoutError ("wait_for: timed out after 0.1 s") if it
// is not done within `timeout` (seconds, a chrono duration, or std::nullopt for no limit).
// As in Python 3.12 it is `timeout(delay).run(aw)`: a Coro runs inline in the awaiting task, a
// Future or Task is awaited directly.
//
// Cancellation: at the timeout, aw is cancelled (a Coro at the point where it is suspended, a
// task through Task::cancel(), a plain future by cancel()) and wait_for waits until it has
// finished cancelling before raising TimeoutError; if aw swallows the cancellation and returns a
// value, that value is returned. If aw raises something else while being cancelled, that
// propagates. Cancelling the task that awaits wait_for cancels aw the same way, and the
// CancelledError propagates (not TimeoutError). A timeout <= 0 checks once: a done aw gives its
// result, otherwise aw is cancelled (a Coro never starts) and TimeoutError is raised.
template <class A>
    requires detail::Awaitable<A>
Coro<detail::awaitable_result_t<A>> wait_for(A&& aw, Delay timeout) {
    using T = detail::awaitable_result_t<A>;
    if constexpr (detail::FutureLike<A>) {
        return detail::wait_for_impl<T>(Future<T>(std::forward<A>(aw)), timeout.seconds());
    } else {
        return detail::wait_for_impl<T>(Coro<T>(std::forward<A>(aw)), timeout.seconds());
    }
}

// ============================================================================================
// as_completed
// ============================================================================================

namespace detail {

template <class T>
class AsCompletedState {
public:
    AsCompletedState(EventLoop& loop, std::vector<Future<T>> futures, std::optional<double> timeout)
        : loop_(&loop), futures_(std::move(futures)), reported_(futures_.size(), false),
          remaining_(futures_.size()), timeout_(timeout) {}
    AsCompletedState(const AsCompletedState&) = delete;
    AsCompletedState& operator=(const AsCompletedState&) = delete;
    // Once nothing can ask for the next future any more, the callbacks and the timer go.
    ~AsCompletedState() {
        timer_.cancel();
        for (std::size_t i = 0; i < callback_ids_.size(); ++i)
            if (!futures_[i].done()) futures_[i].remove_done_callback(callback_ids_[i]);
    }

    static void start(const std::shared_ptr<AsCompletedState>& self) {
        std::weak_ptr<AsCompletedState> weak = self;
        for (std::size_t i = 0; i < self->futures_.size(); ++i) {
            self->callback_ids_.push_back(self->futures_[i].state()->add_done_callback([weak, i] {
                if (auto s = weak.lock()) s->on_completion(i);
            }));
        }
        if (!self->futures_.empty() && self->timeout_) {
            self->timer_ = self->loop_->call_later(*self->timeout_, [weak] {
                if (auto s = weak.lock()) s->on_timeout();
            });
        }
    }

    std::size_t size() const noexcept { return futures_.size(); }

    // Python's _wait_for_one(): the result of the next future to complete (in completion
    // order, whichever awaitable asks), or TimeoutError once the timeout has passed.
    static Coro<T> wait_for_one(std::shared_ptr<AsCompletedState> self) {
        while (self->done_.empty()) {
            auto getter = self->loop_->template create_future<void>();
            self->getters_.push_back(getter);
            std::exception_ptr error;
            try {
                co_await getter;
            } catch (...) {
                error = std::current_exception();
            }
            if (error) {
                self->forget_getter(getter);
                std::rethrow_exception(error);
            }
        }
        std::optional<Future<T>> next = std::move(self->done_.front());
        self->done_.pop_front();
        if (!next)
            throw TimeoutError(ETIMEDOUT,
                               "as_completed: timed out after " + format_seconds(*self->timeout_) + " s");
        co_return take_result(*next);
    }

private:
    void on_completion(std::size_t i) {
        if (reported_[i] || remaining_ == 0) return;  // the timeout came first
        reported_[i] = true;
        --remaining_;
        put(futures_[i]);
        if (remaining_ == 0) timer_.cancel();
    }

    // Every future not reported yet becomes a TimeoutError for one awaitable.
    void on_timeout() {
        for (std::size_t i = 0; i < futures_.size(); ++i) {
            if (reported_[i]) continue;
            reported_[i] = true;
            if (!futures_[i].done()) futures_[i].remove_done_callback(callback_ids_[i]);
            put(std::nullopt);
        }
        remaining_ = 0;
    }

    void put(std::optional<Future<T>> item) {
        done_.push_back(std::move(item));
        wake_next_getter();
    }

    void wake_next_getter() {
        while (!getters_.empty()) {
            Future<void> getter = std::move(getters_.front());
            getters_.pop_front();
            if (!getter.done()) {
                getter.set_result();
                return;
            }
        }
    }

    // A getter whose task was cancelled: drop it, and pass on a wake-up it may have taken.
    void forget_getter(const Future<void>& getter) {
        getter.cancel();
        std::erase(getters_, getter);
        if (!done_.empty()) wake_next_getter();
    }

    EventLoop* loop_;
    std::vector<Future<T>> futures_;
    std::vector<CallbackId> callback_ids_;
    std::vector<bool> reported_;
    std::size_t remaining_;
    std::optional<double> timeout_;
    TimerHandle timer_;
    std::deque<std::optional<Future<T>>> done_;  // completion order; empty = timed out
    std::deque<Future<void>> getters_;
};

}  // namespace detail

// What as_completed() returns: a range of size() awaitables (each a Coro<T>) that give the
// results in the order the futures complete:
//
//     for (auto next : asyncio::as_completed(std::move(tasks), 5s)) {
//         T result = co_await next;   // raises the future's exception, or TimeoutError
//     }
//
// The i-th awaitable awaited gives the i-th completion, whichever awaitable it is (they may be
// awaited concurrently, e.g. as tasks). Once the timeout passes, every awaitable still to be
// answered raises TimeoutError ("as_completed: timed out after 5 s"); nothing is cancelled.
// Dereference each position once (as range-for does): every dereference makes a new awaitable.
// When this object and every awaitable it made are gone, the timer and callbacks are removed.
template <class T>
class AsCompleted {
public:
    class iterator {
    public:
        using value_type = Coro<T>;
        using difference_type = std::ptrdiff_t;

        iterator() = default;
        Coro<T> operator*() const { return detail::AsCompletedState<T>::wait_for_one(state_); }
        iterator& operator++() {
            ++index_;
            return *this;
        }
        iterator operator++(int) {
            iterator before = *this;
            ++index_;
            return before;
        }
        friend bool operator==(const iterator& a, const iterator& b) noexcept {
            return a.index_ == b.index_;
        }

    private:
        friend class AsCompleted;
        iterator(std::shared_ptr<detail::AsCompletedState<T>> state, std::size_t index)
            : state_(std::move(state)), index_(index) {}
        std::shared_ptr<detail::AsCompletedState<T>> state_;
        std::size_t index_ = 0;
    };

    explicit AsCompleted(std::shared_ptr<detail::AsCompletedState<T>> state) : state_(std::move(state)) {}

    std::size_t size() const noexcept { return state_->size(); }
    iterator begin() const { return iterator(state_, 0); }
    iterator end() const { return iterator(state_, state_->size()); }

private:
    std::shared_ptr<detail::AsCompletedState<T>> state_;
};

// as_completed(fs, timeout): see AsCompleted. Coros become tasks at once, repeated futures count
// once. Needs an event loop (the futures' loop, else get_event_loop()).
template <class A>
    requires detail::Awaitable<A>
AsCompleted<detail::awaitable_result_t<A>> as_completed(std::vector<A> fs, Delay timeout = {}) {
    using T = detail::awaitable_result_t<A>;
    EventLoop* loop = nullptr;
    for (const auto& a : fs)
        if (!loop) loop = detail::loop_of(a);
    if (!loop) loop = &get_event_loop();
    for (const auto& a : fs) detail::check_loop(a, *loop, "as_completed");
    std::vector<Future<T>> futures;
    futures.reserve(fs.size());
    for (auto& a : fs) futures.push_back(detail::to_future(std::move(a), *loop, "as_completed"));
    detail::remove_duplicates(futures);
    auto state = std::make_shared<detail::AsCompletedState<T>>(*loop, std::move(futures), timeout.seconds());
    detail::AsCompletedState<T>::start(state);
    return AsCompleted<T>(std::move(state));
}

// ============================================================================================
// run_coroutine_threadsafe
// ============================================================================================

namespace detail {

// The state a ConcurrentFuture shares with the loop: guarded by a mutex, since the two sides
// live on different threads. `task` belongs to the loop's thread alone.
template <class T>
class ConcurrentState {
public:
    explicit ConcurrentState(EventLoop& loop) noexcept : loop_(&loop) {}

    EventLoop& loop() const noexcept { return *loop_; }

    bool done() const {
        std::lock_guard lock(mutex_);
        return status_ != Status::pending;
    }
    bool cancelled() const {
        std::lock_guard lock(mutex_);
        return status_ == Status::cancelled;
    }

    // Each returns false when the future was already done (the first outcome wins).
    template <class... V>
    bool finish_with_value(V&&... v) {
        return finish(Status::finished, [&] { value_.emplace(std::forward<V>(v)...); });
    }
    bool finish_with_exception(std::exception_ptr e) {
        return finish(Status::finished, [&] { error_ = std::move(e); });
    }
    bool finish_cancelled() {
        return finish(Status::cancelled, [] {});
    }

    // Waits until done; false if `timeout` (seconds) passed first.
    bool wait(std::optional<double> timeout) const {
        std::unique_lock lock(mutex_);
        auto is_done = [this] { return status_ != Status::pending; };
        if (!timeout) {
            cv_.wait(lock, is_done);
            return true;
        }
        return cv_.wait_for(lock, std::chrono::duration<double>(*timeout), is_done);
    }

    T result() {
        std::lock_guard lock(mutex_);
        raise_if_cancelled();
        if (error_) std::rethrow_exception(error_);
        if constexpr (std::is_void_v<T>) {
            return;
        } else if constexpr (std::is_copy_constructible_v<T>) {
            return *value_;
        } else {
            if (!value_) throw InvalidStateError("ConcurrentFuture.result(): the value was already taken");
            T out = std::move(*value_);
            value_.reset();
            return out;
        }
    }
    std::exception_ptr exception() const {
        std::lock_guard lock(mutex_);
        raise_if_cancelled();
        return error_;
    }

    // The task running the coroutine, while it runs (the loop's thread only).
    TaskCore* task = nullptr;

private:
    enum class Status { pending, finished, cancelled };

    template <class Set>
    bool finish(Status s, Set&& set) {
        {
            std::lock_guard lock(mutex_);
            if (status_ != Status::pending) return false;
            set();
            status_ = s;
        }
        cv_.notify_all();
        return true;
    }
    void raise_if_cancelled() const {
        if (status_ == Status::cancelled) throw CancelledError();
    }

    EventLoop* loop_;
    mutable std::mutex mutex_;
    mutable std::condition_variable cv_;
    Status status_ = Status::pending;
    std::optional<value_or_monostate_t<T>> value_;
    std::exception_ptr error_;
};

// The coroutine that run_coroutine_threadsafe() runs as a task: runs `coro` and delivers its
// outcome to the concurrent future.
template <class T>
Coro<> run_for_concurrent_future(std::shared_ptr<ConcurrentState<T>> state, Coro<T> coro) {
    // Cancelled from the other thread before it could start.
    if (state->done()) throw CancelledError();
    state->task = current_task().core();
    struct Unregister {
        ConcurrentState<T>& state;
        // Also reached when the loop closes with the task pending and destroys this frame: the
        // other thread must not wait forever.
        ~Unregister() {
            state.task = nullptr;
            state.finish_with_exception(std::make_exception_ptr(RuntimeError(
                "run_coroutine_threadsafe: the event loop closed with the coroutine pending")));
        }
    } unregister{*state};
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(coro);
            state->finish_with_value();
        } else {
            state->finish_with_value(co_await std::move(coro));
        }
    } catch (const CancelledError&) {
        state->finish_cancelled();
        throw;
    } catch (...) {
        // Delivered to the other thread; the task itself ends normally (nothing to report).
        state->finish_with_exception(std::current_exception());
    }
}

// The callback that run_coroutine_threadsafe() hands to the loop. If the loop drops it unrun
// (it closed first), the concurrent future fails instead of hanging.
template <class T>
class StartOnLoop {
public:
    StartOnLoop(std::shared_ptr<ConcurrentState<T>> state, Coro<T> coro)
        : state_(std::move(state)), coro_(std::move(coro)) {}
    StartOnLoop(StartOnLoop&&) noexcept = default;
    StartOnLoop& operator=(StartOnLoop&&) = delete;
    ~StartOnLoop() {
        if (state_)
            state_->finish_with_exception(std::make_exception_ptr(RuntimeError(
                "run_coroutine_threadsafe: the event loop closed before the coroutine started")));
    }

    void operator()() {
        auto state = std::move(state_);
        try {
            state->loop().create_task(run_for_concurrent_future<T>(state, std::move(coro_)));
        } catch (...) {
            state->finish_with_exception(std::current_exception());
        }
    }

private:
    std::shared_ptr<ConcurrentState<T>> state_;
    Coro<T> coro_;
};

}  // namespace detail

// Python's concurrent.futures.Future, as run_coroutine_threadsafe() returns it: every member may
// be called from any thread. A cheap copyable handle.
template <class T>
class ConcurrentFuture {
public:
    explicit ConcurrentFuture(std::shared_ptr<detail::ConcurrentState<T>> state) : state_(std::move(state)) {}

    bool done() const { return state_->done(); }
    bool cancelled() const { return state_->cancelled(); }

    // Waits (without limit, or up to `timeout`, raising TimeoutError) and returns the
    // coroutine's result: copied when T is copyable, else moved out (then only once). Raises
    // its exception, or CancelledError if cancelled.
    T result(Delay timeout = {}) const {
        wait_or_raise(timeout, "result");
        return state_->result();
    }
    // Waits as result() does and returns the coroutine's exception, or null.
    std::exception_ptr exception(Delay timeout = {}) const {
        wait_or_raise(timeout, "exception");
        return state_->exception();
    }
    // Waits until done; false if the timeout passed first.
    bool wait(Delay timeout = {}) const { return state_->wait(timeout.seconds()); }

    // Python's cancel(): false when already done. Otherwise the future is cancelled at once
    // (result() raises CancelledError) and the loop is asked to cancel the coroutine's task; a
    // coroutine that has not started yet never starts. The loop must still exist.
    bool cancel() const {
        if (!state_->finish_cancelled()) return false;
        try {
            state_->loop().call_soon_threadsafe([state = state_] {
                if (state->task) state->task->request_cancel({});
            });
        } catch (const RuntimeError&) {
            // The loop is closed: the coroutine can no longer run anyway.
        }
        return true;
    }

private:
    void wait_or_raise(const Delay& timeout, const char* what) const {
        if (!state_->wait(timeout.seconds()))
            throw TimeoutError(ETIMEDOUT, std::string("ConcurrentFuture.") + what + ": timed out after " +
                                              detail::format_seconds(*timeout.seconds()) + " s");
    }

    std::shared_ptr<detail::ConcurrentState<T>> state_;
};

// run_coroutine_threadsafe(coro, loop): the one way for another thread to run a coroutine on a
// loop. Schedules it as a task of `loop` (through call_soon_threadsafe) and returns a
// ConcurrentFuture for its outcome. Raises RuntimeError if the loop is closed. If the loop closes
// before the coroutine finishes, the future fails with RuntimeError rather than waiting forever.
template <class T>
ConcurrentFuture<T> run_coroutine_threadsafe(Coro<T> coro, EventLoop& loop) {
    if (!coro.valid()) throw RuntimeError("run_coroutine_threadsafe() needs a coroutine; this Coro is empty");
    auto state = std::make_shared<detail::ConcurrentState<T>>(loop);
    loop.call_soon_threadsafe(detail::StartOnLoop<T>(state, std::move(coro)));
    return ConcurrentFuture<T>(std::move(state));
}

}  // namespace tulip::asyncio
