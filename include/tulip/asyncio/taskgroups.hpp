// Python 3.11's asyncio.TaskGroup (asyncio/taskgroups.py).
//
// C++ has no `async with`: TaskGroup::run() takes the body of the block as a coroutine function
// that receives the group, and returns once the body and every task of the group are done:
//
//     // Python:  async with asyncio.TaskGroup() as tg:
//     //              t1 = tg.create_task(some_coro(...))
//     //              t2 = tg.create_task(another_coro(...))
//     //          print(t1.result(), t2.result())
//     asyncio::Task<int> t1, t2;
//     co_await asyncio::TaskGroup::run([&](asyncio::TaskGroup& tg) -> asyncio::Coro<> {
//         t1 = tg.create_task(some_coro());
//         t2 = tg.create_task(another_coro());
//         co_return;
//     });
//
// run() returns what the body returns. The body, and the group's tasks, may create more tasks
// in the group (pass the TaskGroup& along) until the group has finished.
//
// Failure, as in Python: the first task that fails with an exception other than CancelledError
// cancels the other tasks and the body (the body sees CancelledError where it is suspended);
// once all are done, run() raises ExceptionGroup("unhandled errors in a TaskGroup", ...) with
// every exception the tasks raised, and the body's own exception (if it raised one other than
// CancelledError). A body that raises cancels the tasks the same way. A task that is cancelled
// (by itself or by anyone) is not a failure.
//
// Cancellation: cancelling the task that runs the group (the parent) cancels the body where it
// is suspended; the group then cancels its tasks, waits for them, and run() raises the parent's
// CancelledError, not wrapped, unless tasks failed meanwhile (then ExceptionGroup, and the
// parent's cancellation request is re-armed so it is not lost). The group's own cancellation of
// the parent is withdrawn with Task::uncancel() and never escapes as CancelledError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tulip/asyncio/detail/awaitable.hpp"
#include "tulip/asyncio/exceptions.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

class TaskGroup {
public:
    // Runs body(group) in the current task, then waits for the group's tasks (see above).
    // RuntimeError outside a task.
    template <class F>
    static auto run(F body) -> Coro<typename std::invoke_result_t<F&, TaskGroup&>::value_type> {
        using R = typename std::invoke_result_t<F&, TaskGroup&>::value_type;
        TaskGroup group;
        std::exception_ptr error;
        std::optional<detail::value_or_monostate_t<R>> value;
        try {
            if constexpr (std::is_void_v<R>) {
                co_await body(group);
                value.emplace();
            } else {
                value.emplace(co_await body(group));
            }
        } catch (...) {
            error = std::current_exception();
        }
        co_await group.exit(error);
        // exit() raises in every case where the body raised; this is the safety net.
        if (error) std::rethrow_exception(error);
        if constexpr (!std::is_void_v<R>) co_return std::move(*value);
    }

    TaskGroup(const TaskGroup&) = delete;
    TaskGroup& operator=(const TaskGroup&) = delete;

    // Python's TaskGroup.create_task: a task of the running loop that belongs to the group.
    // RuntimeError once the group is shutting down (after a failure or a cancellation) or has
    // finished; the coroutine is then destroyed without running.
    template <class T>
    Task<T> create_task(Coro<T> coro, std::string name = {}) {
        check_accepting();
        Task<T> task = state_->loop->create_task(std::move(coro), std::move(name));
        add(*task.state());
        return task;
    }

    // How many of the group's tasks are not done yet (Python's len(tg._tasks)).
    std::size_t size() const noexcept { return state_->tasks.size(); }

private:
    // What the tasks' done callbacks share with the group (they may outlive it when the loop
    // drops the group's frame).
    struct State {
        EventLoop* loop = nullptr;
        TaskRef parent;
        std::map<std::uint64_t, detail::Ref<detail::FutureStateBase>> tasks;  // creation order
        std::uint64_t next_id = 0;
        std::vector<std::exception_ptr> errors;
        std::optional<Future<void>> on_completed;
        bool exiting = false;
        bool aborting = false;
        bool parent_cancel_requested = false;

        void abort();
        void on_task_done(std::uint64_t id);
    };

    TaskGroup();
    void check_accepting() const;
    void add(detail::FutureStateBase& task);
    // Python's __aexit__: waits for the tasks and raises what the group must raise.
    Coro<> exit(std::exception_ptr body_error);

    std::shared_ptr<State> state_;
};

}  // namespace tulip::asyncio
