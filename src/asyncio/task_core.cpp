#include "tulip/asyncio/detail/task_core.hpp"

#include <atomic>
#include <utility>

#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/futures.hpp"

namespace tulip::asyncio::detail {

constinit thread_local TaskCore* t_current_task = nullptr;

void TaskCore::step() {
    TaskCore* previous = std::exchange(t_current_task, this);
    struct Restore {
        TaskCore* previous;
        ~Restore() { t_current_task = previous; }
    } restore{previous};

    waiting_on = nullptr;
    if (!started) {
        started = true;
        if (must_cancel) {
            cancel_before_start();
            return;
        }
    }
    resume_point.resume();
    // Python's Task.__step: a cancel() requested while the task ran cancels the wait it has just
    // suspended on, at once, instead of when that wait would have ended on its own. The loop's
    // reference on the task keeps `this` alive here even if the coroutine finished.
    if (must_cancel && waiting_on && !future_state().done() && waiting_on->cancel_wait(cancel_message))
        must_cancel = false;
}

bool TaskCore::request_cancel(std::string msg) {
    if (future_state().done()) return false;
    ++num_cancels_requested;
    if (waiting_on && waiting_on->cancel_wait(msg)) return true;
    must_cancel = true;
    cancel_message = std::move(msg);
    return true;
}

TaskCore& suspend_current_task(std::coroutine_handle<> h, Waitable* waiting_on) {
    TaskCore* task = t_current_task;
    if (!task)
        throw RuntimeError(
            "co_await on a tulip awaitable outside a task: run the coroutine with "
            "asyncio::run(), create_task() or run_until_complete()");
    task->resume_point = h;
    task->waiting_on = waiting_on;
    return *task;
}

void raise_cancel_requested(TaskCore& task) {
    task.must_cancel = false;
    throw CancelledError(std::exchange(task.cancel_message, {}));
}

void raise_if_cancel_requested() {
    TaskCore* task = t_current_task;
    if (task) raise_if_cancel_requested(*task);
}

void report_pending_task_destroyed(EventLoop* loop, const TaskCore& task) noexcept {
    if (!loop_is_alive(loop)) return;
    try {
        ExceptionContext context;
        context.message = "Task was destroyed but it is pending!";
        context.future = "Task '" + task.get_name() + "'";
        loop->call_exception_handler(context);
    } catch (...) {
        // Out of memory while formatting the report: nothing more can be said.
    }
}

std::uint64_t TaskCore::next_task_number() noexcept {
    // Shared by all loops and threads, as Python's counter is: names are unique in the process.
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

const std::string& TaskCore::get_name() const {
    if (number_ != 0 && name_.empty()) name_ = format_task_name(number_);
    return name_;
}

std::string format_task_name(std::uint64_t number) { return "Task-" + std::to_string(number); }

}  // namespace tulip::asyncio::detail

namespace tulip::asyncio {

TaskRef current_task() { return TaskRef(detail::current_task_core()); }

std::vector<TaskRef> all_tasks(EventLoop& loop) {
    std::vector<TaskRef> out;
    for (auto* t = loop.first_live_task(); t; t = t->next_live) out.emplace_back(t);
    return out;
}

std::vector<TaskRef> all_tasks() { return all_tasks(get_running_loop()); }

}  // namespace tulip::asyncio
