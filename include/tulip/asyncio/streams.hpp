// Streams (Python's asyncio/streams.py): StreamReader and StreamWriter, the high-level,
// coroutine-friendly way to use a connection, on top of protocols and transports.
//
//     auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", 8888);
//     writer.write("hello\n");
//     co_await writer.drain();
//     std::string line = co_await reader.readline();
//     writer.close();
//     co_await writer.wait_closed();
//
// `async for line in reader:` has no C++ keyword; write it as
//
//     while (auto line = co_await reader.anext()) use(*line);   // nullopt at EOF
//
// Handles and ownership. StreamReader and StreamWriter are cheap copyable handles to one shared
// stream each, as Python's are object references: copies see the same buffer and the same
// transport. Every coroutine they return (read, readline, drain, wait_closed, ...) holds its
// own reference to the stream, so a pending read or drain stays valid when the caller drops
// every handle. The references form this graph (an arrow owns what it points at):
//
//     StreamWriter --> transport, protocol, StreamReader
//     transport ----> protocol        (until connection_lost() has returned)
//     protocol -----> StreamReader
//
// so nothing points back at the writer, and there is no cycle once the connection is lost.
// Dropping any handle is always safe:
//   - the reader: the protocol keeps feeding its buffer (and pauses the transport once it
//     holds 2 x limit bytes);
//   - the protocol or the transport: the writer keeps them alive;
//   - the last copy of the writer: the transport is closed if it is still open (Python does the
//     same in StreamWriter.__del__). A server's client_connected_cb therefore keeps its
//     connection open as long as it holds its writer.
// The reader keeps only a plain pointer to the transport (for pause/resume_reading), which the
// protocol clears in connection_lost(): the transport is valid until then (protocols.hpp).
//
// Everything here is for the loop's thread, as the rest of asyncio.
#pragma once

#include <any>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tulip/asyncio/coro.hpp"
#include "tulip/asyncio/detail/direct_receiver.hpp"
#include "tulip/asyncio/detail/ref.hpp"
#include "tulip/asyncio/detail/task_core.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/exceptions.hpp"
#include "tulip/asyncio/locks.hpp"
#include "tulip/asyncio/protocols.hpp"
#include "tulip/asyncio/server.hpp"
#include "tulip/asyncio/transports.hpp"

namespace tulip::asyncio {

// Python's _DEFAULT_LIMIT: 64 KiB.
inline constexpr std::size_t stream_default_limit = 64 * 1024;

namespace detail {
class FutureStateBase;
class StreamReaderState;
struct StreamWriterState;

// The reference count of a stream's state, shared by its StreamReader handles, its protocol
// and its pending reads. Like every asyncio object they live on the loop's thread, so the count
// is a plain integer: a read costs no atomic operation.
class StreamReaderStateBase {
public:
    StreamReaderStateBase(const StreamReaderStateBase&) = delete;
    StreamReaderStateBase& operator=(const StreamReaderStateBase&) = delete;
    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) destroy();
    }

protected:
    StreamReaderStateBase() noexcept = default;
    ~StreamReaderStateBase() = default;

private:
    void destroy() noexcept;  // deletes the StreamReaderState
    std::uint32_t refs_ = 0;
};

// The one coroutine waiting for a StreamReader's data (Python's _wait_for_data waiter). It
// lives in the waiting frame and suspends its task directly, without a future: feed_data(),
// feed_eof() and set_exception() schedule the task, cancel() takes it off the reader. A frame
// destroyed while it waits (its task abandoned) takes it off the reader too.
//
// While it is registered with a reader it holds one reference on its task (the loop keeps a
// waiting task alive, as it does a sleeping one); waking it hands that reference to the ready
// queue. The member functions marked inline are tulip's own, defined where the reader is.
class StreamDataWaiter final : public Waitable {
public:
    StreamDataWaiter() noexcept = default;
    StreamDataWaiter(const StreamDataWaiter&) = delete;
    StreamDataWaiter& operator=(const StreamDataWaiter&) = delete;
    ~StreamDataWaiter() {
        if (state_) abandon();
    }

    // Before suspending: the checks of _wait_for_data (RuntimeError for a second waiter, a
    // wait after EOF, or no running task), then registers with the reader. func_name names the
    // method in those messages.
    inline void prepare(StreamReaderState& state, const char* func_name);
    // In await_suspend, after prepare(): cannot fail.
    void suspend(std::coroutine_handle<> h) noexcept {
        task_->resume_point = h;
        task_->waiting_on = this;
    }
    // In await_resume: raises CancelledError, the exception the reader was failed with, or a
    // cancel() that came after the wake-up.
    inline void resume();
    // Whether resume() raises.
    bool must_raise() const noexcept { return exception_ || task_->must_cancel; }

    // The reader's side: data or EOF arrived, or an exception (set_exception(), cancel()). The
    // reader has already let go of the waiter.
    inline void wake() noexcept;
    inline void wake(std::exception_ptr exc) noexcept;
    bool cancel_wait(const std::string& msg) override;

    // read_into()'s buffer, given before prepare(): the first data then goes straight into it
    // (received by the transport, or copied by feed_data()) rather than through the stream's
    // buffer, which is empty whenever read_into() waits.
    void receive_into(std::span<std::byte> buffer) noexcept { direct_ = buffer; }
    std::span<std::byte> direct_buffer() const noexcept { return direct_; }
    // feed_data()'s side: copies what fits of data into that buffer and returns how much (0
    // without one). Once only: the waiter is woken next.
    std::size_t deliver(std::string_view data) noexcept;
    // The transport received n bytes into direct_buffer() itself. Once only: the reader lets go
    // of the waiter next.
    void delivered(std::size_t n) noexcept { received_ = n; }
    // How many bytes went straight into the buffer.
    std::size_t received() const noexcept { return received_; }
    // Whether prepare() registered it (then it suspended, and its task resumes it).
    bool registered() const noexcept { return task_ != nullptr; }

private:
    // prepare()'s registration once the checks passed.
    inline void begin(StreamReaderState& state, TaskCore& task) noexcept;
    // prepare() when it has something to raise or a paused transport to resume (out of line).
    void prepare_slowly(StreamReaderState& state, const char* func_name);
    void abandon() noexcept;

    StreamReaderState* state_ = nullptr;  // the reader it is registered with, until woken
    TaskCore* task_ = nullptr;
    // What resume() raises: set_exception()'s exception, or CancelledError when cancelled.
    std::exception_ptr exception_;
    std::span<std::byte> direct_;
    std::size_t received_ = 0;
};
}  // namespace detail

// What StreamReader::read_into() returns: co_await it (see there). It holds its own reference
// to the stream. Not a Coro, so that a read that finds data buffered costs no coroutine frame;
// to run it as a task, await it inside a coroutine.
class [[nodiscard]] ReadIntoAwaiter {
public:
    ReadIntoAwaiter(detail::Ref<detail::StreamReaderStateBase> state, std::span<std::byte> buffer) noexcept
        : state_(std::move(state)), buffer_(buffer) {}
    ReadIntoAwaiter(const ReadIntoAwaiter&) = delete;
    ReadIntoAwaiter& operator=(const ReadIntoAwaiter&) = delete;

    bool await_ready();
    void await_suspend(std::coroutine_handle<> h) noexcept { waiter_.suspend(h); }
    std::size_t await_resume();

private:
    // Out of line: the copy from the stream's buffer, which a read that waited rarely needs.
    [[gnu::noinline]] std::size_t take_buffered(std::size_t got);
    // Out of line: raises what resume() raises after a wait (must_raise()), having given back
    // the `got` bytes.
    [[gnu::noinline]] void raise_after_wait(std::size_t got);
    inline detail::StreamReaderState& state() const noexcept;

    detail::Ref<detail::StreamReaderStateBase> state_;
    std::span<std::byte> buffer_;
    detail::StreamDataWaiter waiter_;
};

// Buffers what a protocol feeds it and hands it out to one reading coroutine at a time.
//
// The limit bounds a line: readline() and readuntil() fail with LimitOverrunError (ValueError
// for readline) rather than buffer more than `limit` bytes before a separator. It also drives
// flow control: when the buffer holds more than 2 x limit bytes the transport's reading is
// paused, and a read that brings it back to at most `limit` resumes it.
//
// Only one coroutine may wait for data at a time: a second one raises RuntimeError
// ("<method>() called while another coroutine is already waiting for incoming data").
//
// Cancellation: a read cancelled while it waits raises CancelledError and takes nothing from
// the buffer, so the stream stays usable. readuntil() consumes only when it returns.
class StreamReader {
public:
    // ValueError("Limit cannot be <= 0") for a zero limit. No loop is needed to create one: a
    // read waits on the loop that runs it.
    explicit StreamReader(std::size_t limit = stream_default_limit);

    // --- the protocol's side ----------------------------------------------------------
    // Appends data and wakes the waiting reader. RuntimeError after feed_eof().
    void feed_data(std::string_view data);
    // No more data will come; wakes the waiting reader.
    void feed_eof();
    // Every read from now on raises exc, even with data still buffered (as Python's); a waiting
    // read is woken with it.
    void set_exception(std::exception_ptr exc);
    // The transport that pause_reading()/resume_reading() go to. RuntimeError("Transport
    // already set") if one is set; StreamReaderProtocol sets and clears it.
    void set_transport(ReadTransport& transport);

    // --- state --------------------------------------------------------------------------
    // The exception given to set_exception(), or null.
    std::exception_ptr exception() const noexcept;
    // True if feed_eof() was called and the buffer is empty.
    bool at_eof() const noexcept;
    std::size_t limit() const noexcept;
    // The bytes received and not read yet (Python's private _buffer), for inspection. Valid
    // until the next call that changes the stream.
    std::string_view buffered() const noexcept;

    // --- reading (each is a coroutine that holds its own reference to the stream) -------
    // Up to n bytes, as soon as at least one is there; "" at EOF or for n == 0. n < 0 (the
    // default) reads until EOF and returns everything.
    Coro<std::string> read(std::ptrdiff_t n = -1) const;
    // Python's readline(): up to and including "\n". At EOF, the partial last line without a
    // newline, then "". A line longer than the limit raises ValueError with the
    // LimitOverrunError's message; the line (if its newline is already here) or else the whole
    // buffer is dropped, so the next readline() starts afresh.
    Coro<std::string> readline() const;
    // Exactly n bytes. IncompleteReadError (partial = what was left, expected = n) if EOF comes
    // first; the buffer is then empty. ValueError if n < 0.
    Coro<std::string> readexactly(std::ptrdiff_t n) const;
    // Up to and including the separator. IncompleteReadError (partial = the whole buffer,
    // expected unknown) at EOF without one, the buffer then empty. LimitOverrunError when the
    // limit is reached first, with `consumed` = how far the search got; the data stays in the
    // buffer. ValueError for an empty separator.
    Coro<std::string> readuntil(std::string_view separator = "\n") const;
    // Python 3.13's readuntil((sep1, sep2, ...)): returns the shortest data that ends with any
    // of the separators. For LimitOverrunError the shortest separator counts. ValueError for an
    // empty list or an empty separator.
    Coro<std::string> readuntil(std::initializer_list<std::string_view> separators) const;
    Coro<std::string> readuntil(std::span<const std::string_view> separators) const;
    // Python's __anext__: the next line, or nullopt at EOF (StopAsyncIteration).
    Coro<std::optional<std::string>> anext() const;

    // read(n) into a buffer the caller owns (a socket's recv_into): waits until at least one
    // byte is buffered, then moves up to buffer.size() bytes into it and returns how many; 0 at
    // EOF (or for an empty buffer). Raises as read() does (set_exception's exception, at once;
    // RuntimeError for a second waiting reader); cancelled while waiting, it raises
    // CancelledError and takes nothing. The buffer must stay valid until the read returns.
    // While it waits, the data that wakes it goes straight into the buffer, not through the
    // stream's: received there by the socket transport itself for a buffer of at least
    // StreamReaderProtocol::direct_receive_min bytes, on every backend (what does not fit stays
    // in the socket), else copied there by feed_data() (what does not fit is buffered).
    // A read cancelled after that puts the bytes back at the front of the stream's buffer, so
    // that it still takes nothing.
    // Allocates nothing: no string, no coroutine frame, no future, so that a loop of
    // read_into/write/drain on a reused buffer makes no heap allocation per message.
    ReadIntoAwaiter read_into(std::span<std::byte> buffer) const { return ReadIntoAwaiter(state_, buffer); }
    ReadIntoAwaiter read_into(std::span<char> buffer) const { return read_into(std::as_writable_bytes(buffer)); }

private:
    friend class StreamReaderProtocol;
    friend struct detail::StreamWriterState;
    inline detail::StreamReaderState& state() const noexcept;

    detail::Ref<detail::StreamReaderStateBase> state_;
};

// The flow-control half of a stream protocol (Python's FlowControlMixin): remembers whether the
// transport asked to pause writing and lets StreamWriter::drain() wait for resume_writing().
// Subclasses that override pause_writing, resume_writing or connection_lost must call these.
class FlowControlMixin : public Protocol {
public:
    void pause_writing() override;
    void resume_writing() override;
    // Wakes the drain() calls waiting on a paused transport: with exc if there is one.
    void connection_lost(std::exception_ptr exc) override;

    // Python's _drain_helper: returns at once unless writing is paused, else waits for
    // resume_writing() or connection_lost(). ConnectionResetError("Connection lost") once the
    // connection is lost. Cancelling it leaves nothing behind.
    Coro<> drain_helper();
    // Python's _get_close_waiter: completes when the connection is lost. The mixin itself
    // cannot tell: RuntimeError unless a subclass says.
    virtual Coro<> wait_closed();

    bool writing_paused() const noexcept { return paused_; }
    // True once connection_lost() has run (drain_helper() then raises).
    bool is_connection_lost() const noexcept { return connection_lost_; }

private:
    detail::WaiterList drain_waiters_;
    bool paused_ = false;
    bool connection_lost_ = false;
};

class StreamWriter;

// What start_server() calls for each new connection, run as a task. The handles are passed by
// value so the coroutine's frame owns them; the connection stays open while it holds the
// writer (see the ownership notes at the top).
using ClientConnectedCallback = std::function<Coro<>(StreamReader, StreamWriter)>;

// Adapts a Protocol to a StreamReader (Python's StreamReaderProtocol): data and EOF go to the
// reader, and connection_lost(exc) ends it with EOF or exc. With a client_connected_cb (the
// server case) connection_made() also makes the StreamWriter and runs cb(reader, writer) as a
// task; if that task raises, the exception goes to the loop's exception handler ("Unhandled
// exception in client_connected_cb") and the transport is closed; if it is cancelled the
// transport is closed too (Python 3.12's rules).
//
// Must be held by std::shared_ptr (transports hold protocols that way; the writer it makes for
// the callback shares it).
//
// While a read_into() of at least direct_receive_min bytes waits on an empty stream, tulip's
// socket transports receive straight into its buffer (detail::DirectReceiver), so that the
// bytes are copied once, by the kernel.
class StreamReaderProtocol : public FlowControlMixin,
                             public detail::DirectReceiver,
                             public std::enable_shared_from_this<StreamReaderProtocol> {
public:
    // Smaller reads are served from the stream's buffer: receiving a few bytes at a time
    // would cost a system call for each.
    static constexpr std::size_t direct_receive_min = 4096;

    explicit StreamReaderProtocol(StreamReader reader, ClientConnectedCallback client_connected_cb = {});

    void connection_made(Transport& transport) override;
    void data_received(std::string_view data) override;
    std::span<std::byte> direct_buffer() noexcept override;
    void direct_received(std::size_t n) override;
    // Feeds EOF and keeps the transport open for writing (true), except over TLS.
    bool eof_received() override;
    void connection_lost(std::exception_ptr exc) override;
    // Completes once connection_lost() has run; raises its exception if it had one.
    Coro<> wait_closed() override;

    const StreamReader& reader() const noexcept { return reader_; }

private:
    StreamReader reader_;
    ClientConnectedCallback client_connected_cb_;
    detail::WaiterList close_waiters_;
    std::exception_ptr closed_exception_;
    bool closed_ = false;
    bool over_ssl_ = false;
};

// Wraps a transport for writing (Python's StreamWriter): write() never blocks, drain() waits
// while the transport's buffer is above its high-water mark.
class StreamWriter {
public:
    // reader may be null (std::nullopt): drain() then does not check it for an exception.
    StreamWriter(std::shared_ptr<Transport> transport, std::shared_ptr<FlowControlMixin> protocol,
                 std::optional<StreamReader> reader);

    const std::shared_ptr<Transport>& transport() const noexcept;

    // Buffers data in the transport; RuntimeError once it is closing (the transport's rule).
    void write(std::string_view data);
    void write(std::span<const std::byte> data);
    void writelines(std::span<const std::string_view> lines);
    void writelines(std::initializer_list<std::string_view> lines);
    void write_eof();
    bool can_write_eof() const;

    // Closes the transport (buffered data is still sent); wait_closed() waits for the end.
    void close();
    bool is_closing() const;
    // Returns once the connection is lost; raises the error it was lost with, if any.
    Coro<> wait_closed() const;

    // Python's drain(): raises the reader's exception if it has one (the connection was lost
    // with an error); yields once if the transport is closing, so that connection_lost() can
    // run; then waits while writing is paused. After the connection is lost: the loss's
    // exception, or ConnectionResetError("Connection lost"). Cancelling it leaves the writer
    // usable.
    //
    // When none of that applies (the common case), it returns a finished Coro (Coro<>::ready()),
    // which costs no coroutine frame. The checks are made when drain() is called, not when its
    // Coro is awaited or its task first runs: the same thing for `co_await writer.drain()`; a
    // drain() kept for later, or given to create_task(), reports the state of the call.
    Coro<> drain() const;

    // Python's get_extra_info(name, default).
    std::any get_extra_info(std::string_view name, std::any default_value = {}) const;
    std::optional<socket::Address> peername() const;
    std::optional<socket::Address> sockname() const;

private:
    std::shared_ptr<detail::StreamWriterState> state_;
};

// --- opening streams (Python's open_connection, start_server, ...) ------------------------
// All of them run on the running loop; errors are create_connection's / create_server's.

// Connects to host:port (loop.create_connection with options) and returns the stream's two
// ends. With options.sock set, host must be nullopt and port 0: the connected socket is used
// (Python's open_connection(sock=...)).
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::optional<std::string> host, int port,
                                                            std::size_t limit = stream_default_limit,
                                                            ConnectionOptions options = {});

// Listens on host:port (loop.create_server with options) and runs client_connected_cb(reader,
// writer) as a task for each connection. Returns the Server: close() and wait_closed() it.
Coro<std::shared_ptr<Server>> start_server(ClientConnectedCallback client_connected_cb,
                                           std::optional<std::string> host, int port,
                                           std::size_t limit = stream_default_limit, ServerOptions options = {});

// The same over Unix stream sockets (a path, or an abstract name starting with '\0').
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 std::size_t limit = stream_default_limit,
                                                                 ConnectionOptions options = {});
Coro<std::shared_ptr<Server>> start_unix_server(ClientConnectedCallback client_connected_cb, std::string path,
                                                std::size_t limit = stream_default_limit,
                                                ServerOptions options = {});

}  // namespace tulip::asyncio
