#include "datagram_ops.hpp"

#include <netinet/in.h>

#include <cerrno>
#include <utility>

#include "loop_resources.hpp"
#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

namespace {

// The largest UDP payload is 65,507 bytes over IPv4 and 65,527 over IPv6 (without jumbograms):
// a 64 KiB buffer never truncates one.
constexpr std::size_t kUdpReceiveBuffer = 64 * 1024;

// Direct reads after a completion: at most this many (with the completed one, the readiness
// path's batch of 32), and after a direct read found nothing, this many completions skip them.
constexpr int kMaxDirectReads = 31;
constexpr int kCompletionsBetweenProbes = 8;

}  // namespace

DatagramOps* DatagramOps::create(EventLoop& loop, int fd, int family, DatagramOpsOwner& owner) {
    return new DatagramOps(loop, fd, family, owner);
}

std::size_t DatagramOps::receive_buffer_size(int family) noexcept {
    return family == AF_INET || family == AF_INET6 ? kUdpReceiveBuffer : LoopResources::kReadBufferSize;
}

DatagramOps::DatagramOps(EventLoop& loop, int fd, int family, DatagramOpsOwner& owner)
    : NativeOps(loop, owner, "datagram transport I/O"), buffer_size_(receive_buffer_size(family)) {
    init(recv_, OpKind::recvmsg, fd, &DatagramOps::on_recv_complete);
    init(send_, OpKind::sendmsg, fd, &DatagramOps::on_send_complete);
}

DatagramOps::~DatagramOps() { delete[] buffer_; }

// --- receiving --------------------------------------------------------------------------------

void DatagramOps::want_read(bool on) {
    if (read_wanted_ == on) return;
    read_wanted_ = on;
    if (!on) {
        // A datagram that completes before the cancellation is held (on_recv_complete).
        cancel(recv_);
        return;
    }
    if (held_) schedule();  // hand it over first; the dispatch arms the next recv
    else if (can_arm()) submit_recv();
    // else: a cancellation is still in flight; its final completion arms again or holds.
}

void DatagramOps::submit_recv() {
    if (!buffer_) buffer_ = new std::byte[buffer_size_];
    recv_iov_ = {buffer_, buffer_size_};
    recv_.msg = {};
    recv_.msg.msg_iov = &recv_iov_;
    recv_.msg.msg_iovlen = 1;
    recv_.msg.msg_name = &from_;
    recv_.msg.msg_namelen = sizeof from_;
    submit(recv_, [this] { read_wanted_ = false; });
}

void DatagramOps::on_recv_complete(Operation& op, int result) noexcept {
    DatagramOps& d = completed(op);  // a one-shot operation: this is its final completion
    if (!d.owner_) {
        d.free_if_released();
        return;
    }
    if (result == -ECANCELED || result == -EAGAIN) {
        d.rearm();  // reading came back on while the cancellation was in flight
        return;
    }
    // A datagram (perhaps empty) or an error: held until it is handed over, even when reading
    // was turned off meanwhile.
    d.held_ = true;
    d.held_result_ = result;
    if (d.read_wanted_) d.schedule();
}

void DatagramOps::deliver_held() {
    held_ = false;
    if (held_result_ < 0) {
        owner_->on_receive_error(held_result_);
        return;
    }
    // msg_namelen: the sender's address length as the kernel wrote it (0 for an unbound peer).
    owner_->on_datagram({buffer_, static_cast<std::size_t>(held_result_)}, reinterpret_cast<const sockaddr*>(&from_),
                        recv_.msg.msg_namelen);
}

// A RECVMSG brings one datagram per loop iteration, where the readiness path reads a burst per
// event. So after a completion, while no RECVMSG is in flight (nothing can be reordered), the
// datagrams that queued up meanwhile are read with recvmsg() directly. The kernel does not say
// whether more are queued (IORING_CQE_F_SOCK_NONEMPTY is set for stream sockets only), so an
// endpoint that is not busy would pay a failing recvmsg() per datagram: after a direct read
// finds nothing, the next few completions do not try.
void DatagramOps::read_directly() {
    if (skip_direct_reads_ > 0) {
        --skip_direct_reads_;
        return;
    }
    // A recv armed from inside a callback (reading turned off and on) takes over: stop then.
    for (int i = 0; i < kMaxDirectReads && owner_ && read_wanted_ && !recv_.in_backend(); ++i) {
        msghdr msg{};
        iovec iov{buffer_, buffer_size_};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_name = &from_;
        msg.msg_namelen = sizeof from_;
        ssize_t n = ::recvmsg(recv_.fd, &msg, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (i == 0) skip_direct_reads_ = kCompletionsBetweenProbes;
            } else if (errno != EINTR) {
                owner_->on_receive_error(-errno);
            }
            return;
        }
        owner_->on_datagram({buffer_, static_cast<std::size_t>(n)}, reinterpret_cast<const sockaddr*>(&from_),
                            msg.msg_namelen);
    }
}

void DatagramOps::rearm() noexcept {
    if (!can_arm()) return;
    try {
        submit_recv();
    } catch (...) {
        // The backend refused the operation: the owner hears of it, and reading stops for good.
        recv_failed_ = true;
        held_ = true;
        held_result_ = -EIO;
        schedule();
    }
}

// --- sending ----------------------------------------------------------------------------------

void DatagramOps::send(std::vector<std::byte>&& data, const std::optional<socket::Address>& to) {
    if (sending()) throw RuntimeError("DatagramOps: send() while a send is in flight");
    send_.msg = {};
    if (to) {
        send_.msg.msg_namelen = to->to_sockaddr(to_);
        send_.msg.msg_name = &to_;
    }
    out_ = std::move(data);
    send_iov_ = {out_.data(), out_.size()};
    send_.msg.msg_iov = &send_iov_;
    send_.msg.msg_iovlen = 1;
    submit_send();
}

void DatagramOps::submit_send() {
    submit(send_, [this] { send_finished(); });
}

void DatagramOps::on_send_complete(Operation& op, int result) noexcept {
    DatagramOps& d = completed(op);
    if (!d.owner_ || d.send_cancelled_) {
        d.send_cancelled_ = false;
        d.send_finished();
        d.free_if_released();
        return;
    }
    if (result == -EAGAIN || result == -ENOBUFS) {
        // No room for now (ENOBUFS: the interface queue is full), as the readiness path treats
        // it: the same datagram again, still ahead of the others.
        try {
            d.submit_send();
            return;
        } catch (...) {
            result = -EIO;
        }
    }
    // The datagram is freed at the dispatch, so that the owner's write buffer size counts it
    // until the owner hears of it.
    d.send_result_ = result >= 0 ? 1 : result;
    d.schedule();
}

void DatagramOps::send_finished() noexcept {
    out_ = {};
    send_.msg = {};
}

void DatagramOps::cancel_send() noexcept {
    send_result_ = 0;
    cancel(send_);
    // The datagram stays until the final completion: the kernel may still be reading it.
    if (send_.in_backend()) send_cancelled_ = true;
    else send_finished();
}

// --- dispatch and release ---------------------------------------------------------------------

void DatagramOps::deliver() {
    if (int sent = std::exchange(send_result_, 0); sent != 0 && owner_) {
        send_finished();
        owner_->on_sent(sent > 0 ? 0 : sent);
    }
    // The owner may turn reading off or release from inside a call: check before each step.
    if (owner_ && read_wanted_ && held_) {
        const bool datagram = held_result_ >= 0;
        deliver_held();
        if (datagram) read_directly();
    }
    rearm();
}

void DatagramOps::release() noexcept {
    read_wanted_ = false;
    held_ = false;
    detach(recv_.fd, recv_, send_);
    if (!send_.in_backend()) send_finished();
    free_if_released();
}

}  // namespace tulip::asyncio::detail
