// The event loop (Python's asyncio/events.py and base_events.py): EventLoop, Handle,
// TimerHandle, the exception handler and the policy functions.
//
// One loop per thread. Everything here is for the loop's own thread except the three doors
// named in the design: call_soon_threadsafe, run_coroutine_threadsafe and run_in_executor.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tulip/asyncio/detail/handle_node.hpp"
#include "tulip/asyncio/detail/ref.hpp"
#include "tulip/asyncio/detail/ready_queue.hpp"
#include "tulip/asyncio/detail/task_core.hpp"
#include "tulip/asyncio/detail/timer_heap.hpp"
#include "tulip/asyncio/transports.hpp"
#include "tulip/socket.hpp"

namespace tulip::asyncio {

template <class T>
class Future;
template <class T>
class Task;
template <class T>
class Coro;

namespace detail {
class Backend;
class IoWatchers;
class ThreadPool;
class SignalDispatcher;
class LoopThreadsafeQueue;
class LoopResources;
}  // namespace detail

// A callback scheduled by call_soon(); cancel() stops it from running.
class Handle {
public:
    Handle() = default;
    explicit Handle(detail::Ref<detail::HandleNode> node) noexcept : node_(std::move(node)) {}

    void cancel() const noexcept {
        if (node_) node_->cancel();
    }
    bool cancelled() const noexcept { return !node_ || node_->cancelled(); }
    explicit operator bool() const noexcept { return static_cast<bool>(node_); }

    detail::HandleNode* node() const noexcept { return node_.get(); }

private:
    detail::Ref<detail::HandleNode> node_;
};

// A callback scheduled by call_later()/call_at().
class TimerHandle : public Handle {
public:
    TimerHandle() = default;
    using Handle::Handle;
    // The loop time (seconds, as loop.time()) at which it is scheduled.
    double when() const noexcept;
};

// What call_exception_handler() receives: Python's context dict, as a struct.
struct ExceptionContext {
    std::string message;
    std::exception_ptr exception;  // may be null
    std::optional<Handle> handle;  // the callback that raised, if any
    std::string future;            // "Task 'name'" / "Future", if one is involved
};

class Server;

// create_connection's keyword arguments (Python's family=, proto=, flags=, sock=, local_addr=).
struct ConnectionOptions {
    int family = 0;  // AF_UNSPEC: whatever getaddrinfo gives
    int proto = 0;
    int flags = 0;
    // An already connected stream socket to use instead of host and port (which must be empty).
    std::optional<socket::Socket> sock;
    // Bind the socket here before connecting (numeric address; port 0 for any).
    std::optional<socket::Address> local_addr;
    // Happy eyeballs (RFC 8305, Python 3.8): start the next address's attempt when the previous
    // one fails or after this many seconds, whichever comes first; the first to connect wins and
    // the others are cancelled. nullopt: one address after another (Python's default).
    std::optional<double> happy_eyeballs_delay;
    // Reorder the addresses alternating families, taking this many of the first family first.
    // nullopt: 1 when happy_eyeballs_delay is set, else no reordering (Python's interleave=None).
    std::optional<int> interleave;
};

// create_server's keyword arguments (Python's family=, flags=, sock=, backlog=, reuse_address=,
// reuse_port=, start_serving=).
struct ServerOptions {
    int family = 0;  // AF_UNSPEC: every family the host resolves to
    int flags = 0;   // added to AI_PASSIVE
    int backlog = 100;
    std::optional<bool> reuse_address;  // nullopt: true (Python's default on POSIX)
    bool reuse_port = false;
    bool start_serving = true;
    // An already bound stream socket to serve on instead of host and port.
    std::optional<socket::Socket> sock;
};

// create_datagram_endpoint's keyword arguments (Python's local_addr=, remote_addr=, family=,
// proto=, flags=, reuse_port=, allow_broadcast=, sock=).
struct DatagramOptions {
    // (host, port) to bind to / connect to; hosts are resolved (port 0 to bind: any free port).
    std::optional<std::pair<std::string, int>> local_addr;
    std::optional<std::pair<std::string, int>> remote_addr;
    // Unix datagram sockets (family AF_UNIX): the path to bind to / connect to; a name starting
    // with '\0' is abstract. A stale socket file at local_path is removed first, as Python does.
    std::optional<std::string> local_path;
    std::optional<std::string> remote_path;
    int family = 0;  // AF_UNSPEC: whatever the addresses resolve to
    int proto = 0;
    int flags = 0;
    bool reuse_port = false;       // SO_REUSEPORT
    bool allow_broadcast = false;  // SO_BROADCAST
    // An already made datagram socket (bound or connected as wanted) to use instead; nothing else
    // may then be given.
    std::optional<socket::Socket> sock;
};

// The protocol type P of a factory returning std::shared_ptr<P>.
template <class F>
using protocol_of_t = typename std::invoke_result_t<F&>::element_type;

class EventLoop;
using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

// The pool of read buffers that a completion backend (io_uring) lends to the connections of a
// loop as data arrives, so that an idle connection holds none: `count` buffers (a power of two,
// at most 32768) of `size` bytes, allocated when the loop is made. When the pool runs dry, reads
// wait for buffers to come back; nothing is dropped. The readiness backends read into one
// shared buffer instead and ignore it.
// A pool given here is used as given, on every kernel.
struct ReadBufferPool {
    std::uint32_t count = 128;
    std::uint32_t size = 32768;
};

struct LoopOptions {
    // "epoll", "io_uring", "poll", "select", or empty for TULIP_BACKEND, then the best available:
    // io_uring when the kernel has what its transports use (Linux 6.0), else epoll. A refused
    // io_uring (old kernel, seccomp, io_uring_disabled) falls back to epoll, logged once.
    std::string backend;
    // Testing only: when set, each iteration runs its ready callbacks and task steps in an order
    // drawn from this seed instead of FIFO (as seastar's task-queue shuffle does), to show that
    // code does not depend on one interleaving. Breaks asyncio's FIFO rule by design.
    std::optional<std::uint64_t> shuffle_seed;
    // Testing only: time() starts at 0 and jumps straight to the next timer's deadline whenever
    // the loop would otherwise block on it (CPython's test loop does the same), so timeout logic
    // can be tested exactly and at once. I/O is still polled, without blocking.
    bool virtual_clock = false;
    // Unset: 4 MiB, allocated at the first read: 32 x 128 KiB where the kernel consumes buffers
    // incrementally (Linux 6.12), else 128 x 32 KiB (see ReadBufferPool, docs/backends.md).
    std::optional<ReadBufferPool> read_buffer_pool;
};

// Counters that tests use to prove that nothing was left behind (reliability check 2).
struct LoopStats {
    std::size_t ready = 0;           // callbacks and task steps in the ready queue
    std::size_t timers = 0;          // entries in the timer heap (cancelled ones included)
    std::size_t io_watchers = 0;     // add_reader/add_writer registrations
    std::size_t pending_ops = 0;     // operations the backend still holds
    std::size_t live_tasks = 0;      // tasks not yet done
};

class EventLoop {
public:
    EventLoop();
    explicit EventLoop(LoopOptions options);
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;
    // Closes the loop if it is not closed yet.
    ~EventLoop();

    // --- running and stopping -----------------------------------------------------------
    void run_forever();
    // Runs until the future (or the task made from the coroutine) is done; returns its result
    // or rethrows its exception. The task made from a coroutine is nobody else's, so its result
    // is moved out (a move-only T works); a future's is copied when T is copyable, since others
    // may read it too, and moved out otherwise, as co_await does.
    template <class T>
    T run_until_complete(Future<T> future);
    template <class T>
    T run_until_complete(Coro<T> coro);
    void stop() noexcept { stopping_ = true; }
    bool is_running() const noexcept { return running_; }
    bool is_closed() const noexcept { return closed_; }
    // Drops everything still scheduled, joins the default executor and releases the backend.
    // Raises RuntimeError on a running loop; a second call does nothing.
    void close();

    // --- time -----------------------------------------------------------------------------
    // The loop's monotonic clock, in seconds.
    double time() const noexcept;
    // The same clock in nanoseconds (virtual when LoopOptions::virtual_clock is set).
    std::int64_t now_ns() const noexcept;

    // --- callbacks ------------------------------------------------------------------------
    template <class F, class... A>
    Handle call_soon(F&& fn, A&&... args) {
        return Handle(schedule_ready(bind(std::forward<F>(fn), std::forward<A>(args)...)));
    }
    // The one call_soon that another thread may make: wakes the loop up.
    template <class F, class... A>
    Handle call_soon_threadsafe(F&& fn, A&&... args) {
        return Handle(schedule_threadsafe(bind(std::forward<F>(fn), std::forward<A>(args)...)));
    }
    template <class Rep, class Period, class F, class... A>
    TimerHandle call_later(std::chrono::duration<Rep, Period> delay, F&& fn, A&&... args) {
        return TimerHandle(schedule_timer(
            deadline_after(std::chrono::duration_cast<std::chrono::duration<double>>(delay).count()),
            bind(std::forward<F>(fn), std::forward<A>(args)...)));
    }
    // delay in seconds, as Python's call_later(delay, ...)
    template <class F, class... A>
    TimerHandle call_later(double delay, F&& fn, A&&... args) {
        return TimerHandle(
            schedule_timer(deadline_after(delay), bind(std::forward<F>(fn), std::forward<A>(args)...)));
    }
    // when in loop time (seconds), as Python's call_at(when, ...)
    template <class F, class... A>
    TimerHandle call_at(double when, F&& fn, A&&... args) {
        return TimerHandle(
            schedule_timer(deadline_at(when), bind(std::forward<F>(fn), std::forward<A>(args)...)));
    }

    // --- futures and tasks ----------------------------------------------------------------
    template <class T = void>
    Future<T> create_future();
    template <class T>
    Task<T> create_task(Coro<T> coro, std::string name = {});

    // --- errors ---------------------------------------------------------------------------
    void set_exception_handler(ExceptionHandler handler) { exception_handler_ = std::move(handler); }
    const ExceptionHandler& get_exception_handler() const noexcept { return exception_handler_; }
    // Logs the context through the "tulip" spdlog logger.
    void default_exception_handler(const ExceptionContext& context);
    // Calls the custom handler (falling back to the default one if it throws) or the default.
    void call_exception_handler(const ExceptionContext& context) noexcept;

    // --- debug ----------------------------------------------------------------------------
    bool get_debug() const noexcept { return debug_; }
    void set_debug(bool enabled) noexcept { debug_ = enabled; }
    // In debug mode a callback or task step that runs longer than this is logged.
    double slow_callback_duration = 0.1;

    // --- threads --------------------------------------------------------------------------
    // Runs fn() on the loop's default thread pool; the returned future gets its result.
    // Cancelling the future does not stop fn (Python's behaviour too).
    template <class F>
    auto run_in_executor(F&& fn) -> Future<std::invoke_result_t<std::decay_t<F>&>>;
    // Waits for the default executor's threads to finish their work and joins them.
    void shutdown_default_executor();

    // --- file descriptors -----------------------------------------------------------------
    // Python's add_reader: fn runs on every iteration in which fd is readable, until
    // remove_reader(fd). A second add_reader on the same fd replaces the first.
    template <class F>
    void add_reader(int fd, F&& fn) {
        watch_fd(fd, /*write=*/false, detail::make_handle_node(std::forward<F>(fn)));
    }
    template <class F>
    void add_writer(int fd, F&& fn) {
        watch_fd(fd, /*write=*/true, detail::make_handle_node(std::forward<F>(fn)));
    }
    // True if fd was being watched. After close() both return false.
    bool remove_reader(int fd);
    bool remove_writer(int fd);

    // --- UNIX signals ---------------------------------------------------------------------
    // fn runs on the loop (never inside the C signal handler) after sig arrives. Replaces an
    // earlier handler for sig. One loop at a time may own a given signal.
    template <class F>
    void add_signal_handler(int sig, F&& fn) {
        watch_signal(sig, detail::make_handle_node(std::forward<F>(fn)));
    }
    bool remove_signal_handler(int sig);

    // --- socket operations (Python's loop.sock_*) -------------------------------------------
    // The socket must be in non-blocking mode (setblocking(false)), else ValueError: a blocking
    // call would stall every task of the loop. Each tries the call at once and waits for
    // readiness only when it would block. A cancelled operation leaves the socket usable and
    // no operation in the backend (a cancelled sock_sendall may have sent a part); epoll may
    // keep the fd in its set until an event or the socket's close (docs/backends.md).
    Coro<std::string> sock_recv(socket::Socket& sock, std::size_t nbytes);
    Coro<std::size_t> sock_recv_into(socket::Socket& sock, std::span<std::byte> buf);
    Coro<std::pair<std::string, socket::Address>> sock_recvfrom(socket::Socket& sock, std::size_t bufsize);
    Coro<std::pair<std::size_t, socket::Address>> sock_recvfrom_into(socket::Socket& sock, std::span<std::byte> buf);
    Coro<void> sock_sendall(socket::Socket& sock, std::span<const std::byte> data);
    Coro<void> sock_sendall(socket::Socket& sock, std::string_view data);
    Coro<std::size_t> sock_sendto(socket::Socket& sock, std::string_view data, const socket::Address& address);
    Coro<void> sock_connect(socket::Socket& sock, const socket::Address& address);
    // The connection comes back non-blocking, as Python's does.
    Coro<std::pair<socket::Socket, socket::Address>> sock_accept(socket::Socket& sock);
    // Python's loop.sock_sendfile: sends the file open on file_fd from `offset`, `count` bytes
    // (nullopt: to the end of the file), with sendfile(2), waiting for writability whenever the
    // socket's buffer is full. Returns the bytes sent and leaves the file positioned just after
    // them (also after an error or a cancellation). Where sendfile(2) cannot be used (the file is
    // not a regular file, or the kernel refuses the pair), the file is read (on the default
    // executor if its fd is blocking) and sent with sock_sendall, or, with fallback = false,
    // SendfileNotAvailableError is raised. ValueError for a non-SOCK_STREAM socket and for
    // count 0 (Python's "count must be a positive integer").
    Coro<std::size_t> sock_sendfile(socket::Socket& sock, int file_fd, std::uint64_t offset = 0,
                                    std::optional<std::size_t> count = std::nullopt, bool fallback = true);

    // --- DNS (Python's loop.getaddrinfo / loop.getnameinfo) -----------------------------------
    // socket::getaddrinfo / getnameinfo run on the default executor, so the loop never blocks on
    // the resolver. Cancelling the awaiting task raises CancelledError at once; the lookup
    // already under way finishes on its thread and its result is dropped (as in Python).
    Coro<std::vector<socket::AddrInfo>> getaddrinfo(std::optional<std::string> host, int port, int family = 0,
                                                    int type = 0, int proto = 0, int flags = 0);
    Coro<std::pair<std::string, std::string>> getnameinfo(socket::Address address, int flags = 0);

    // --- transports and servers (Python's create_connection, create_server, ...) ---------------
    // Connects to each address host:port resolves to, in turn, until one accepts; then makes a
    // transport and the factory's protocol, and returns both once connection_made has run. When
    // every address fails, the one error, or an OSError naming them all, is thrown.
    template <class F>
    Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<protocol_of_t<F>>>> create_connection(
        F protocol_factory, std::optional<std::string> host, int port, ConnectionOptions options = {});
    // Listens on host:port (every address it resolves to; no host: every interface; port 0: a
    // free port) and makes a transport and a protocol for each connection.
    template <class F>
    Coro<std::shared_ptr<Server>> create_server(F protocol_factory, std::optional<std::string> host, int port,
                                                ServerOptions options = {});
    // Listens on several hosts at once.
    template <class F>
    Coro<std::shared_ptr<Server>> create_server(F protocol_factory, std::vector<std::string> hosts, int port,
                                                ServerOptions options = {});
    // Unix stream sockets: a path, or an abstract name starting with '\0'. The path is ignored
    // when options.sock is given (pass "").
    template <class F>
    Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<protocol_of_t<F>>>> create_unix_connection(
        F protocol_factory, std::string path, ConnectionOptions options = {});
    // A stale socket file at path is removed first, as Python does.
    template <class F>
    Coro<std::shared_ptr<Server>> create_unix_server(F protocol_factory, std::string path, ServerOptions options = {});
    // Wraps a connection accepted elsewhere (Python's connect_accepted_socket).
    template <class F>
    Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<protocol_of_t<F>>>> connect_accepted_socket(
        F protocol_factory, socket::Socket sock);
    // Pipes (Python's connect_read_pipe / connect_write_pipe): wraps the read or write end of a
    // pipe, a FIFO, a socket or a character device in a transport and the factory's protocol
    // (a Protocol; connection_made gets the transport as a Transport&, whose other half does not
    // work). The transport takes ownership of fd, as Python's takes the file object: it closes
    // it when the connection is lost or the loop closes. A regular file is refused with
    // ValueError("Pipe transport is for pipes/sockets only.") and then stays the caller's.
    template <class F>
    Coro<std::pair<std::shared_ptr<ReadTransport>, std::shared_ptr<protocol_of_t<F>>>> connect_read_pipe(
        F protocol_factory, int fd);
    template <class F>
    Coro<std::pair<std::shared_ptr<WriteTransport>, std::shared_ptr<protocol_of_t<F>>>> connect_write_pipe(
        F protocol_factory, int fd);

    // A datagram endpoint (UDP, or Unix datagram sockets): binds to options.local_addr and/or
    // connects to options.remote_addr (trying each address pair they resolve to, as Python does),
    // then returns the transport and the factory's DatagramProtocol once connection_made has run.
    template <class F>
    Coro<std::pair<std::shared_ptr<DatagramTransport>, std::shared_ptr<protocol_of_t<F>>>> create_datagram_endpoint(
        F protocol_factory, DatagramOptions options = {});

    using ProtocolFactory = std::function<std::shared_ptr<BaseProtocol>()>;
    using TransportAndProtocol = std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>;
    // The type-erased forms the templates above call.
    Coro<socket::Socket> open_connection_socket(std::optional<std::string> host, int port, ConnectionOptions options);
    Coro<socket::Socket> open_unix_connection_socket(std::string path, ConnectionOptions options);
    Coro<TransportAndProtocol> make_connection_transport(socket::Socket sock, ProtocolFactory factory);
    Coro<std::shared_ptr<Server>> create_server_impl(ProtocolFactory factory, std::vector<std::optional<std::string>> hosts,
                                                     int port, ServerOptions options);
    using DatagramTransportAndProtocol = std::pair<std::shared_ptr<DatagramTransport>, std::shared_ptr<BaseProtocol>>;
    Coro<DatagramTransportAndProtocol> create_datagram_endpoint_impl(ProtocolFactory factory, DatagramOptions options);
    Coro<std::shared_ptr<Server>> create_unix_server_impl(ProtocolFactory factory, std::string path,
                                                          ServerOptions options);
    Coro<std::pair<std::shared_ptr<ReadTransport>, std::shared_ptr<BaseProtocol>>> connect_read_pipe_impl(
        ProtocolFactory factory, int fd);
    Coro<std::pair<std::shared_ptr<WriteTransport>, std::shared_ptr<BaseProtocol>>> connect_write_pipe_impl(
        ProtocolFactory factory, int fd);

    // --- introspection --------------------------------------------------------------------
    // "epoll", "io_uring", "poll" or "select".
    std::string_view backend_name() const noexcept;
    LoopStats stats() const noexcept;

    // --- tulip's own machinery ------------------------------------------------------------
    // Takes a reference on the node and runs it on the next iteration.
    void schedule_handle(detail::HandleNode& node) {
        node.add_ref();
        ready_.push_handle(&node);
    }
    // Dispatches the watch's events on the next iteration (it stays alive while queued).
    void schedule_fd_watch(detail::FdWatch& watch) { ready_.push_fd_watch(&watch); }
    // Takes a reference on the task and steps it on the next iteration (no allocation).
    void schedule_task_step(detail::TaskCore& task);
    // The same, taking over a reference on the task's future that the caller holds (an awaiter
    // that kept its task alive while it waited hands its reference on).
    void schedule_task_step_adopt(detail::TaskCore& task) { ready_.push_task(&task); }
    void register_task(detail::TaskCore& task) noexcept;
    void unregister_task(detail::TaskCore& task) noexcept;
    detail::TaskCore* first_live_task() const noexcept { return live_tasks_; }
    // A timer handle was cancelled: it leaves the heap now, and the heap's reference with it.
    void remove_cancelled_timer(detail::HandleNode& node) noexcept;
    // Runs a job on the default thread pool (creating it on first use).
    void submit_to_executor(std::function<void()> job);
    // Raises RuntimeError("Event loop is closed") on a closed loop.
    void check_closed() const;
    // The backend, for tulip's own operations (it outlives close(), which drains it).
    detail::Backend& backend() const noexcept;
    // Open transports and servers (closed with the loop) and the shared read buffer.
    detail::LoopResources& resources() const noexcept { return *resources_; }

private:
    template <class F, class... A>
    static auto bind(F&& fn, A&&... args) {
        if constexpr (sizeof...(A) == 0) {
            return std::forward<F>(fn);
        } else {
            return [fn = std::forward<F>(fn), ... args = std::forward<A>(args)]() mutable {
                std::invoke(fn, args...);
            };
        }
    }
    template <class F>
    detail::Ref<detail::HandleNode> schedule_ready(F&& fn) {
        check_closed();
        detail::Ref<detail::HandleNode> node(detail::make_handle_node(std::forward<F>(fn)));
        node->add_ref();  // the queue's reference
        ready_.push_handle(node.get());
        return node;
    }
    template <class F>
    detail::Ref<detail::HandleNode> schedule_threadsafe(F&& fn) {
        return enqueue_threadsafe(detail::make_handle_node(std::forward<F>(fn)));
    }
    template <class F>
    detail::Ref<detail::HandleNode> schedule_timer(std::int64_t when_ns, F&& fn) {
        return push_timer(when_ns, detail::make_handle_node(std::forward<F>(fn)));
    }

    std::int64_t deadline_after(double delay_seconds) const noexcept;
    std::int64_t deadline_at(double when_seconds) const noexcept;
    detail::Ref<detail::HandleNode> push_timer(std::int64_t when_ns, detail::HandleNode* node);
    detail::Ref<detail::HandleNode> enqueue_threadsafe(detail::HandleNode* node);
    void watch_fd(int fd, bool write, detail::HandleNode* node);
    void watch_signal(int sig, detail::HandleNode* node);

    void run_once();
    std::int64_t compute_timeout_ns() const noexcept;
    void move_due_timers();
    void run_entry(detail::ReadyQueue::Entry entry);
    void run_handle(detail::HandleNode& node);
    void report_callback_exception(const std::string& what, detail::HandleNode* node) noexcept;
    void log_if_slow(std::int64_t started_ns, const char* what);
    void stop_when_done(detail::FutureStateBase& future);
    // run_until_complete's loop: runs until `future` is done, RuntimeError if stopped before.
    void run_until_done(detail::FutureStateBase& future);
    void release_everything_scheduled() noexcept;
    void destroy_pending_tasks() noexcept;
    void drain_cancelled_operations() noexcept;

    detail::ReadyQueue ready_;
    detail::TimerHeap timers_;
    detail::TaskCore* live_tasks_ = nullptr;
    std::size_t live_task_count_ = 0;

    std::unique_ptr<detail::Backend> backend_;
    std::unique_ptr<detail::LoopThreadsafeQueue> threadsafe_;
    std::unique_ptr<detail::IoWatchers> io_;
    std::unique_ptr<detail::LoopResources> resources_;
    std::unique_ptr<detail::SignalDispatcher> signals_;
    std::unique_ptr<detail::ThreadPool> executor_;
    std::uint64_t shuffle_state_ = 0;  // splitmix64 state; used only with a shuffle seed
    bool shuffle_ = false;
    bool virtual_clock_ = false;
    std::int64_t virtual_now_ns_ = 0;

    ExceptionHandler exception_handler_;
    bool running_ = false;
    bool stopping_ = false;
    bool closed_ = false;
    bool debug_ = false;
};

// --- policy functions (Python's asyncio.get_event_loop and friends) -------------------------

// The loop running in this thread; RuntimeError("no running event loop") if none.
EventLoop& get_running_loop();
// The running loop, else the loop set for this thread, else a new loop that the policy creates
// and owns for this thread.
EventLoop& get_event_loop();
// Sets (non-owning) or clears the current loop of this thread.
void set_event_loop(EventLoop* loop);
std::unique_ptr<EventLoop> new_event_loop();

// Python's AbstractEventLoopPolicy: decides what get_event_loop/new_event_loop return.
class EventLoopPolicy {
public:
    virtual ~EventLoopPolicy() = default;
    virtual EventLoop& get_event_loop();
    virtual void set_event_loop(EventLoop* loop);
    virtual std::unique_ptr<EventLoop> new_event_loop();
};
EventLoopPolicy& get_event_loop_policy();
// Installs a policy (null restores the default one). The policy must outlive its use.
void set_event_loop_policy(EventLoopPolicy* policy);

namespace detail {
// The loop running on this thread, or null.
EventLoop* running_loop() noexcept;
// True while the loop at this address exists (used by destructors that may outlive it).
bool loop_is_alive(const EventLoop* loop) noexcept;
}  // namespace detail

}  // namespace tulip::asyncio

// Template members need Future, Task and Coro.
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

namespace detail {
template <class P>
std::pair<std::shared_ptr<Transport>, std::shared_ptr<P>> typed_pair(EventLoop::TransportAndProtocol tp) {
    return {std::move(tp.first), std::static_pointer_cast<P>(std::move(tp.second))};
}
template <class F>
EventLoop::ProtocolFactory erase_factory(F factory) {
    static_assert(std::is_convertible_v<std::invoke_result_t<F&>, std::shared_ptr<BaseProtocol>>,
                  "the protocol factory must return std::shared_ptr<P> for a protocol class P");
    return [factory = std::move(factory)]() mutable -> std::shared_ptr<BaseProtocol> { return factory(); };
}
}  // namespace detail

template <class F>
Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<protocol_of_t<F>>>> EventLoop::create_connection(
    F protocol_factory, std::optional<std::string> host, int port, ConnectionOptions options) {
    ProtocolFactory factory = detail::erase_factory(std::move(protocol_factory));
    socket::Socket sock = co_await open_connection_socket(std::move(host), port, std::move(options));
    TransportAndProtocol tp = co_await make_connection_transport(std::move(sock), std::move(factory));
    co_return detail::typed_pair<protocol_of_t<F>>(std::move(tp));
}

template <class F>
Coro<std::shared_ptr<Server>> EventLoop::create_server(F protocol_factory, std::optional<std::string> host, int port,
                                                       ServerOptions options) {
    ProtocolFactory factory = detail::erase_factory(std::move(protocol_factory));
    std::vector<std::optional<std::string>> hosts;
    hosts.push_back(std::move(host));
    co_return co_await create_server_impl(std::move(factory), std::move(hosts), port, std::move(options));
}

template <class F>
Coro<std::shared_ptr<Server>> EventLoop::create_server(F protocol_factory, std::vector<std::string> hosts, int port,
                                                       ServerOptions options) {
    ProtocolFactory factory = detail::erase_factory(std::move(protocol_factory));
    std::vector<std::optional<std::string>> all(hosts.begin(), hosts.end());
    co_return co_await create_server_impl(std::move(factory), std::move(all), port, std::move(options));
}

template <class F>
Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<protocol_of_t<F>>>> EventLoop::create_unix_connection(
    F protocol_factory, std::string path, ConnectionOptions options) {
    ProtocolFactory factory = detail::erase_factory(std::move(protocol_factory));
    socket::Socket sock = co_await open_unix_connection_socket(std::move(path), std::move(options));
    TransportAndProtocol tp = co_await make_connection_transport(std::move(sock), std::move(factory));
    co_return detail::typed_pair<protocol_of_t<F>>(std::move(tp));
}

template <class F>
Coro<std::shared_ptr<Server>> EventLoop::create_unix_server(F protocol_factory, std::string path,
                                                            ServerOptions options) {
    ProtocolFactory factory = detail::erase_factory(std::move(protocol_factory));
    co_return co_await create_unix_server_impl(std::move(factory), std::move(path), std::move(options));
}

template <class F>
Coro<std::pair<std::shared_ptr<DatagramTransport>, std::shared_ptr<protocol_of_t<F>>>>
EventLoop::create_datagram_endpoint(F protocol_factory, DatagramOptions options) {
    static_assert(std::is_base_of_v<DatagramProtocol, protocol_of_t<F>>,
                  "create_datagram_endpoint: the factory must return std::shared_ptr<P> for a DatagramProtocol P");
    ProtocolFactory factory = detail::erase_factory(std::move(protocol_factory));
    DatagramTransportAndProtocol tp = co_await create_datagram_endpoint_impl(std::move(factory), std::move(options));
    co_return std::pair<std::shared_ptr<DatagramTransport>, std::shared_ptr<protocol_of_t<F>>>(
        std::move(tp.first), std::static_pointer_cast<protocol_of_t<F>>(std::move(tp.second)));
}

template <class F>
Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<protocol_of_t<F>>>> EventLoop::connect_accepted_socket(
    F protocol_factory, socket::Socket sock) {
    ProtocolFactory factory = detail::erase_factory(std::move(protocol_factory));
    TransportAndProtocol tp = co_await make_connection_transport(std::move(sock), std::move(factory));
    co_return detail::typed_pair<protocol_of_t<F>>(std::move(tp));
}

template <class F>
Coro<std::pair<std::shared_ptr<ReadTransport>, std::shared_ptr<protocol_of_t<F>>>> EventLoop::connect_read_pipe(
    F protocol_factory, int fd) {
    ProtocolFactory factory = detail::erase_factory(std::move(protocol_factory));
    auto tp = co_await connect_read_pipe_impl(std::move(factory), fd);
    co_return std::pair(std::move(tp.first), std::static_pointer_cast<protocol_of_t<F>>(std::move(tp.second)));
}

template <class F>
Coro<std::pair<std::shared_ptr<WriteTransport>, std::shared_ptr<protocol_of_t<F>>>> EventLoop::connect_write_pipe(
    F protocol_factory, int fd) {
    ProtocolFactory factory = detail::erase_factory(std::move(protocol_factory));
    auto tp = co_await connect_write_pipe_impl(std::move(factory), fd);
    co_return std::pair(std::move(tp.first), std::static_pointer_cast<protocol_of_t<F>>(std::move(tp.second)));
}

}  // namespace tulip::asyncio
