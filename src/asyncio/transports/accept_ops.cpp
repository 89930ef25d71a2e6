#include "accept_ops.hpp"

#include <unistd.h>

#include <cerrno>

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

AcceptOps* AcceptOps::create(EventLoop& loop, int listen_fd, AcceptOpsOwner& owner) {
    return new AcceptOps(loop, listen_fd, owner);
}

AcceptOps::AcceptOps(EventLoop& loop, int listen_fd, AcceptOpsOwner& owner)
    : loop_(loop), backend_(loop.backend()), owner_(&owner), node_(new DispatchNode<AcceptOps>(this, "server accept")) {
    op_.kind = OpKind::accept;
    op_.flags = kMultishot;  // addresses are not asked for: the transport reads peername itself
    op_.fd = listen_fd;
    op_.complete = &AcceptOps::on_complete;
    op_.self = this;
}

AcceptOps::~AcceptOps() {
    node_->cancel();
    close_queued();
}

void AcceptOps::want_accept(bool on) {
    if (wanted_ == on) return;
    wanted_ = on;
    if (!on) {
        if (op_.in_backend && backend_.cancel(op_)) op_.in_backend = false;
        return;
    }
    if (head_ < accepted_.size()) schedule();
    if (!op_.in_backend) submit();
    // else: the cancellation is still in flight; its final completion arms again.
}

void AcceptOps::submit() {
    try {
        backend_.submit(op_);
    } catch (...) {
        wanted_ = false;
        throw;
    }
    op_.in_backend = true;
}

void AcceptOps::on_complete(Operation& op, int result) noexcept {
    auto& o = static_cast<Op&>(op);
    AcceptOps& a = *o.self;
    if (!op.more) o.in_backend = false;
    if (!a.owner_) {
        if (result >= 0) ::close(result);
        if (!o.in_backend) delete &a;
        return;
    }
    if (result >= 0) {
        a.queue(result);
    } else if (result != -ECANCELED) {
        a.wanted_ = false;  // the owner decides when to accept again
        a.queue(result);
    }
    if (!o.in_backend && a.wanted_) {
        try {
            a.submit();
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

void AcceptOps::schedule() noexcept {
    if (queued_) return;
    queued_ = true;
    loop_.schedule_handle(*node_);
}

void AcceptOps::dispatch() {
    queued_ = false;
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
    owner_ = nullptr;
    wanted_ = false;
    close_queued();
    if (op_.in_backend && backend_.cancel(op_)) op_.in_backend = false;
    backend_.forget(op_.fd);
    if (!op_.in_backend) delete this;
}

}  // namespace tulip::asyncio::detail
