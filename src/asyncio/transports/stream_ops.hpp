// The completion-backend I/O of a stream transport: one multishot recv on the backend's provided
// buffers for the life of the connection, and one vectored send at a time. Used on io_uring,
// where it replaces FdWatch's readiness events plus syscalls (see docs/backends.md).
//
// As with FdWatch, a completion never runs the owner's code: it queues what arrived (bytes in a
// provided buffer, EOF, an error, a finished send) and puts one reusable node on the loop's ready
// queue; the dispatch hands the queue to the owner in order. While reading is off, what was
// received (a cancelled multishot recv may still deliver some) is copied out of the provided
// buffers, which go back to the pool at once: a paused connection pins none of the backend's
// buffers (which may be large and shared with other connections, docs/backends.md). The copy is
// handed over first when reading resumes: nothing received is dropped or reordered.
//
// Sends: the owner passes its pending bytes with send(); StreamOps takes the chunks over (so
// that an abort or a release cannot free memory the kernel still reads), resubmits the rest of a
// short send itself, and reports once everything passed to it went out (or failed).
//
// Lifetime: heap-allocated apart from its owner. release() detaches the owner and cancels both
// operations; the object frees itself once the backend let go of them (EventLoop::close()
// drains those).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "native_ops.hpp"
#include "write_buffer.hpp"

namespace tulip::asyncio::detail {

class StreamOpsOwner {
public:
    // Bytes received, valid during the call only.
    virtual void on_received(std::span<const std::byte> data) = 0;
    // The last on_received() of a batch of several ended (see batching()).
    virtual void on_batch_end() = 0;
    // The read side ended: 0 at EOF, or -errno.
    virtual void on_read_end(int result) = 0;
    // Everything passed to send() went out (result 0), or the send failed (-errno; the rest of
    // the bytes are dropped).
    virtual void on_sent(int result) = 0;

protected:
    ~StreamOpsOwner() = default;
};

class StreamOps : public NativeOps<StreamOps, StreamOpsOwner> {
public:
    static StreamOps* create(EventLoop& loop, int fd, StreamOpsOwner& owner);

    // Reading on or off. On: the recv is armed (once) and queued data is delivered. Off: no
    // delivery; the recv is cancelled so that no more buffers pile up. Throws what the backend
    // throws on submit.
    void want_read(bool on);
    bool wants_read() const noexcept { return read_wanted_; }
    // True while several received buffers are being handed over in a row: the owner may hold its
    // writes back until on_batch_end() and send them as one (a 64 KiB message arrives as
    // several buffers; one send per buffer would cost a syscall each).
    bool batching() const noexcept { return batching_; }

    // Takes every chunk of `pending` (which is left empty) and sends it; one send at a time.
    void send(WriteBuffer& pending);
    bool sending() const noexcept { return !in_flight_.empty(); }
    // What the kernel has yet to take; 0 once cancel_send() dropped it.
    std::size_t bytes_in_flight() const noexcept { return send_cancelled_ ? 0 : in_flight_.size(); }
    // abort(): stop the send; whatever the kernel has not taken is dropped. sending() stays true
    // until the backend let go of the operation.
    void cancel_send() noexcept;

    // Detaches the owner, cancels both operations, forgets the fd in the backend, and frees
    // this (now, or at the backend's final completions). Call before closing the fd.
    void release() noexcept;

private:
    // Bytes a completion left in a provided buffer, for the dispatch.
    struct Received {
        std::uint32_t offset;
        std::uint32_t bytes;
        std::uint16_t buffer_id;
    };
    friend class NativeOps;
    // Chunks coalesce up to 16 KiB, so 16 iovecs carry up to 256 KiB per send. They are taken
    // from the block cache only while a send is in flight: an idle connection keeps none.
    static constexpr int kMaxIov = 16;

    StreamOps(EventLoop& loop, int fd, StreamOpsOwner& owner);
    ~StreamOps();

    void submit_recv();
    void submit_send();
    void send_finished() noexcept;  // frees the chunks and the iovecs
    static void on_recv_complete(Operation& op, int result) noexcept;
    static void on_send_complete(Operation& op, int result) noexcept;
    void queue_buffer(std::uint16_t id, std::uint32_t offset, std::uint32_t bytes) noexcept;
    void end_read(int result) noexcept;
    void deliver();
    void deliver_received();
    void give_back_queued() noexcept;
    void park(std::uint16_t id, std::uint32_t offset, std::uint32_t bytes);
    void park_queued() noexcept;

    Op recv_;
    Op send_;
    iovec* iov_ = nullptr;            // kMaxIov of them while a send is in flight
    WriteBuffer in_flight_;           // what send() took over, until the kernel took it all
    std::vector<Received> received_;  // delivered from received_head_ on
    std::size_t received_head_ = 0;
    // Received while reading was off, one copy per read, handed over before received_ and one
    // at a time, as received_ is: an owner that pauses again after each gets them in pieces.
    std::deque<std::vector<std::byte>> parked_;
    int send_result_ = 0;             // a finished send to report: 1 done, -errno failed, 0 none
    bool read_wanted_ = false;
    bool read_ended_ = false;         // the recv reached its end (EOF or an error)
    bool end_pending_ = false;        // ... which the owner has not been told yet
    int end_result_ = 0;              // 0 (EOF) or -errno
    bool send_cancelled_ = false;
    bool batching_ = false;
};

}  // namespace tulip::asyncio::detail
