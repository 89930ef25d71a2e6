#include "datagram_transport.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "loop_resources.hpp"
#include "protocol_calls.hpp"
#include "transport_errors.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/log.hpp"

namespace tulip::asyncio::detail {

namespace {

// Python's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
constexpr std::uint32_t kLogThresholdForConnLostWrites = 5;

}  // namespace

std::shared_ptr<DatagramSocketTransport> DatagramSocketTransport::create(EventLoop& loop, socket::Socket sock,
                                                                         std::shared_ptr<DatagramProtocol> protocol,
                                                                         std::optional<socket::Address> remote,
                                                                         std::optional<Future<void>> waiter) {
    loop.check_closed();
    if (sock.fileno() < 0) raise_os_error(EBADF, "datagram transport: the socket is closed");
    sock.setblocking(false);
    auto t = std::make_shared<DatagramSocketTransport>(loop, std::move(sock), std::move(protocol), std::move(remote));
    t->self_ = t;
    t->start(std::move(waiter));
    return t;
}

DatagramSocketTransport::DatagramSocketTransport(EventLoop& loop, socket::Socket sock,
                                                 std::shared_ptr<DatagramProtocol> protocol,
                                                 std::optional<socket::Address> remote)
    : loop_(loop), sock_(std::move(sock)), protocol_(std::move(protocol)), remote_(std::move(remote)) {
    if (remote_) {
        try {
            connected_ = sock_.getpeername() == *remote_;
        } catch (const OSError&) {
        }  // a broadcast endpoint: remote_ is only the default destination
    }
}

DatagramSocketTransport::~DatagramSocketTransport() { release_socket(); }

void DatagramSocketTransport::start(std::optional<Future<void>> waiter) {
    if (loop_.backend().native_socket_ops()) ops_ = DatagramOps::create(loop_, sock_.fileno(), sock_.family(), *this);
    else watch_ = FdWatch::create(loop_, sock_.fileno(), *this);
    loop_.resources().add(*this);
    // As Python: connection_made on the next iteration, then reading starts.
    loop_.call_soon([self = self_, waiter = std::move(waiter)]() mutable {
        self->call_connection_made(std::move(waiter));
    });
}

void DatagramSocketTransport::call_connection_made(std::optional<Future<void>> waiter) {
    if (conn_lost_ == 0 && protocol_) {
        protocol_connected_ = true;
        try {
            protocol_->connection_made(*this);
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
        else waiter->set_exception(ConnectionResetError(ECONNRESET, "the transport was closed before it was made"));
    }
}

void DatagramSocketTransport::set_protocol(std::shared_ptr<BaseProtocol> protocol) {
    auto dgram = std::dynamic_pointer_cast<DatagramProtocol>(protocol);
    if (protocol && !dgram) throw ValueError("set_protocol: a datagram transport needs a DatagramProtocol");
    protocol_ = std::move(dgram);
    protocol_connected_ = protocol_ != nullptr;
}

// --- extra info -------------------------------------------------------------------------------

std::any DatagramSocketTransport::get_extra_info(std::string_view name) const { return socket_extra_info(sock_, name); }

std::optional<socket::Address> DatagramSocketTransport::sockname() const { return socket_sockname(sock_); }

// --- reading ----------------------------------------------------------------------------------

void DatagramSocketTransport::update_reading() noexcept {
    if (!watch_ && !ops_) return;
    bool on = protocol_connected_ && !closing_ && !reading_paused_;
    try {
        if (ops_) ops_->want_read(on);
        else watch_->want_read(on);
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: cannot watch the socket for reading");
    }
}

void DatagramSocketTransport::pause_reading() {
    if (!is_reading()) return;
    reading_paused_ = true;
    update_reading();
}

void DatagramSocketTransport::resume_reading() {
    if (closing_ || !reading_paused_) return;
    reading_paused_ = false;
    update_reading();
}

void DatagramSocketTransport::on_fd_events(std::uint32_t events) {
    constexpr std::uint32_t kErrors = kPollErr | kPollHup;
    if ((events & (kPollIn | kErrors)) && watch_ && watch_->wants_read()) read_ready();
    if ((events & (kPollOut | kErrors)) && watch_ && watch_->wants_write()) write_ready();
}

void DatagramSocketTransport::read_ready() {
    for (int i = 0; i < kMaxDatagramsPerEvent && !closing_ && protocol_; ++i) {
        // I/O: one datagram into the loop's shared buffer (larger than any datagram).
        std::span<std::byte> buf = loop_.resources().read_buffer();
        ::sockaddr_storage from{};
        ::socklen_t fromlen = sizeof from;
        ssize_t n = ::recvfrom(sock_.fileno(), buf.data(), buf.size(), 0, reinterpret_cast<::sockaddr*>(&from), &fromlen);
        if (n < 0) {
            if (!is_would_block(errno)) report_error(errno, "recvfrom");
            return;
        }
        deliver(buf.first(static_cast<std::size_t>(n)), reinterpret_cast<const ::sockaddr*>(&from), fromlen);
        if (!watch_ || !watch_->wants_read()) return;  // paused (or closed) from the callback
    }
}

void DatagramSocketTransport::deliver(std::span<const std::byte> data, const sockaddr* from, socklen_t fromlen) {
    socket::Address addr = socket::Address::from_sockaddr(from, fromlen);
    try {
        protocol_->datagram_received(std::string_view(reinterpret_cast<const char*>(data.data()), data.size()), addr);
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.datagram_received() call failed.");
    }
}

void DatagramSocketTransport::on_datagram(std::span<const std::byte> data, const sockaddr* from, socklen_t fromlen) {
    if (closing_ || !protocol_) return;
    deliver(data, from, fromlen);
}

void DatagramSocketTransport::on_receive_error(int result) {
    if (closing_) return;
    report_error(-result, "recvmsg");
}

void DatagramSocketTransport::report_error(int err, const char* call) {
    if (!protocol_) return;
    try {
        protocol_->error_received(make_os_error(err, std::string("datagram transport ") + call));
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.error_received() call failed.");
    }
}

// --- writing ----------------------------------------------------------------------------------

int DatagramSocketTransport::send_one(std::span<const std::byte> data,
                                      const std::optional<socket::Address>& addr) noexcept {
    // I/O. MSG_NOSIGNAL for Unix datagram sockets whose peer went away.
    ssize_t n;
    if (addr) {
        ::sockaddr_storage to;
        ::socklen_t tolen = addr->to_sockaddr(to);
        n = ::sendto(sock_.fileno(), data.data(), data.size(), MSG_NOSIGNAL, reinterpret_cast<const ::sockaddr*>(&to),
                     tolen);
    } else {
        n = ::send(sock_.fileno(), data.data(), data.size(), MSG_NOSIGNAL);
    }
    if (n >= 0) return 0;
    // ENOBUFS: the interface queue is full for now; like EAGAIN, try again when writable.
    return is_would_block(errno) || errno == ENOBUFS ? EAGAIN : errno;
}

void DatagramSocketTransport::sendto(std::span<const std::byte> data, const std::optional<socket::Address>& addr) {
    if (remote_) {
        if (addr && *addr != *remote_)
            throw ValueError("Invalid address: must be nullopt or " + remote_->to_string() + ", got " +
                             addr->to_string());
    } else if (!addr) {
        throw ValueError("sendto: the transport is not connected, so an address is needed");
    }
    if (user_closed_) throw RuntimeError("Cannot call sendto() on a closing transport (close() or abort() was called)");
    if (conn_lost_) {
        if (conn_lost_ >= kLogThresholdForConnLostWrites) tulip::logger().warn("socket.sendto() raised exception.");
        ++conn_lost_;
        return;
    }
    // A connected transport sends with send(): the address is the kernel's.
    std::optional<socket::Address> to = connected_ ? std::nullopt : (addr ? addr : remote_);
    // On every backend a datagram with nothing ahead of it is tried at once: nothing is copied
    // when the kernel takes it, and the peer has it before sendto() returns.
    if (write_drained()) {
        int err = send_one(data, to);
        if (err == 0) return;
        if (err != EAGAIN) {
            report_error(err, "sendto");
            return;
        }
        if (watch_) {
            try {
                watch_->want_write(true);
            } catch (...) {
                fatal_error(std::current_exception(), "Fatal error: cannot watch the socket for writing");
                return;
            }
        }
    }
    queue_.push_back(Datagram{std::vector<std::byte>(data.begin(), data.end()), std::move(to)});
    queued_bytes_ += data.size();
    if (ops_ && !ops_->sending()) send_next_native();
    maybe_pause_protocol();
}

void DatagramSocketTransport::send_next_native() {
    // The oldest queued datagram, through the backend's SENDMSG: one at a time, so in order.
    Datagram d = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= d.data.size();
    try {
        ops_->send(std::move(d.data), d.addr);
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: cannot send on the socket");
    }
}

void DatagramSocketTransport::on_sent(int result) {
    if (conn_lost_) return;
    if (result < 0) {
        // The datagram is dropped (as Python's); the rest still go out.
        report_error(-result, "sendto");
        if (conn_lost_) return;
    }
    if (!queue_.empty() && !ops_->sending()) send_next_native();  // error_received may have sent
    maybe_resume_protocol();  // may queue more
    if (write_drained() && closing_ && !conn_lost_) schedule_connection_lost(nullptr);
}

void DatagramSocketTransport::write_ready() {
    if (conn_lost_) return;
    while (!queue_.empty()) {
        Datagram& d = queue_.front();
        int err = send_one(d.data, d.addr);
        if (err == EAGAIN) break;  // still full: wait for the next writability
        queued_bytes_ -= d.data.size();
        queue_.pop_front();
        if (err != 0) {
            // The datagram is dropped (as Python's); the rest still go out.
            report_error(err, "sendto");
            if (conn_lost_) return;
        }
    }
    maybe_resume_protocol();  // may queue more
    if (queue_.empty() && !conn_lost_) {
        watch_->want_write(false);
        if (closing_) schedule_connection_lost(nullptr);
    }
}

void DatagramSocketTransport::set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
    flow_.set_limits(high, low);
    maybe_pause_protocol();
}

void DatagramSocketTransport::maybe_pause_protocol() { flow_.maybe_pause(queued_bytes_, protocol_.get(), loop_); }

void DatagramSocketTransport::maybe_resume_protocol() { flow_.maybe_resume(queued_bytes_, protocol_.get(), loop_); }

// --- closing ----------------------------------------------------------------------------------

void DatagramSocketTransport::close() {
    user_closed_ = true;
    if (closing_) return;
    closing_ = true;
    update_reading();
    if (write_drained()) schedule_connection_lost(nullptr);
    // else: write_ready() or on_sent() sends the rest, then connection_lost follows.
}

void DatagramSocketTransport::abort() {
    user_closed_ = true;
    force_close(nullptr);
}

void DatagramSocketTransport::fatal_error(std::exception_ptr exc, const char* message) {
    loop_.call_exception_handler({message, exc, {}, {}});
    force_close(std::move(exc));
}

void DatagramSocketTransport::force_close(std::exception_ptr exc) {
    if (conn_lost_) return;
    queue_.clear();
    queued_bytes_ = 0;
    if (ops_) ops_->cancel_send();
    if (!closing_) {
        closing_ = true;
        update_reading();
    }
    schedule_connection_lost(std::move(exc));
}

void DatagramSocketTransport::schedule_connection_lost(std::exception_ptr exc) {
    if (conn_lost_) return;
    ++conn_lost_;
    if (watch_) watch_->want_write(false);
    loop_.call_soon([self = self_, exc = std::move(exc)]() mutable { self->call_connection_lost(std::move(exc)); });
}

void DatagramSocketTransport::call_connection_lost(std::exception_ptr exc) {
    auto self = std::move(self_);  // this lives until the end of the function
    std::exception_ptr failed = protocol_connection_lost(protocol_connected_ ? protocol_.get() : nullptr, std::move(exc));
    release_socket();
    protocol_.reset();
    loop_.resources().remove(*this);
    report_connection_lost_failure(loop_, std::move(failed));
}

void DatagramSocketTransport::loop_closing() noexcept {
    auto self = std::move(self_);
    closing_ = user_closed_ = true;
    ++conn_lost_;
    release_socket();
    queue_.clear();
    queued_bytes_ = 0;
    protocol_.reset();
}

void DatagramSocketTransport::release_socket() noexcept {
    if (watch_) std::exchange(watch_, nullptr)->release();
    if (ops_) std::exchange(ops_, nullptr)->release();
    try {
        sock_.close();
    } catch (...) {
    }
}

}  // namespace tulip::asyncio::detail
