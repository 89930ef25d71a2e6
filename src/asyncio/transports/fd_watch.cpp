#include "fd_watch.hpp"

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

FdWatch* FdWatch::create(EventLoop& loop, int fd, FdWatchOwner& owner) { return new FdWatch(loop, fd, owner); }

FdWatch::FdWatch(EventLoop& loop, int fd, FdWatchOwner& owner)
    : loop_(loop), owner_(&owner) {
    for (Direction* d : {&read_, &write_}) {
        d->kind = OpKind::poll;
        d->fd = fd;
        d->complete = &FdWatch::on_complete;
        d->watch = this;
    }
    read_.poll_events = kPollIn;
    write_.poll_events = kPollOut;
}

FdWatch::~FdWatch() = default;

void FdWatch::set_interest(Direction& d, bool on) {
    if (d.wanted == on) return;
    d.wanted = on;
    if (!on) {
        stop(d);
        return;
    }
    // A completion backend still finishing the last cancellation: on_complete resubmits.
    if (d.in_backend) return;
    try {
        loop_.backend().submit(d);
    } catch (...) {
        d.wanted = false;
        throw;
    }
    d.in_backend = true;
}

void FdWatch::stop(Direction& d) noexcept {
    if (d.in_backend && loop_.backend().cancel(d)) d.in_backend = false;
}

void FdWatch::release() noexcept {
    owner_ = nullptr;
    read_.wanted = write_.wanted = false;
    stop(read_);
    stop(write_);
    if (releasable()) delete this;
}

void FdWatch::on_complete(Operation& op, int result) noexcept {
    auto& d = static_cast<Direction&>(op);
    FdWatch& w = *d.watch;
    if (result < 0) {  // the final completion of a cancelled operation
        d.in_backend = false;
        if (w.releasable()) {
            delete &w;
        } else if (d.wanted && w.owner_) {
            // Interest came back while the cancellation was in flight.
            try {
                w.loop_.backend().submit(d);
                d.in_backend = true;
            } catch (...) {
                // Report it as an error on the fd; the owner's next syscall says what it is.
                w.note(kPollErr);
            }
        }
        return;
    }
    if (d.wanted && w.owner_) w.note(static_cast<std::uint32_t>(result));
}

void FdWatch::note(std::uint32_t events) noexcept {
    pending_ |= events;
    if (!queued_) {
        queued_ = true;
        loop_.schedule_fd_watch(*this);
    }
}

void FdWatch::dispatch() {
    queued_ = false;
    if (!owner_) {
        if (releasable()) delete this;
        return;
    }
    std::uint32_t events = pending_;
    pending_ = 0;
    // Last: the owner may release (and so free) the watch.
    if (events) owner_->on_fd_events(events);
}

void FdWatch::drop_queued() noexcept {
    queued_ = false;
    pending_ = 0;
    if (releasable()) delete this;
}

}  // namespace tulip::asyncio::detail
