#include "tulip/asyncio/detail/future_state.hpp"

#include <algorithm>

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

FutureStateBase::~FutureStateBase() {
    if (state_ == State::finished && exception_ && !exception_retrieved_ && loop_is_alive(loop_) &&
        !loop_->is_closed()) {
        ExceptionContext context;
        context.message = describe() + " exception was never retrieved";
        context.exception = exception_;
        context.future = describe();
        loop_->call_exception_handler(context);
    }
    // A pending future that dies still owns references to the tasks that await it.
    if (first_waiter_) first_waiter_->future_state().release();
    for (TaskCore* t : more_waiters_) t->future_state().release();
}

bool FutureStateBase::cancel(std::string msg) { return cancel_future(std::move(msg)); }

bool FutureStateBase::cancel_future(std::string msg) {
    if (state_ != State::pending) return false;
    cancel_message_ = std::move(msg);
    finish(State::cancelled);
    return true;
}

void FutureStateBase::check_pending(const char* operation) const {
    if (state_ != State::pending)
        throw InvalidStateError(std::string(operation) + "() on a " + describe() + " that is " +
                                (state_ == State::cancelled ? "cancelled" : "already done"));
}

void FutureStateBase::set_exception(std::exception_ptr e) {
    check_pending("set_exception");
    if (!e) throw InvalidStateError("set_exception() needs an exception, got a null exception_ptr");
    exception_ = std::move(e);
    finish(State::finished);
}

std::exception_ptr FutureStateBase::exception() {
    if (state_ == State::cancelled) throw make_cancelled_error();
    if (state_ == State::pending) throw InvalidStateError("Exception is not set.");
    exception_retrieved_ = true;
    return exception_;
}

void FutureStateBase::raise_if_not_successful() {
    if (state_ == State::cancelled) throw make_cancelled_error();
    if (state_ == State::pending) throw InvalidStateError("Result is not set.");
    if (exception_) {
        exception_retrieved_ = true;
        std::rethrow_exception(exception_);
    }
}

void FutureStateBase::add_task_waiter(TaskCore& task) {
    if (!first_waiter_) {
        first_waiter_ = &task;
    } else {
        more_waiters_.push_back(&task);
    }
    task.future_state().add_ref();
}

CallbackId FutureStateBase::add_done_callback(std::function<void()> cb) {
    if (done()) {
        loop_->call_soon([self = Ref<FutureStateBase>(this), cb = std::move(cb)] { cb(); });
        return 0;
    }
    CallbackId id = next_callback_id_++;
    callbacks_.emplace_back(id, std::move(cb));
    return id;
}

std::size_t FutureStateBase::remove_done_callback(CallbackId id) {
    auto before = callbacks_.size();
    std::erase_if(callbacks_, [id](const auto& entry) { return entry.first == id; });
    return before - callbacks_.size();
}

void FutureStateBase::finish(State s) {
    state_ = s;
    schedule_callbacks();
}

void FutureStateBase::schedule_callbacks() {
    // Each waiter's reference moves to the ready queue.
    if (TaskCore* t = std::exchange(first_waiter_, nullptr)) {
        loop_->schedule_task_step(*t);
        t->future_state().release();
    }
    for (TaskCore* t : std::exchange(more_waiters_, {})) {
        loop_->schedule_task_step(*t);
        t->future_state().release();
    }
    if (callbacks_.empty()) return;
    auto callbacks = std::exchange(callbacks_, {});
    // A scheduled callback keeps the future alive until it has run: the callbacks themselves
    // hold no reference (that would be a cycle leaking every pending future with a callback).
    for (auto& entry : callbacks)
        loop_->call_soon([self = Ref<FutureStateBase>(this), cb = std::move(entry.second)] { cb(); });
}

}  // namespace tulip::asyncio::detail
