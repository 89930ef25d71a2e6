#include "pipe_read_transport.hpp"

#include <unistd.h>

#include <cerrno>

#include "loop_resources.hpp"
#include "protocol_calls.hpp"
#include "pipe_fd.hpp"
#include "transport_errors.hpp"
#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio::detail {

namespace {

[[noreturn]] void cannot_write() { throw RuntimeError("a read pipe transport cannot write"); }

}  // namespace

std::shared_ptr<PipeReadTransport> PipeReadTransport::create(EventLoop& loop, int fd,
                                                             std::shared_ptr<BaseProtocol> protocol,
                                                             std::optional<Future<void>> waiter) {
    loop.check_closed();
    check_pipe_fd(fd);
    if (!dynamic_cast<Protocol*>(protocol.get())) throw ValueError("connect_read_pipe: the protocol must be a Protocol");
    set_pipe_nonblocking(fd);
    auto t = std::make_shared<PipeReadTransport>(loop, fd, std::move(protocol));
    t->self_ = t;
    t->watch_ = FdWatch::create(loop, fd, *t);
    loop.resources().add(*t);
    // As Python: connection_made on the next iteration, then reading starts.
    loop.call_soon([self = t, waiter = std::move(waiter)]() mutable { self->call_connection_made(std::move(waiter)); });
    return t;
}

PipeReadTransport::PipeReadTransport(EventLoop& loop, int fd, std::shared_ptr<BaseProtocol> protocol)
    : loop_(loop), fd_(fd), protocol_(std::move(protocol)), stream_(dynamic_cast<Protocol*>(protocol_.get())) {}

PipeReadTransport::~PipeReadTransport() { release_fd(); }

void PipeReadTransport::call_connection_made(std::optional<Future<void>> waiter) {
    if (!lost_ && stream_) {
        connected_ = true;
        try {
            stream_->connection_made(*this);
        } catch (...) {
            auto exc = std::current_exception();
            if (waiter && !waiter->done()) waiter->set_exception(exc);
            fatal_error(exc, "Fatal error: protocol.connection_made() call failed.");
            return;
        }
        update_reading();
    }
    if (waiter && !waiter->done()) {
        if (!lost_) waiter->set_result();
        else waiter->set_exception(BrokenPipeError(EPIPE, "the pipe was closed before connection_made"));
    }
}

void PipeReadTransport::set_protocol(std::shared_ptr<BaseProtocol> protocol) {
    auto* stream = dynamic_cast<Protocol*>(protocol.get());
    if (protocol && !stream) throw ValueError("set_protocol: a read pipe transport needs a Protocol");
    protocol_ = std::move(protocol);
    stream_ = stream;
    connected_ = protocol_ != nullptr;
}

std::any PipeReadTransport::get_extra_info(std::string_view name) const {
    if (name == "pipe" && fd_ >= 0) return fd_;
    return {};
}

// --- reading ----------------------------------------------------------------------------------

void PipeReadTransport::update_reading() noexcept {
    if (!watch_) return;
    try {
        watch_->want_read(connected_ && !closing_ && !paused_);
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: cannot watch the pipe for reading");
    }
}

void PipeReadTransport::pause_reading() {
    if (!is_reading()) return;
    paused_ = true;
    update_reading();
}

void PipeReadTransport::resume_reading() {
    if (closing_ || !paused_) return;
    paused_ = false;
    update_reading();
}

void PipeReadTransport::on_fd_events(std::uint32_t) {
    if (watch_ && watch_->wants_read()) read_ready();
}

void PipeReadTransport::read_ready() {
    std::span<std::byte> buf = loop_.resources().read_buffer();
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fatal_error(make_os_error(errno, "pipe transport read"), "Fatal read error on pipe transport");
        return;
    }
    if (n == 0) {
        // EOF: as Python, eof_received and then connection_lost(null); nothing is read any more.
        closing_ = true;
        update_reading();
        try {
            stream_->eof_received();
        } catch (...) {
            loop_.call_exception_handler({"Exception in protocol.eof_received()", std::current_exception(), {}, {}});
        }
        schedule_connection_lost(nullptr);
        return;
    }
    try {
        stream_->data_received(std::string_view(reinterpret_cast<const char*>(buf.data()), static_cast<std::size_t>(n)));
    } catch (...) {
        fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
    }
}

// --- the write half a read pipe does not have ----------------------------------------------

void PipeReadTransport::write(std::span<const std::byte>) { cannot_write(); }
void PipeReadTransport::writelines(std::span<const std::string_view>) { cannot_write(); }
void PipeReadTransport::write_eof() { cannot_write(); }
void PipeReadTransport::abort() { cannot_write(); }
void PipeReadTransport::set_write_buffer_limits(std::optional<std::size_t>, std::optional<std::size_t>) {
    cannot_write();
}

// --- closing ----------------------------------------------------------------------------------

void PipeReadTransport::close() {
    if (closing_) return;
    closing_ = true;
    update_reading();
    schedule_connection_lost(nullptr);
}

void PipeReadTransport::fatal_error(std::exception_ptr exc, const char* message) {
    // As Python: OS errors reach connection_lost only; anything else goes to the handler too.
    if (!is_os_error(exc)) loop_.call_exception_handler({message, exc, {}, {}});
    closing_ = true;
    update_reading();
    schedule_connection_lost(std::move(exc));
}

void PipeReadTransport::schedule_connection_lost(std::exception_ptr exc) {
    if (lost_) return;
    lost_ = true;
    loop_.call_soon([self = self_, exc = std::move(exc)]() mutable { self->call_connection_lost(std::move(exc)); });
}

void PipeReadTransport::call_connection_lost(std::exception_ptr exc) {
    auto self = std::move(self_);  // this lives until the end of the function
    std::exception_ptr failed = protocol_connection_lost(connected_ ? protocol_.get() : nullptr, std::move(exc));
    release_fd();
    protocol_.reset();
    stream_ = nullptr;
    loop_.resources().remove(*this);
    report_connection_lost_failure(loop_, std::move(failed));
}

void PipeReadTransport::loop_closing() noexcept {
    auto self = std::move(self_);
    closing_ = lost_ = true;
    release_fd();
    protocol_.reset();
    stream_ = nullptr;
    loop_.resources().remove(*this);
}

void PipeReadTransport::release_fd() noexcept {
    if (watch_) std::exchange(watch_, nullptr)->release();
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

}  // namespace tulip::asyncio::detail
