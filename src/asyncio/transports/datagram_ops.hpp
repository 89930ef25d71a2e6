// The completion-backend I/O of a datagram transport: one RECVMSG in flight into a receive
// buffer the endpoint owns, re-armed after each datagram is handed over (and after reading the
// datagrams queued meanwhile with recvmsg(), while they keep coming), and one SENDMSG at a
// time for the datagrams sendto() could not send at once. Used on io_uring, where it replaces
// FdWatch's readiness events plus recvfrom/sendto (see docs/backends.md).
//
// As with StreamOps, a completion never runs the owner's code: it notes the datagram (or the
// error, or the finished send) and puts one reusable node on the loop's ready queue; the
// dispatch hands it to the owner. While reading is off the recv is cancelled; a datagram that
// completed before the cancellation took effect stays in the buffer and is handed over first
// when reading resumes, so nothing received is dropped or reordered. The next recv is armed only
// once the buffer was handed over.
//
// Memory: the receive buffer is allocated when reading first starts and kept until release:
// 64 KiB for UDP (the largest UDP payload, so nothing is ever truncated) and, for other
// families (Unix datagram sockets), LoopResources::kReadBufferSize (256 KiB), what the readiness
// path reads into. A send holds the one datagram in flight (its bytes and its address).
//
// Lifetime: heap-allocated apart from its owner. release() detaches the owner and cancels both
// operations; the object frees itself once the backend let go of them (EventLoop::close()
// drains those), so neither buffer is freed while the kernel may still use it.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "native_ops.hpp"
#include "tulip/socket.hpp"

namespace tulip::asyncio::detail {

class DatagramOpsOwner {
public:
    // One datagram and its sender (fromlen may be 0: an unbound Unix peer); valid during the
    // call only.
    virtual void on_datagram(std::span<const std::byte> data, const sockaddr* from, socklen_t fromlen) = 0;
    // The receive failed with -errno (ECONNREFUSED after an ICMP port unreachable, ...);
    // reading goes on.
    virtual void on_receive_error(int result) = 0;
    // The datagram passed to send() went out (0) or failed (-errno: it is dropped).
    virtual void on_sent(int result) = 0;

protected:
    ~DatagramOpsOwner() = default;
};

class DatagramOps : public NativeOps<DatagramOps, DatagramOpsOwner> {
public:
    // family: the socket's, which sizes the receive buffer.
    static DatagramOps* create(EventLoop& loop, int fd, int family, DatagramOpsOwner& owner);
    static std::size_t receive_buffer_size(int family) noexcept;

    // Reading on or off. On: hands over a datagram held meanwhile, then arms the recv. Off: no
    // delivery; the recv is cancelled. Throws what the backend throws on submit.
    void want_read(bool on);
    bool wants_read() const noexcept { return read_wanted_; }

    // Takes the datagram over and sends it to `to` (nullopt: the connected peer). One at a time:
    // RuntimeError while sending().
    void send(std::vector<std::byte>&& data, const std::optional<socket::Address>& to);
    // A send is in flight, or its result is not handed over yet.
    bool sending() const noexcept { return send_.in_backend() || send_result_ != 0; }
    // The bytes of the datagram in flight; 0 once cancel_send() dropped it.
    std::size_t bytes_in_flight() const noexcept { return send_cancelled_ ? 0 : out_.size(); }
    // abort(): the datagram in flight is dropped if the kernel has not taken it yet, and its
    // result is never reported. sending() stays true until the backend let go of the operation.
    void cancel_send() noexcept;

    // Detaches the owner, cancels both operations, forgets the fd in the backend, and frees
    // this (now, or at the backend's final completions). Call before closing the fd.
    void release() noexcept;

private:
    friend class NativeOps;

    DatagramOps(EventLoop& loop, int fd, int family, DatagramOpsOwner& owner);
    ~DatagramOps();

    bool can_arm() const noexcept { return owner_ && read_wanted_ && !recv_.in_backend() && !held_ && !recv_failed_; }
    void submit_recv();
    void submit_send();
    void send_finished() noexcept;  // frees the datagram in flight
    static void on_recv_complete(Operation& op, int result) noexcept;
    static void on_send_complete(Operation& op, int result) noexcept;
    void deliver();
    void deliver_held();
    void read_directly();
    void rearm() noexcept;

    Op recv_;
    Op send_;
    std::size_t buffer_size_;
    std::byte* buffer_ = nullptr;  // buffer_size_ bytes, from the first recv on
    iovec recv_iov_{};
    sockaddr_storage from_{};
    iovec send_iov_{};
    sockaddr_storage to_{};
    std::vector<std::byte> out_;  // the datagram in flight
    int held_result_ = 0;         // a finished recv not handed over: bytes, or -errno
    int send_result_ = 0;         // a finished send to report: 1 done, -errno failed, 0 none
    int skip_direct_reads_ = 0;   // completions left before read_directly() tries again
    bool held_ = false;
    bool recv_failed_ = false;    // the backend refused to arm the recv: reading is over
    bool read_wanted_ = false;
    bool send_cancelled_ = false;
};

}  // namespace tulip::asyncio::detail
