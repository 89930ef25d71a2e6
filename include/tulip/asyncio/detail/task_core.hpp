// The type-independent half of a Task: where it resumes, what it waits on, and its cancellation
// state. The loop's ready queue steps TaskCores; awaiters record themselves here.
#pragma once

#include <coroutine>
#include <cstdint>
#include <string>
#include <utility>

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

class FutureStateBase;

// Something a task can be suspended on that Task.cancel() knows how to interrupt: a future, a
// sleep timer. cancel_wait() arranges for the task to wake up with CancelledError and returns
// true, or returns false when it is too late (the wait already completed).
class Waitable {
public:
    virtual bool cancel_wait(const std::string& msg) = 0;

protected:
    ~Waitable() = default;
};

class TaskCore {
public:
    // state: the task's own future (its outcome and reference count), the object this core is
    // part of.
    explicit TaskCore(FutureStateBase& state) noexcept : state_(&state) {}
    TaskCore(const TaskCore&) = delete;
    TaskCore& operator=(const TaskCore&) = delete;

    // A stored pointer rather than a virtual call: every wake-up and every step of a task
    // reaches its reference count through here.
    FutureStateBase& future_state() const noexcept { return *state_; }

    // Run by the loop: resume the task where it last suspended.
    void step();

    // Task.cancel(msg) (Python 3.11 semantics, including the cancel counter).
    bool request_cancel(std::string msg);

    // The loop is closing and the task can never finish: destroy its coroutine frame (breaking
    // the frame -> awaited future -> waiting task cycle) and report it as destroyed pending.
    virtual void abandon_pending() noexcept = 0;

    // Where the task resumes next: the innermost suspended coroutine of its chain.
    std::coroutine_handle<> resume_point;
    // What the task is suspended on, if that can be cancelled.
    Waitable* waiting_on = nullptr;
    // A cancel() that could not interrupt a wait; delivered at the next resumption.
    bool must_cancel = false;
    bool started = false;
    bool registered = false;  // in its loop's live-task list
    std::string cancel_message;
    std::uint32_t num_cancels_requested = 0;

    // Python's Task.get_name()/set_name(). An unnamed task takes its number at creation, so that
    // the numbers follow creation order as in Python, but "Task-<n>" is only formatted the first
    // time someone asks: almost no one does, and formatting it cost a sixth of create_task.
    const std::string& get_name() const;
    void set_name(std::string name) noexcept {
        name_ = std::move(name);
        number_ = 0;
    }

    // The loop's list of live tasks (all_tasks()).
    TaskCore* prev_live = nullptr;
    TaskCore* next_live = nullptr;

protected:
    ~TaskCore() = default;
    // The name given to create_task(), or, when it is empty, the next "Task-<n>" number.
    void init_name(std::string name) {
        if (name.empty()) number_ = next_task_number();
        else name_ = std::move(name);
    }
    // A cancel() before the first step: the coroutine never starts and the task ends cancelled.
    virtual void cancel_before_start() noexcept = 0;

private:
    static std::uint64_t next_task_number() noexcept;

    FutureStateBase* state_;

    mutable std::string name_;  // empty until set or formatted
    std::uint64_t number_ = 0;  // 0 once named
};

// "Task-<number>".
std::string format_task_name(std::uint64_t number);

// The task whose coroutine is running on this thread right now, or null. constinit: no dynamic
// initialisation, so reading it is a plain thread-local load, without a wrapper call.
extern constinit thread_local TaskCore* t_current_task;
inline TaskCore* current_task_core() noexcept { return t_current_task; }

// Called by every tulip awaiter that suspends a task: records where to resume and what can be
// cancelled. Throws RuntimeError when no task is running (co_await outside a task).
TaskCore& suspend_current_task(std::coroutine_handle<> h, Waitable* waiting_on);

// Called by every tulip awaiter that did suspend, as it resumes: delivers a cancel() that arrived
// while the task was ready to run but not waiting on anything cancellable.
void raise_if_cancel_requested();

// Raises the CancelledError of a cancel() that is waiting to be delivered. Out of line, so that
// the check below (every resumption of an awaiter that suspended) saves no registers for
// building the exception.
[[noreturn, gnu::noinline]] void raise_cancel_requested(TaskCore& task);

// raise_if_cancel_requested() for an awaiter that knows its task already.
inline void raise_if_cancel_requested(TaskCore& task) {
    if (task.must_cancel) [[unlikely]]
        raise_cancel_requested(task);
}

}  // namespace tulip::asyncio::detail
