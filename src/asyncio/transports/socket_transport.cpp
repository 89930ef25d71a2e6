#include "socket_transport.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <cstring>

#include "../../backend/raw_syscalls.hpp"
#include "loop_resources.hpp"
#include "protocol_calls.hpp"
#include "transport_errors.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/server.hpp"
#include "tulip/log.hpp"

namespace tulip::asyncio::detail {

namespace {

// Python's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
constexpr std::uint32_t kLogThresholdForConnLostWrites = 5;
// iovecs per sendmsg: enough to empty a typical buffer in one call, far below IOV_MAX.
constexpr int kMaxIov = 64;
// On a completion backend, writes made while several received buffers are handed over are held
// back and sent as one, which costs a copy; one at least this large is worth its own syscall.
constexpr std::size_t kSendAtOnceInBatch = 16 * 1024;

}  // namespace

std::shared_ptr<SocketTransport> SocketTransport::create(EventLoop& loop, socket::Socket sock,
                                                         std::shared_ptr<BaseProtocol> protocol,
                                                         std::optional<Future<void>> waiter,
                                                         std::shared_ptr<Server> server) {
    loop.check_closed();
    if (sock.fileno() < 0) raise_os_error(EBADF, "transport: the socket is closed");
    sock.setblocking(false);
    // As Python: every TCP transport has Nagle's algorithm off.
    if ((sock.family() == AF_INET || sock.family() == AF_INET6) && sock.type() == SOCK_STREAM)
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    auto t = std::make_shared<SocketTransport>(loop, std::move(sock), std::move(protocol), std::move(server));
    t->self_ = t;
    t->start(std::move(waiter));
    return t;
}

SocketTransport::SocketTransport(EventLoop& loop, socket::Socket sock, std::shared_ptr<BaseProtocol> protocol,
                                 std::shared_ptr<Server> server)
    : loop_(loop), sock_(std::move(sock)), protocol_(std::move(protocol)), server_(std::move(server)) {
    set_protocol_pointers();
}

SocketTransport::~SocketTransport() { release_socket(); }

void SocketTransport::start(std::optional<Future<void>> waiter) {
    // A DirectReceiver (the streams' protocol) is served by readiness on every backend: its
    // reads go straight into the caller's buffer, which beats a completion backend's provided
    // buffer and the copy out of it (docs/backends.md).
    if (loop_.backend().native_socket_ops() && !direct_) ops_ = StreamOps::create(loop_, sock_.fileno(), *this);
    else watch_ = FdWatch::create(loop_, sock_.fileno(), *this);
    loop_.resources().add(*this);
    if (server_) server_->attach();
    // As Python: connection_made on the next iteration, then reading starts.
    loop_.call_soon([self = self_, waiter = std::move(waiter)]() mutable {
        self->call_connection_made(std::move(waiter));
    });
}

void SocketTransport::call_connection_made(std::optional<Future<void>> waiter) {
    if (conn_lost_ == 0 && protocol_) {
        protocol_connected_ = true;
        try {
            if (stream_) stream_->connection_made(*this);
            else if (buffered_) buffered_->connection_made(*this);
        } catch (...) {
            auto exc = std::current_exception();
            if (waiter && !waiter->done()) waiter->set_exception(exc);
            fatal_error(exc, "Fatal error: protocol.connection_made() call failed.");
            return;
        }
        update_reading();
    }
    if (waiter && !waiter->done()) {
        if (conn_lost_ == 0) waiter->set_result();
        else waiter->set_exception(ConnectionResetError(ECONNRESET, "the connection was lost before it was made"));
    }
}

void SocketTransport::set_protocol_pointers() noexcept {
    stream_ = dynamic_cast<Protocol*>(protocol_.get());
    buffered_ = stream_ ? nullptr : dynamic_cast<BufferedProtocol*>(protocol_.get());
    direct_ = stream_ ? dynamic_cast<DirectReceiver*>(stream_) : nullptr;
}

void SocketTransport::set_protocol(std::shared_ptr<BaseProtocol> protocol) {
    if (protocol && !dynamic_cast<Protocol*>(protocol.get()) && !dynamic_cast<BufferedProtocol*>(protocol.get()))
        throw ValueError("set_protocol: a stream transport needs a Protocol or a BufferedProtocol");
    protocol_ = std::move(protocol);
    set_protocol_pointers();
    protocol_connected_ = protocol_ != nullptr;
}

// --- extra info -------------------------------------------------------------------------------

std::any SocketTransport::get_extra_info(std::string_view name) const { return socket_extra_info(sock_, name); }

std::optional<socket::Address> SocketTransport::peername() const { return socket_peername(sock_); }

std::optional<socket::Address> SocketTransport::sockname() const { return socket_sockname(sock_); }

// --- reading ----------------------------------------------------------------------------------

void SocketTransport::update_reading() noexcept {
    if (!watch_ && !ops_) return;
    bool on = protocol_connected_ && !closing_ && !reading_paused_ && !eof_received_;
    try {
        if (ops_) ops_->want_read(on);
        else watch_->want_read(on);
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: cannot watch the socket for reading");
    }
}

void SocketTransport::pause_reading() {
    if (!is_reading()) return;
    reading_paused_ = true;
    update_reading();
}

void SocketTransport::resume_reading() {
    if (closing_ || !reading_paused_) return;
    reading_paused_ = false;
    update_reading();
}

void SocketTransport::on_fd_events(std::uint32_t events) {
    constexpr std::uint32_t kErrors = kPollErr | kPollHup;
    if ((events & (kPollIn | kErrors)) && watch_ && watch_->wants_read()) read_ready();
    if ((events & (kPollOut | kErrors)) && watch_ && watch_->wants_write()) write_ready();
}

void SocketTransport::read_ready() {
    if (conn_lost_) return;
    if (direct_) read_ready_direct();
    else if (stream_) read_ready_stream();
    else if (buffered_) read_ready_buffered();
}

// Inlined into each reader: a call here costs the protocol echo ~10 instructions per message.
[[gnu::always_inline]] inline std::size_t SocketTransport::receive(std::span<std::byte> buf) {
    // I/O: one recv; a short read means the socket is drained and the next readiness event
    // brings the rest (as does a full one: the socket stays readable).
    ssize_t n = sys::recv(sock_.fileno(), buf.data(), buf.size(), 0);
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0) eof_ready();
    else if (!is_would_block(errno)) fatal_os_error(errno, "recv");
    return 0;
}

void SocketTransport::read_ready_stream() {
    // Into the loop's shared buffer, handed to the protocol as a view.
    std::span<std::byte> buf = loop_.resources().read_buffer();
    std::size_t n = receive(buf);
    if (n == 0) return;
    try {
        stream_->data_received(std::string_view(reinterpret_cast<const char*>(buf.data()), n));
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
    }
}

void SocketTransport::read_ready_direct() {
    // Straight into the protocol's buffer when it offers one.
    std::span<std::byte> buf = direct_->direct_buffer();
    if (buf.empty()) {
        read_ready_stream();
        return;
    }
    std::size_t n = receive(buf);
    if (n == 0) return;
    try {
        direct_->direct_received(n);
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
    }
}

void SocketTransport::read_ready_buffered() {
    std::span<std::byte> buf;
    try {
        buf = buffered_->get_buffer(0);
        if (buf.empty()) throw RuntimeError("get_buffer() returned an empty buffer");
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.get_buffer() call failed.");
        return;
    }
    // Straight into the protocol's buffer.
    std::size_t n = receive(buf);
    if (n == 0) return;
    try {
        buffered_->buffer_updated(n);
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.buffer_updated() call failed.");
    }
}

void SocketTransport::on_received(std::span<const std::byte> data) {
    if (conn_lost_) return;
    if (stream_) {
        try {
            stream_->data_received(std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
        }
        return;
    }
    // A BufferedProtocol gets the bytes copied into its own buffers, as many as it takes each time.
    while (buffered_ && !data.empty() && !conn_lost_) {
        std::span<std::byte> buf;
        try {
            buf = buffered_->get_buffer(data.size());
            if (buf.empty()) throw RuntimeError("get_buffer() returned an empty buffer");
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: protocol.get_buffer() call failed.");
            return;
        }
        std::size_t n = std::min(buf.size(), data.size());
        std::memcpy(buf.data(), data.data(), n);
        data = data.subspan(n);
        try {
            buffered_->buffer_updated(n);
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: protocol.buffer_updated() call failed.");
        }
    }
}

void SocketTransport::on_read_end(int result) {
    if (conn_lost_) return;
    if (result == 0) eof_ready();
    else fatal_os_error(-result, "recv");
}

void SocketTransport::eof_ready() {
    eof_received_ = true;
    update_reading();  // nothing more will come: stop watching (level-triggered would spin)
    bool keep_open = false;
    try {
        keep_open = stream_ ? stream_->eof_received() : buffered_->eof_received();
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.eof_received() call failed.");
        return;
    }
    // Closed by the transport itself, not the user: a late write is dropped, as Python's.
    if (!keep_open) begin_close();
}

// --- writing ----------------------------------------------------------------------------------

std::ptrdiff_t SocketTransport::send_some(std::span<const std::byte> data) noexcept {
    // I/O. MSG_NOSIGNAL: a reset peer is an EPIPE here, never a SIGPIPE for the process.
    ssize_t n = sys::send(sock_.fileno(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) return n;
    return is_would_block(errno) ? 0 : -errno;
}

std::ptrdiff_t SocketTransport::send_buffered() noexcept {
    // I/O: the oldest chunks in one vectored send.
    iovec iov[kMaxIov];
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(buffer_.gather(iov, kMaxIov));
    ssize_t n = ::sendmsg(sock_.fileno(), &msg, MSG_NOSIGNAL);
    if (n >= 0) return n;
    return is_would_block(errno) ? 0 : -errno;
}

void SocketTransport::write(std::span<const std::byte> data) {
    if (eof_) throw RuntimeError("Cannot call write() after write_eof()");
    if (user_closed_) throw RuntimeError("Cannot call write() on a closing transport (close() or abort() was called)");
    if (data.empty()) return;
    if (conn_lost_) {
        if (conn_lost_ >= kLogThresholdForConnLostWrites) tulip::logger().warn("socket.send() raised exception.");
        ++conn_lost_;
        return;
    }
    if (ops_) {
        write_native(data);
    } else if (buffer_.empty()) {
        std::ptrdiff_t n = send_some(data);
        if (n < 0) {
            fatal_os_error(static_cast<int>(-n), "send");
            return;
        }
        if (static_cast<std::size_t>(n) == data.size()) return;  // all gone: nothing copied
        data = data.subspan(static_cast<std::size_t>(n));
        buffer_.append(data);
        try {
            watch_->want_write(true);
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: cannot watch the socket for writing");
            return;
        }
    } else {
        buffer_.append(data);
    }
    maybe_pause_protocol();
}

void SocketTransport::write_native(std::span<const std::byte> data) {
    // As on every backend, a write with nothing queued tries send() at once: nothing is copied
    // when it all goes out, and the peer sees the bytes before write() returns, as Python's
    // selector transports do. Only the rest goes through the backend's send operation; so do
    // the writes made while several received buffers are handed over (on_batch_end).
    if (write_drained() && (!ops_->batching() || data.size() >= kSendAtOnceInBatch)) {
        std::ptrdiff_t n = send_some(data);
        if (n < 0) {
            fatal_os_error(static_cast<int>(-n), "send");
            return;
        }
        data = data.subspan(static_cast<std::size_t>(n));
        if (data.empty()) return;
    }
    buffer_.append(data);
    if (!ops_->sending() && !ops_->batching()) send_native();
}

void SocketTransport::on_batch_end() {
    // What the protocol wrote while a batch of reads was handed over goes out as one send.
    if (!conn_lost_ && !buffer_.empty() && !ops_->sending()) send_native();
}

void SocketTransport::send_native() {
    try {
        ops_->send(buffer_);
    } catch (...) {
        buffer_.clear();
        fatal_error(std::current_exception(), "Fatal error: cannot send on the socket");
    }
}

void SocketTransport::on_sent(int result) {
    if (conn_lost_) return;
    if (result < 0) {
        buffer_.clear();
        fatal_os_error(-result, "send");
        return;
    }
    maybe_resume_protocol();  // may write more
    if (conn_lost_ || ops_->sending()) return;
    if (!buffer_.empty()) send_native();
    else after_drained();
}

void SocketTransport::writelines(std::span<const std::string_view> lines) {
    // Each line is tried at once while the buffer is empty, then appended: the kernel sees the
    // buffered rest in one vectored send.
    for (std::string_view line : lines) write(line);
}

void SocketTransport::write_ready() {
    if (conn_lost_) return;
    std::ptrdiff_t n = send_buffered();
    if (n < 0) {
        buffer_.clear();
        watch_->want_write(false);
        fatal_os_error(static_cast<int>(-n), "send");
        return;
    }
    buffer_.consume(static_cast<std::size_t>(n));
    maybe_resume_protocol();  // may write more
    if (buffer_.empty() && !conn_lost_) after_drained();
}

void SocketTransport::stop_write_watch() noexcept {
    if (watch_) watch_->want_write(false);
}

void SocketTransport::after_drained() {
    stop_write_watch();
    if (closing_) {
        schedule_connection_lost(nullptr);
    } else if (eof_) {
        try {
            sock_.shutdown(SHUT_WR);
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: shutdown(SHUT_WR) failed");
        }
    }
}

void SocketTransport::write_eof() {
    if (closing_ || eof_) return;
    eof_ = true;
    if (write_drained()) sock_.shutdown(SHUT_WR);
}

void SocketTransport::set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
    flow_.set_limits(high, low);
    maybe_pause_protocol();
}

void SocketTransport::maybe_pause_protocol() { flow_.maybe_pause(get_write_buffer_size(), protocol_.get(), loop_); }

void SocketTransport::maybe_resume_protocol() { flow_.maybe_resume(get_write_buffer_size(), protocol_.get(), loop_); }

// --- closing ----------------------------------------------------------------------------------

void SocketTransport::close() {
    user_closed_ = true;
    begin_close();
}

void SocketTransport::begin_close() {
    if (closing_) return;
    closing_ = true;
    update_reading();
    if (write_drained()) schedule_connection_lost(nullptr);
    // else: write_ready() or on_sent() flushes the rest, then connection_lost follows.
}

void SocketTransport::abort() {
    user_closed_ = true;
    force_close(nullptr);
}

void SocketTransport::fatal_os_error(int err, const char* call) {
    fatal_error(make_os_error(err, std::string("socket transport ") + call), "Fatal error on socket transport");
}

void SocketTransport::fatal_error(std::exception_ptr exc, const char* message) {
    // As Python 3.12: OS errors (resets, broken pipes) reach connection_lost only; anything else
    // also goes to the exception handler.
    if (!is_os_error(exc)) loop_.call_exception_handler({message, exc, {}, {}});
    force_close(std::move(exc));
}

void SocketTransport::force_close(std::exception_ptr exc) {
    if (conn_lost_) return;
    if (!buffer_.empty()) {
        buffer_.clear();
        stop_write_watch();
    }
    if (ops_) ops_->cancel_send();
    if (!closing_) {
        closing_ = true;
        update_reading();
    }
    schedule_connection_lost(std::move(exc));
}

void SocketTransport::schedule_connection_lost(std::exception_ptr exc) {
    if (conn_lost_) return;
    ++conn_lost_;
    stop_write_watch();
    loop_.call_soon([self = self_, exc = std::move(exc)]() mutable { self->call_connection_lost(std::move(exc)); });
}

void SocketTransport::call_connection_lost(std::exception_ptr exc) {
    auto self = std::move(self_);  // this lives until the end of the function
    std::exception_ptr failed = protocol_connection_lost(protocol_connected_ ? protocol_.get() : nullptr, std::move(exc));
    release_socket();
    protocol_.reset();
    stream_ = nullptr;
    buffered_ = nullptr;
    if (auto server = std::move(server_)) server->detach();
    loop_.resources().remove(*this);
    report_connection_lost_failure(loop_, std::move(failed));
}

void SocketTransport::loop_closing() noexcept {
    auto self = std::move(self_);
    closing_ = user_closed_ = true;
    ++conn_lost_;
    release_socket();
    buffer_.clear();
    protocol_.reset();
    stream_ = nullptr;
    buffered_ = nullptr;
    server_.reset();
}

void SocketTransport::release_socket() noexcept {
    if (watch_) std::exchange(watch_, nullptr)->release();
    if (ops_) std::exchange(ops_, nullptr)->release();
    try {
        sock_.close();
    } catch (...) {
    }
}

}  // namespace tulip::asyncio::detail
