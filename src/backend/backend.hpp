// The backend contract: operations with completions.
//
// Readiness backends (epoll, poll, select) and completion backends (io_uring) sit behind this
// one interface, in the manner of seastar's reactor_backend: the loop submits an Operation, and
// the backend calls op.complete(op, result) from inside wait() when the operation is done. A
// completion callback only records the result and schedules work on the loop; it never runs
// user code, so a backend can deliver a batch without caring what the callbacks do.
//
// Operations: poll (fd readiness, multishot: it completes on every wait() in which the fd is
// ready, level-triggered, until cancelled), which add_reader/add_writer and the signal pipe use;
// and the socket operations recv, send, accept, connect, recvmsg, sendmsg, which a readiness
// backend performs by trying the syscall and waiting for readiness only on EAGAIN, and a
// completion backend submits. See docs/backends.md for the table of what each backend does.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace tulip::asyncio::detail {

enum class OpKind : std::uint8_t {
    poll,     // readiness of fd (poll_events); result: kPoll* bits
    recv,     // into buf/len, or into a provided buffer (kProvidedBuffer); result: bytes, 0 at EOF
    send,     // sendmsg(msg) with MSG_NOSIGNAL (vectored; msg_name unused); result: bytes, maybe fewer
    accept,   // result: the new fd (non-blocking, close-on-exec); address into addr/addrlen
    connect,  // to addr/addrlen; result: 0
    recvmsg,  // recvmsg(msg): datagrams, the sender into msg_name/msg_namelen; result: bytes
    sendmsg,  // sendmsg(msg) with MSG_NOSIGNAL: datagrams to msg_name; result: bytes
};

// Operation::flags.
// Completes once per message until cancelled, an error, or EOF (recv, accept). op.more says
// whether more completions follow; the last one has more == false and releases the operation.
inline constexpr std::uint8_t kMultishot = 1;
// recv only, with kMultishot: read into a buffer of the backend's pool (set_buffer_pool), so
// that an idle connection holds none. The completion names it in op.buffer_id; the bytes start
// at provided_buffer(id) + op.buffer_offset (a backend may hand out one buffer in consecutive
// slices, to one connection or several); the consumer hands each completion's slice back with
// one give_back(id). When the pool is empty, reads wait (nothing is dropped or reordered) until
// buffers come back.
inline constexpr std::uint8_t kProvidedBuffer = 2;

// Poll events, as poll(2)'s bits so every backend can translate them.
inline constexpr std::uint32_t kPollIn = 0x001;   // POLLIN
inline constexpr std::uint32_t kPollOut = 0x004;  // POLLOUT
inline constexpr std::uint32_t kPollErr = 0x008;  // POLLERR
inline constexpr std::uint32_t kPollHup = 0x010;  // POLLHUP

// One operation. The owner fills the inputs, keeps every buffer, iovec and address it points to
// alive and unchanged until the operation is released, and may submit it again after that: an
// operation costs no allocation in the backend.
struct Operation {
    // result: for poll, the ready events (kPoll* bits); for others, bytes, an fd, 0, or -errno.
    using Complete = void (*)(Operation& op, int result) noexcept;

    OpKind kind = OpKind::poll;
    std::uint8_t flags = 0;  // kMultishot, kProvidedBuffer
    int fd = -1;
    Complete complete = nullptr;
    std::uint32_t poll_events = 0;  // poll: what to watch for
    // poll, optional: nonzero when the owner's syscall has just failed with EAGAIN (so the next
    // edge is what it waits for) and this number names the open file behind fd (the same for
    // every wait on that file, another for a new file that reuses the number). A backend may
    // then wait for an edge and keep the fd registered between such waits (epoll does).
    std::uint32_t file_token = 0;

    void* buf = nullptr;         // recv: where to read (unless kProvidedBuffer)
    std::size_t len = 0;         // recv: how much at most
    msghdr msg{};                // send, recvmsg, sendmsg: iovecs and, for datagrams, the address
    sockaddr* addr = nullptr;    // accept (out, may be null), connect (in)
    socklen_t addrlen = 0;       // accept: capacity in, length out; connect: length

    // Set by the backend before each completion.
    bool more = false;           // another completion of this operation follows (multishot)
    std::uint16_t buffer_id = 0; // kProvidedBuffer: the buffer holding the bytes (result > 0)
    std::uint32_t buffer_offset = 0;  // ... and where in it they start (0 on readiness backends)

    // The backend's own state for the operation (in flight, cancelling, ...); zero when idle.
    std::uint32_t backend_state = 0;
    Operation* backend_next = nullptr;  // the backend's intrusive queues
};

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string_view name() const noexcept = 0;
    // True when the socket operations are the kernel's own (a completion backend): transports
    // then read and send through them. A readiness backend emulates them with a syscall after a
    // readiness event, which a transport does more cheaply itself (fd watch, syscall first).
    virtual bool native_socket_ops() const noexcept { return false; }

    // Starts op. It must stay at the same address until released: by its last completion
    // (more == false), or by cancel() returning true. Completions come only from wait() (and from
    // the destructor: an operation still held then completes with -ECANCELED). An fd is driven
    // either by poll operations or by socket operations, not both at once.
    virtual void submit(Operation& op) = 0;
    // Stops op. Returns true when the backend let go of it at once (no completion will follow);
    // false when a final completion is still to come: -ECANCELED, or the real result when the
    // operation finished first (bytes received are then delivered, never lost). For poll the
    // final result is always -ECANCELED.
    virtual bool cancel(Operation& op) noexcept = 0;

    // Waits for completions for up to timeout_ns (-1: no limit; 0: just look) and delivers them.
    // Returns early when wakeup() is called.
    virtual void wait(std::int64_t timeout_ns) = 0;
    // Thread-safe and async-signal-safe: makes a wait() in progress (or the next one) return.
    virtual void wakeup() noexcept = 0;

    // Operations submitted and not yet released.
    virtual std::size_t pending_ops() const noexcept = 0;

    // Sizes the pool of provided buffers: `count` (a power of two, at most 32768) buffers of
    // `size` bytes. Before the first kProvidedBuffer recv, which otherwise makes the default
    // pool (kDefaultBufferCount x kDefaultBufferSize). Throws ValueError or RuntimeError (a pool
    // already exists).
    virtual void set_buffer_pool(std::uint32_t count, std::uint32_t size) = 0;
    // The memory of a provided buffer named by a completion, and its size.
    virtual std::byte* provided_buffer(std::uint16_t id) noexcept = 0;
    virtual std::uint32_t provided_buffer_size() const noexcept = 0;
    // Hands a provided buffer's slice back to the pool once its bytes are consumed: once per
    // completion that named the buffer.
    virtual void give_back(std::uint16_t id) noexcept = 0;

    // The owner is about to close fd, whose operations are all released: forget what the
    // backend keeps for it (a readiness backend keeps the fd registered for its whole life).
    // Required before closing an fd that socket operations used, since the number is reused.
    virtual void forget(int fd) noexcept = 0;

    static constexpr std::uint32_t kDefaultBufferCount = 128;
    static constexpr std::uint32_t kDefaultBufferSize = 32768;
};

// `requested` is "epoll", "io_uring", "poll", "select", or empty for TULIP_BACKEND and then the
// best one this machine has. Throws RuntimeError for a name this build does not know.
std::unique_ptr<Backend> make_backend(std::string_view requested);

std::unique_ptr<Backend> make_epoll_backend();
std::unique_ptr<Backend> make_poll_backend();
std::unique_ptr<Backend> make_select_backend();
// Null (with the reason in `why`) when the kernel refuses io_uring. `incremental_buffers` false
// keeps provided buffers consumed whole even where the kernel could do better (tests of the
// fallback for kernels before 6.12).
std::unique_ptr<Backend> make_io_uring_backend(std::string& why, bool incremental_buffers = true);

}  // namespace tulip::asyncio::detail
