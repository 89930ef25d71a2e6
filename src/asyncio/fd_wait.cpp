#include "tulip/asyncio/detail/fd_wait.hpp"

#include <utility>

#include "../backend/backend.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/exceptions.hpp"

namespace tulip::asyncio::detail {

// The backend operation of one wait. It lives on the heap rather than in the awaiter because a
// completion backend may hold it after the awaiter is gone: a cancelled operation is released
// only by its final completion, which then frees it (waiter == null).
struct FdWaitOp : Operation {
    FdReadyAwaiter* waiter = nullptr;
    bool in_backend = false;

    static void complete_op(Operation& base, int result) noexcept {
        auto& op = static_cast<FdWaitOp&>(base);
        if (result < 0) {  // the final completion of a cancelled operation
            op.in_backend = false;
            if (!op.waiter) delete &op;
            return;
        }
        if (op.waiter) op.waiter->on_ready(result);
    }
};

FdReadyAwaiter::~FdReadyAwaiter() {
    withdraw();
    if (!op_) return;
    if (op_->in_backend) {
        op_->waiter = nullptr;  // its final completion frees it
    } else {
        delete op_;
    }
}

void FdReadyAwaiter::await_suspend(std::coroutine_handle<> h) {
    loop_->check_closed();
    Backend& backend = loop_->backend();
    op_ = new FdWaitOp;
    op_->kind = OpKind::poll;
    op_->fd = fd_;
    op_->poll_events = events_;
    op_->file_token = file_token_;
    op_->complete = &FdWaitOp::complete_op;
    op_->waiter = this;
    try {
        backend.submit(*op_);
    } catch (...) {
        delete std::exchange(op_, nullptr);
        throw;
    }
    op_->in_backend = true;
    task_ = &suspend_current_task(h, this);
    // The loop keeps a waiting task alive, as it does a sleeping one.
    keep_alive_ = Ref<FutureStateBase>(&task_->future_state());
}

std::uint32_t FdReadyAwaiter::await_resume() {
    keep_alive_.reset();
    if (cancelled_) throw CancelledError(std::move(cancel_message_));
    raise_if_cancel_requested();
    return ready_;
}

void FdReadyAwaiter::on_ready(int events) noexcept {
    if (woken_) return;
    woken_ = true;
    ready_ = static_cast<std::uint32_t>(events);
    withdraw();  // one-shot
    loop_->schedule_task_step(*task_);
}

bool FdReadyAwaiter::cancel_wait(const std::string& msg) {
    if (woken_) return false;
    woken_ = true;
    cancelled_ = true;
    cancel_message_ = msg;
    withdraw();
    loop_->schedule_task_step(*task_);
    return true;
}

void FdReadyAwaiter::withdraw() noexcept {
    if (!op_ || !op_->in_backend) return;
    if (loop_->backend().cancel(*op_)) op_->in_backend = false;
}

FdReadyAwaiter wait_readable(EventLoop& loop, int fd, std::uint32_t file_token) noexcept {
    return FdReadyAwaiter(loop, fd, kPollIn, file_token);
}
FdReadyAwaiter wait_writable(EventLoop& loop, int fd, std::uint32_t file_token) noexcept {
    return FdReadyAwaiter(loop, fd, kPollOut, file_token);
}

}  // namespace tulip::asyncio::detail
