// Task<T> and create_task (Python's asyncio/tasks.py, the Task half; the functions that
// combine awaitables are in combinators.hpp).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tulip/asyncio/coro.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/futures.hpp"

namespace tulip::asyncio {

namespace detail {

// Logs "Task was destroyed but it is pending!" through the loop's exception handler, if the loop
// still exists.
void report_pending_task_destroyed(EventLoop* loop, const TaskCore& task) noexcept;

template <class T>
class TaskState final : public FutureState<T>, public TaskCore, public CoroOwner {
public:
    using Handle = typename Coro<T>::handle_type;

    TaskState(EventLoop& loop, Handle frame, std::string task_name)
        : FutureState<T>(loop), TaskCore(static_cast<FutureStateBase&>(*this)), frame_(frame) {
        init_name(std::move(task_name));
        resume_point = frame;
        frame_.promise().set_owner(this);
        loop.register_task(*this);
    }

    ~TaskState() override {
        if (frame_) {
            // Still pending: the loop dropped it (closed) or nothing will ever wake it.
            report_pending_task_destroyed(&this->loop(), *this);
            destroy_frame();
        }
        if (registered) this->loop().unregister_task(*this);
    }

    bool cancel(std::string msg) override { return request_cancel(std::move(msg)); }
    bool is_task() const noexcept override { return true; }
    std::string describe() const override { return "Task '" + get_name() + "'"; }

    void abandon_pending() noexcept override {
        if (!frame_) return;
        report_pending_task_destroyed(&this->loop(), *this);
        destroy_frame();
    }

    void on_coro_finished() noexcept override {
        auto& promise = frame_.promise();
        std::exception_ptr error = promise.exception();
        this->loop().unregister_task(*this);
        if (error) {
            complete_with_exception(error);
        } else if (must_cancel) {
            // Python: a coroutine that returns after cancel() was requested ends cancelled.
            must_cancel = false;
            this->cancel_future(cancel_message);
        } else if constexpr (std::is_void_v<T>) {
            this->set_result();
        } else {
            this->set_result(promise.take_result());
        }
        destroy_frame();
    }

protected:
    void cancel_before_start() noexcept override {
        must_cancel = false;
        this->loop().unregister_task(*this);
        destroy_frame();
        this->cancel_future(cancel_message);
    }

private:
    void complete_with_exception(std::exception_ptr error) noexcept {
        try {
            std::rethrow_exception(error);
        } catch (const CancelledError& e) {
            this->cancel_future(e.message());
        } catch (...) {
            this->set_exception(error);
        }
    }
    void destroy_frame() noexcept {
        Handle f = std::exchange(frame_, {});
        if (f) f.destroy();
    }

    Handle frame_;
};

}  // namespace detail

template <class T = void>
class Task : public Future<T> {
public:
    Task() = default;
    explicit Task(detail::Ref<detail::TaskState<T>> s) noexcept
        : Future<T>(detail::Ref<detail::FutureState<T>>(s.get())) {}

    const std::string& get_name() const { return task().get_name(); }
    void set_name(std::string name) const { task().set_name(std::move(name)); }
    // Python 3.11: how many cancel() requests are pending; uncancel() withdraws one.
    std::uint32_t cancelling() const noexcept { return task().num_cancels_requested; }
    std::uint32_t uncancel() const noexcept {
        auto& t = task();
        if (t.num_cancels_requested > 0) --t.num_cancels_requested;
        if (t.num_cancels_requested == 0) t.must_cancel = false;
        return t.num_cancels_requested;
    }

private:
    detail::TaskState<T>& task() const noexcept {
        return static_cast<detail::TaskState<T>&>(*this->state());
    }
};

template <class T>
Task<T> EventLoop::create_task(Coro<T> coro, std::string name) {
    check_closed();
    if (!coro.valid()) throw RuntimeError("create_task() needs a coroutine; this Coro is empty");
    auto* state = new detail::TaskState<T>(*this, coro.release(), std::move(name));
    detail::Ref<detail::TaskState<T>> ref(state);
    schedule_task_step(*state);
    return Task<T>(std::move(ref));
}

template <class T>
Future<T> EventLoop::create_future() {
    return Future<T>(*this);
}

template <class T>
T EventLoop::run_until_complete(Future<T> future) {
    run_until_done(*future.state());
    if constexpr (std::is_void_v<T>) {
        future.result();
    } else if constexpr (std::is_copy_constructible_v<T>) {
        return future.result();
    } else {
        return std::move(future.result());
    }
}

template <class T>
T EventLoop::run_until_complete(Coro<T> coro) {
    Future<T> task(create_task(std::move(coro)));
    run_until_done(*task.state());
    if constexpr (std::is_void_v<T>) {
        task.result();
    } else {
        return std::move(task.result());
    }
}

template <class F>
auto EventLoop::run_in_executor(F&& fn) -> Future<std::invoke_result_t<std::decay_t<F>&>> {
    using R = std::invoke_result_t<std::decay_t<F>&>;
    check_closed();
    Future<R> future(*this);
    // The job carries one reference to the state, taken here and dropped on the loop thread
    // (the count is not atomic: the worker only moves the pointer along).
    auto* state = future.state();
    state->add_ref();
    auto job = [this, state, fn = std::forward<F>(fn)]() mutable {
        std::exception_ptr error;
        std::optional<std::conditional_t<std::is_void_v<R>, char, R>> value;
        try {
            if constexpr (std::is_void_v<R>) {
                fn();
                value.emplace();
            } else {
                value.emplace(fn());
            }
        } catch (...) {
            error = std::current_exception();
        }
        // Adopting and moving a Ref does not touch the count; the callback is run or dropped
        // (at close) on the loop thread, which is where the reference is finally released.
        // The worker keeps no copy of the exception either: only the loop thread may drop the
        // last reference to it (ThreadSanitizer cannot see libstdc++'s atomic count).
        auto deliver = [owned = detail::Ref<detail::FutureState<R>>::adopt(state), error = std::move(error),
                        value = std::move(value)]() mutable {
            (void)value;  // unused when R is void
            // Take the reference and the exception out of the callback: the node itself may be
            // freed later on the worker thread (when its Handle there is the last one), which
            // must not touch them.
            auto state = std::move(owned);
            auto exception = std::move(error);
            if (state->done()) return;  // cancelled meanwhile
            if (exception) {
                state->set_exception(std::move(exception));
            } else if constexpr (std::is_void_v<R>) {
                state->set_result();
            } else {
                state->set_result(std::move(*value));
            }
        };
        // Cannot fail: close() joins the pool before it shuts the cross-thread door.
        call_soon_threadsafe(std::move(deliver));
    };
    try {
        submit_to_executor(std::move(job));
    } catch (...) {
        state->release();
        throw;
    }
    return future;
}

// --- module-level functions ----------------------------------------------------------------

// create_task on the running loop.
template <class T>
Task<T> create_task(Coro<T> coro, std::string name = {}) {
    return get_running_loop().create_task(std::move(coro), std::move(name));
}

// Python's ensure_future: a Future stays itself, a Coro becomes a Task.
template <class T>
Future<T> ensure_future(Future<T> f) {
    return f;
}
template <class T>
Future<T> ensure_future(Coro<T> coro) {
    return create_task(std::move(coro));
}

// The task running now, or an empty optional outside any task. Its type is erased: a
// TaskRef can be compared, named and cancelled.
class TaskRef {
public:
    TaskRef() = default;
    explicit TaskRef(detail::TaskCore* core) noexcept
        : core_(core), state_(core ? &core->future_state() : nullptr) {}
    bool cancel(std::string msg = {}) const { return core_->request_cancel(std::move(msg)); }
    bool done() const noexcept { return state_->done(); }
    bool cancelled() const noexcept { return state_->cancelled(); }
    const std::string& get_name() const { return core_->get_name(); }
    void set_name(std::string name) const { core_->set_name(std::move(name)); }
    std::uint32_t cancelling() const noexcept { return core_->num_cancels_requested; }
    std::uint32_t uncancel() const noexcept {
        if (core_->num_cancels_requested > 0) --core_->num_cancels_requested;
        if (core_->num_cancels_requested == 0) core_->must_cancel = false;
        return core_->num_cancels_requested;
    }
    explicit operator bool() const noexcept { return core_ != nullptr; }
    friend bool operator==(const TaskRef& a, const TaskRef& b) noexcept {
        return a.core_ == b.core_;
    }
    template <class T>
    friend bool operator==(const TaskRef& a, const Task<T>& b) noexcept {
        return a.state_.get() == b.state();
    }
    detail::TaskCore* core() const noexcept { return core_; }

private:
    detail::TaskCore* core_ = nullptr;
    detail::Ref<detail::FutureStateBase> state_;  // keeps the task alive
};

TaskRef current_task();
// The tasks of the running loop (or of `loop`) that are not done yet.
std::vector<TaskRef> all_tasks();
std::vector<TaskRef> all_tasks(EventLoop& loop);

}  // namespace tulip::asyncio

// --- sleep ---------------------------------------------------------------------------------

namespace tulip::asyncio {

// The awaitable that sleep() returns. It allocates no coroutine frame; a non-zero delay costs
// one timer.
class SleepAwaiter final : public detail::Waitable {
public:
    explicit SleepAwaiter(double seconds) noexcept : seconds_(seconds) {}
    SleepAwaiter(const SleepAwaiter&) = delete;
    SleepAwaiter& operator=(const SleepAwaiter&) = delete;
    // A sleep abandoned mid-way (its task destroyed) must not leave a timer pointing at it.
    ~SleepAwaiter() { timer_.cancel(); }

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        loop_ = &get_running_loop();
        if (seconds_ <= 0) {
            // sleep(0) only yields: like Python's bare `yield`, nothing here to cancel.
            task_ = &detail::suspend_current_task(h, nullptr);
            loop_->schedule_task_step(*task_);
            return;
        }
        task_ = &detail::suspend_current_task(h, this);
        // The loop keeps a sleeping task alive, as Python's keeps it through the timer's
        // callback; the reference goes when the sleep ends (or the frame is destroyed).
        keep_alive_ = detail::Ref<detail::FutureStateBase>(&task_->future_state());
        timer_ = loop_->call_later(seconds_, [this] { wake(); });
    }
    void await_resume() {
        keep_alive_.reset();
        if (cancelled_) throw CancelledError(std::move(cancel_message_));
        detail::raise_if_cancel_requested();
    }

    bool cancel_wait(const std::string& msg) override {
        if (woken_) return false;
        cancelled_ = true;
        cancel_message_ = msg;
        timer_.cancel();
        wake();
        return true;
    }

private:
    void wake() {
        if (woken_) return;
        woken_ = true;
        loop_->schedule_task_step(*task_);
    }

    double seconds_;
    EventLoop* loop_ = nullptr;
    detail::TaskCore* task_ = nullptr;
    TimerHandle timer_;
    detail::Ref<detail::FutureStateBase> keep_alive_;
    bool woken_ = false;
    bool cancelled_ = false;
    std::string cancel_message_;
};

// co_await sleep(100ms); sleep(0) yields to the loop once.
template <class Rep, class Period>
SleepAwaiter sleep(std::chrono::duration<Rep, Period> delay) {
    return SleepAwaiter(std::chrono::duration_cast<std::chrono::duration<double>>(delay).count());
}
inline SleepAwaiter sleep(double seconds) { return SleepAwaiter(seconds); }

}  // namespace tulip::asyncio
