#include "tulip/asyncio/taskgroups.hpp"

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio {

TaskGroup::TaskGroup() : state_(std::make_shared<State>()) {
    state_->parent = current_task();
    if (!state_->parent) throw RuntimeError("TaskGroup cannot determine the parent task: run it inside a task");
    state_->loop = &get_running_loop();
}

void TaskGroup::check_accepting() const {
    if (state_->exiting && state_->tasks.empty()) throw RuntimeError("TaskGroup is finished");
    if (state_->aborting) throw RuntimeError("TaskGroup is shutting down");
}

void TaskGroup::add(detail::FutureStateBase& task) {
    std::uint64_t id = state_->next_id++;
    state_->tasks.emplace(id, detail::Ref<detail::FutureStateBase>(&task));
    // The callback is added even if the task is already done, so that a failure is seen.
    task.add_done_callback([weak = std::weak_ptr<State>(state_), id] {
        if (auto state = weak.lock()) state->on_task_done(id);
    });
}

void TaskGroup::State::abort() {
    aborting = true;
    // Copied: cancelling schedules callbacks only, but the map must not change under the loop.
    std::vector<detail::Ref<detail::FutureStateBase>> pending;
    pending.reserve(tasks.size());
    for (auto& [id, task] : tasks)
        if (!task->done()) pending.push_back(task);
    for (auto& task : pending) task->cancel({});
}

void TaskGroup::State::on_task_done(std::uint64_t id) {
    auto it = tasks.find(id);
    if (it == tasks.end()) return;
    detail::Ref<detail::FutureStateBase> task = std::move(it->second);
    tasks.erase(it);

    if (on_completed && tasks.empty() && !on_completed->done()) on_completed->set_result();
    if (task->cancelled()) return;
    std::exception_ptr error = task->exception();
    if (!error) return;
    errors.push_back(error);

    if (parent.done()) {
        // Python handles this too, though it should not happen: the parent waits for the tasks.
        ExceptionContext context;
        context.message = task->describe() + " has errored out but its parent task '" + parent.get_name() +
                          "' is already completed";
        context.exception = error;
        context.future = task->describe();
        loop->call_exception_handler(context);
        return;
    }
    if (!aborting && !parent_cancel_requested) {
        // Interrupt whatever the body awaits now; exit() withdraws this cancellation again, so
        // that the parent sees the ExceptionGroup rather than CancelledError:
        //
        //     try { co_await TaskGroup::run(body_with_failing_task); } catch (ExceptionGroup&) {}
        //     co_await something_else;   // must not be cancelled
        abort();
        parent_cancel_requested = true;
        parent.cancel();
    }
}

Coro<> TaskGroup::exit(std::exception_ptr body_error) {
    State& s = *state_;
    s.exiting = true;
    bool body_cancelled = detail::is_cancelled_error(body_error);
    std::exception_ptr propagate_cancellation = body_cancelled ? body_error : nullptr;

    // The parent was cancelled in the body, or the body raised: the tasks go too.
    if (body_error && !s.aborting) s.abort();

    // The wait may be interrupted many times: by the parent's cancellation (once or repeatedly)
    // and by the group's own cancellation of the parent after a failure.
    while (!s.tasks.empty()) {
        Future<void> completed = s.loop->create_future<void>();
        s.on_completed = completed;
        std::exception_ptr cancelled;
        try {
            co_await completed;
        } catch (const CancelledError&) {
            cancelled = std::current_exception();
        }
        if (cancelled && !s.aborting) {
            // The parent is being cancelled while the body is done and tasks still run.
            propagate_cancellation = cancelled;
            s.abort();
        }
        s.on_completed.reset();
    }

    // The cancellation the group sent to its parent is withdrawn; if none is left, the
    // CancelledError the body got from it is not propagated.
    if (s.parent_cancel_requested && s.parent.uncancel() == 0) propagate_cancellation = nullptr;

    // A cancellation propagates unless there are errors: those have priority.
    if (propagate_cancellation && s.errors.empty()) std::rethrow_exception(propagate_cancellation);

    if (body_error && !body_cancelled) s.errors.push_back(body_error);
    if (!s.errors.empty()) {
        // The parent is being cancelled from outside too: keep that request pending (uncancel
        // and cancel again leave the count as it was and re-arm the delivery).
        if (s.parent.cancelling()) {
            s.parent.uncancel();
            s.parent.cancel();
        }
        throw ExceptionGroup("unhandled errors in a TaskGroup", std::exchange(s.errors, {}));
    }
}

}  // namespace tulip::asyncio
