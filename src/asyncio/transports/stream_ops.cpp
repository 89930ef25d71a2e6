#include "stream_ops.hpp"

#include <cerrno>
#include <utility>

#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

StreamOps* StreamOps::create(EventLoop& loop, int fd, StreamOpsOwner& owner) { return new StreamOps(loop, fd, owner); }

StreamOps::StreamOps(EventLoop& loop, int fd, StreamOpsOwner& owner)
    : NativeOps(loop, owner, "transport I/O") {
    init(recv_, OpKind::recv, fd, &StreamOps::on_recv_complete, kMultishot | kProvidedBuffer);
    init(send_, OpKind::send, fd, &StreamOps::on_send_complete);
}

StreamOps::~StreamOps() {
    give_back_queued();
    send_finished();
}

// --- reading ----------------------------------------------------------------------------------

void StreamOps::want_read(bool on) {
    if (read_wanted_ == on) return;
    read_wanted_ = on;
    if (!on) {
        cancel(recv_);
        park_queued();
        return;
    }
    if (!parked_.empty() || received_head_ < received_.size() || end_pending_) schedule();  // what waited meanwhile
    if (!recv_.in_backend() && !read_ended_) submit_recv();
    // else: a cancellation is still in flight; its final completion re-arms.
}

void StreamOps::submit_recv() {
    submit(recv_, [this] { read_wanted_ = false; });
}

void StreamOps::on_recv_complete(Operation& op, int result) noexcept {
    StreamOps& s = completed(op);
    if (!s.owner_) {  // released: hand buffers straight back
        if (result > 0) s.backend_.give_back(op.buffer_id);
        s.free_if_released();
        return;
    }
    if (result > 0) {
        s.queue_buffer(op.buffer_id, op.buffer_offset, static_cast<std::uint32_t>(result));
    } else if (result != -ECANCELED || op.more) {
        s.end_read(result);  // EOF or an error: the recv's last completion
    }
    // Reading came back on while the cancellation was in flight: arm again.
    if (!s.recv_.in_backend() && s.read_wanted_ && !s.read_ended_) {
        try {
            s.submit_recv();
        } catch (...) {
            s.end_read(-EIO);
        }
    }
}

void StreamOps::queue_buffer(std::uint16_t id, std::uint32_t offset, std::uint32_t bytes) noexcept {
    if (!read_wanted_) {
        try {
            park(id, offset, bytes);  // gives the buffer back, even when it throws
        } catch (...) {
            cancel(recv_);
            end_read(-ENOMEM);
        }
        return;
    }
    try {
        received_.push_back({offset, bytes, id});
    } catch (...) {
        // No memory to queue it: the read ends with an error and the buffer goes back.
        backend_.give_back(id);
        cancel(recv_);
        end_read(-ENOMEM);
        return;
    }
    if (read_wanted_) schedule();
}

void StreamOps::end_read(int result) noexcept {
    if (read_ended_) return;
    read_ended_ = true;
    end_result_ = result;
    end_pending_ = true;
    if (read_wanted_) schedule();
}

void StreamOps::deliver_received() {
    batching_ = received_.size() - received_head_ + parked_.size() > 1;
    while (owner_ && read_wanted_ && !parked_.empty()) {
        // Received while reading was off: before anything newer. If the owner turns reading off
        // again meanwhile, the queue below is parked anew, after these bytes.
        std::vector<std::byte> bytes = std::move(parked_.front());
        parked_.pop_front();
        owner_->on_received(bytes);
    }
    // The owner may turn reading off or release from inside a call: check before each item.
    while (owner_ && read_wanted_ && received_head_ < received_.size()) {
        Received item = received_[received_head_++];
        // Give the buffer back even if the owner throws (it never should: transports catch).
        struct GiveBack {
            Backend& backend;
            std::uint16_t id;
            ~GiveBack() { backend.give_back(id); }
        } give_back{backend_, item.buffer_id};
        owner_->on_received({backend_.provided_buffer(item.buffer_id) + item.offset, item.bytes});
    }
    if (std::exchange(batching_, false) && owner_) owner_->on_batch_end();
    if (received_head_ == received_.size()) {
        received_.clear();  // keeps its capacity: no allocation per message
        received_head_ = 0;
        if (owner_ && read_wanted_ && end_pending_ && parked_.empty()) {
            end_pending_ = false;
            owner_->on_read_end(end_result_);
        }
    }
}

void StreamOps::give_back_queued() noexcept {
    for (std::size_t i = received_head_; i < received_.size(); ++i) backend_.give_back(received_[i].buffer_id);
    received_.clear();
    received_head_ = 0;
}

// Copies a received slice into parked_ and gives the buffer back. Throws bad_alloc.
void StreamOps::park(std::uint16_t id, std::uint32_t offset, std::uint32_t bytes) {
    struct GiveBack {
        Backend& backend;
        std::uint16_t id;
        ~GiveBack() { backend.give_back(id); }
    } give_back{backend_, id};
    const std::byte* data = backend_.provided_buffer(id) + offset;
    parked_.emplace_back(data, data + bytes);
}

void StreamOps::park_queued() noexcept {
    try {
        while (received_head_ < received_.size()) {
            Received item = received_[received_head_++];
            park(item.buffer_id, item.offset, item.bytes);  // gives the buffer back, even when it throws
        }
    } catch (...) {
        // No memory to keep the bytes: the read ends with an error.
        give_back_queued();
        cancel(recv_);
        end_read(-ENOMEM);
    }
    received_.clear();
    received_head_ = 0;
}

// --- sending ----------------------------------------------------------------------------------

void StreamOps::send(WriteBuffer& pending) {
    if (pending.empty()) return;
    if (sending()) throw RuntimeError("StreamOps: send() while a send is in flight");
    in_flight_.take(pending);
    submit_send();
}

void StreamOps::submit_send() {
    if (!iov_) iov_ = static_cast<iovec*>(block_cache::allocate(kMaxIov * sizeof(iovec)));
    send_.msg.msg_iov = iov_;
    send_.msg.msg_iovlen = static_cast<std::size_t>(in_flight_.gather(iov_, kMaxIov));
    submit(send_);
}

void StreamOps::on_send_complete(Operation& op, int result) noexcept {
    StreamOps& s = completed(op);
    if (!s.owner_) {
        s.send_finished();
        s.free_if_released();
        return;
    }
    if (result < 0 || s.send_cancelled_) {
        bool cancelled = std::exchange(s.send_cancelled_, false);
        s.send_finished();
        if (result < 0 && !cancelled) {
            s.send_result_ = result;
            s.schedule();
        }
        return;
    }
    s.in_flight_.consume(static_cast<std::size_t>(result));
    if (!s.in_flight_.empty()) {  // a short send: the rest first, before anything newer
        try {
            s.submit_send();
        } catch (...) {
            s.send_finished();
            s.send_result_ = -EIO;
            s.schedule();
        }
        return;
    }
    s.send_finished();
    s.send_result_ = 1;
    s.schedule();
}

void StreamOps::send_finished() noexcept {
    in_flight_.clear();
    if (iov_) block_cache::deallocate(std::exchange(iov_, nullptr), kMaxIov * sizeof(iovec));
    send_.msg.msg_iov = nullptr;
    send_.msg.msg_iovlen = 0;
}

void StreamOps::cancel_send() noexcept {
    cancel(send_);
    // The chunks stay until the final completion: the kernel may still be reading them.
    if (send_.in_backend()) send_cancelled_ = true;
    else send_finished();
    send_result_ = 0;
}

// --- dispatch and release ---------------------------------------------------------------------

void StreamOps::deliver() {
    if (int sent = std::exchange(send_result_, 0); sent != 0 && owner_) owner_->on_sent(sent > 0 ? 0 : sent);
    if (owner_) deliver_received();
}

void StreamOps::release() noexcept {
    read_wanted_ = false;
    give_back_queued();
    detach(recv_.fd, recv_, send_);
    if (!send_.in_backend()) send_finished();
    free_if_released();
}

}  // namespace tulip::asyncio::detail
