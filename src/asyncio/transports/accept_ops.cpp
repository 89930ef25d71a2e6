#include "accept_ops.hpp"

#include <unistd.h>

#include <cerrno>

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

AcceptOps* AcceptOps::create(EventLoop& loop, int listen_fd, AcceptOpsOwner& owner) {
    return new AcceptOps(loop, listen_fd, owner);
}

AcceptOps::AcceptOps(EventLoop& loop, int listen_fd, AcceptOpsOwner& owner)
    : NativeOps(loop, owner, "server accept") {
    // Addresses are not asked for: the transport reads peername itself.
    init(op_, OpKind::accept, listen_fd, &AcceptOps::on_complete, kMultishot);
}

AcceptOps::~AcceptOps() { close_queued(); }

void AcceptOps::want_accept(bool on) {
    if (wanted_ == on) return;
    wanted_ = on;
    if (!on) {
        cancel(op_);
        return;
    }
    if (head_ < accepted_.size()) schedule();
    if (!op_.in_backend()) arm();
    // else: the cancellation is still in flight; its final completion arms again.
}

void AcceptOps::arm() {
    submit(op_, [this] { wanted_ = false; });
}

void AcceptOps::on_complete(Operation& op, int result) noexcept {
    AcceptOps& a = completed(op);
    if (!a.owner_) {
        if (result >= 0) ::close(result);
        a.free_if_released();
        return;
    }
    if (result >= 0) {
        a.queue(result);
    } else if (result != -ECANCELED) {
        a.wanted_ = false;  // the owner decides when to accept again
        a.queue(result);
    }
    if (!a.op_.in_backend() && a.wanted_) {
        try {
            a.arm();
        } catch (...) {
            a.wanted_ = false;
            a.queue(-EIO);
        }
    }
}

void AcceptOps::queue(int fd_or_error) noexcept {
    try {
        accepted_.push_back(fd_or_error);
    } catch (...) {
        // No memory for one more queued connection: refuse it rather than lose track of it.
        if (fd_or_error >= 0) ::close(fd_or_error);
        return;
    }
    schedule();
}

void AcceptOps::deliver() {
    // An error is delivered even when accepting was turned off by it; connections wait for
    // accepting to be on. The owner may release from inside a call: check before each item.
    while (owner_ && head_ < accepted_.size() && (wanted_ || accepted_[head_] < 0))
        owner_->on_accepted(accepted_[head_++]);
    if (head_ == accepted_.size()) {
        accepted_.clear();
        head_ = 0;
    }
}

void AcceptOps::close_queued() noexcept {
    for (std::size_t i = head_; i < accepted_.size(); ++i)
        if (accepted_[i] >= 0) ::close(accepted_[i]);
    accepted_.clear();
    head_ = 0;
}

void AcceptOps::release() noexcept {
    wanted_ = false;
    close_queued();
    detach(op_.fd, op_);
    free_if_released();
}

}  // namespace tulip::asyncio::detail
