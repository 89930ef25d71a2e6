#include "pipe_write_transport.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "../../socket/sigpipe.hpp"
#include "loop_resources.hpp"
#include "protocol_calls.hpp"
#include "pipe_fd.hpp"
#include "transport_errors.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/log.hpp"

namespace tulip::asyncio::detail {

namespace {

// Python's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
constexpr std::uint32_t kLogThresholdForConnLostWrites = 5;
constexpr int kMaxIov = 64;

// write(2) has no MSG_NOSIGNAL: SIGPIPE is blocked around the call, and the one an EPIPE raised
// is taken back.
template <class Call>
std::ptrdiff_t without_sigpipe(Call call) noexcept {
    socket::detail::SigpipeBlocked blocked;
    ssize_t n = call();
    if (n >= 0) return n;
    int err = errno;
    if (err == EPIPE) blocked.saw_epipe();
    return is_would_block(err) ? 0 : -err;
}

}  // namespace

std::shared_ptr<PipeWriteTransport> PipeWriteTransport::create(EventLoop& loop, int fd,
                                                               std::shared_ptr<BaseProtocol> protocol,
                                                               std::optional<Future<void>> waiter) {
    loop.check_closed();
    PipeKind kind = check_pipe_fd(fd);
    if (!dynamic_cast<Protocol*>(protocol.get()) && !dynamic_cast<BufferedProtocol*>(protocol.get()))
        throw ValueError("connect_write_pipe: the protocol must be a Protocol or a BufferedProtocol");
    set_pipe_nonblocking(fd);
    auto t = std::make_shared<PipeWriteTransport>(loop, fd, std::move(protocol), kind != PipeKind::char_device);
    t->self_ = t;
    t->watch_ = FdWatch::create(loop, fd, *t);
    loop.resources().add(*t);
    loop.call_soon([self = t, waiter = std::move(waiter)]() mutable { self->call_connection_made(std::move(waiter)); });
    return t;
}

PipeWriteTransport::PipeWriteTransport(EventLoop& loop, int fd, std::shared_ptr<BaseProtocol> protocol,
                                       bool watch_reader)
    : loop_(loop), fd_(fd), protocol_(std::move(protocol)), watch_reader_(watch_reader) {}

PipeWriteTransport::~PipeWriteTransport() { release_fd(); }

void PipeWriteTransport::call_connection_made(std::optional<Future<void>> waiter) {
    if (!conn_lost_ && protocol_) {
        connected_ = true;
        try {
            if (auto* p = dynamic_cast<Protocol*>(protocol_.get())) p->connection_made(*this);
            else if (auto* b = dynamic_cast<BufferedProtocol*>(protocol_.get())) b->connection_made(*this);
        } catch (...) {
            auto exc = std::current_exception();
            if (waiter && !waiter->done()) waiter->set_exception(exc);
            fatal_error(exc, "Fatal error: protocol.connection_made() call failed.");
            return;
        }
        if (watch_reader_ && !closing_) {
            try {
                watch_->want_read(true);
            } catch (...) {
                fatal_error(std::current_exception(), "Fatal error: cannot watch the pipe");
            }
        }
    }
    if (waiter && !waiter->done()) {
        if (!conn_lost_) waiter->set_result();
        else waiter->set_exception(BrokenPipeError(EPIPE, "the pipe was closed before connection_made"));
    }
}

std::any PipeWriteTransport::get_extra_info(std::string_view name) const {
    if (name == "pipe" && fd_ >= 0) return fd_;
    return {};
}

void PipeWriteTransport::on_fd_events(std::uint32_t events) {
    constexpr std::uint32_t kErrors = kPollErr | kPollHup;
    // The write end is never readable: input or an error there means the reader went away.
    if ((events & (kPollIn | kErrors)) && watch_ && watch_->wants_read()) {
        reader_closed();
        return;
    }
    if ((events & (kPollOut | kErrors)) && watch_ && watch_->wants_write()) write_ready();
}

void PipeWriteTransport::reader_closed() {
    // As Python's _read_ready: data still waiting will never be read.
    if (!buffer_.empty()) force_close(make_os_error(EPIPE, "pipe transport: the read end was closed"));
    else force_close(nullptr);
}

// --- writing ----------------------------------------------------------------------------------

std::ptrdiff_t PipeWriteTransport::write_some(std::span<const std::byte> data) noexcept {
    return without_sigpipe([&] { return ::write(fd_, data.data(), data.size()); });
}

std::ptrdiff_t PipeWriteTransport::write_buffered() noexcept {
    iovec iov[kMaxIov];
    int n = buffer_.gather(iov, kMaxIov);
    return without_sigpipe([&] { return ::writev(fd_, iov, n); });
}

void PipeWriteTransport::write(std::span<const std::byte> data) {
    if (user_closed_)
        throw RuntimeError("Cannot call write() on a closing pipe transport (write_eof(), close() or abort())");
    if (data.empty()) return;
    if (conn_lost_) {
        if (conn_lost_ >= kLogThresholdForConnLostWrites) tulip::logger().warn("pipe closed by peer or os.write(pipe, data) raised exception.");
        ++conn_lost_;
        return;
    }
    if (buffer_.empty()) {
        std::ptrdiff_t n = write_some(data);
        if (n < 0) {
            fatal_error(make_os_error(static_cast<int>(-n), "pipe transport write"), "Fatal write error on pipe transport");
            return;
        }
        if (static_cast<std::size_t>(n) == data.size()) return;
        buffer_.append(data.subspan(static_cast<std::size_t>(n)));
        try {
            watch_->want_write(true);
        } catch (...) {
            fatal_error(std::current_exception(), "Fatal error: cannot watch the pipe for writing");
            return;
        }
    } else {
        buffer_.append(data);
    }
    maybe_pause_protocol();
}

void PipeWriteTransport::writelines(std::span<const std::string_view> lines) {
    for (std::string_view line : lines) write(line);
}

void PipeWriteTransport::write_ready() {
    if (conn_lost_) return;
    std::ptrdiff_t n = write_buffered();
    if (n < 0) {
        fatal_error(make_os_error(static_cast<int>(-n), "pipe transport write"), "Fatal write error on pipe transport");
        return;
    }
    buffer_.consume(static_cast<std::size_t>(n));
    maybe_resume_protocol();  // may write more
    if (!buffer_.empty() || conn_lost_) return;
    watch_->want_write(false);
    if (closing_) schedule_connection_lost(nullptr);  // write_eof() or close() waited for the flush
}

void PipeWriteTransport::set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
    flow_.set_limits(high, low);
    maybe_pause_protocol();
}

void PipeWriteTransport::maybe_pause_protocol() { flow_.maybe_pause(buffer_.size(), protocol_.get(), loop_); }

void PipeWriteTransport::maybe_resume_protocol() { flow_.maybe_resume(buffer_.size(), protocol_.get(), loop_); }

// --- closing ----------------------------------------------------------------------------------

void PipeWriteTransport::write_eof() {
    user_closed_ = true;
    if (closing_) return;
    closing_ = true;
    if (watch_) watch_->want_read(false);
    if (buffer_.empty()) schedule_connection_lost(nullptr);
    // else: write_ready() flushes the rest, then connection_lost follows.
}

void PipeWriteTransport::close() { write_eof(); }

void PipeWriteTransport::abort() {
    user_closed_ = true;
    force_close(nullptr);
}

void PipeWriteTransport::fatal_error(std::exception_ptr exc, const char* message) {
    if (!is_os_error(exc)) loop_.call_exception_handler({message, exc, {}, {}});
    force_close(std::move(exc));
}

void PipeWriteTransport::force_close(std::exception_ptr exc) {
    if (conn_lost_) return;
    closing_ = true;
    buffer_.clear();
    schedule_connection_lost(std::move(exc));
}

void PipeWriteTransport::schedule_connection_lost(std::exception_ptr exc) {
    if (conn_lost_) return;
    ++conn_lost_;
    if (watch_) {
        watch_->want_read(false);
        watch_->want_write(false);
    }
    loop_.call_soon([self = self_, exc = std::move(exc)]() mutable { self->call_connection_lost(std::move(exc)); });
}

void PipeWriteTransport::call_connection_lost(std::exception_ptr exc) {
    auto self = std::move(self_);  // this lives until the end of the function
    std::exception_ptr failed = protocol_connection_lost(connected_ ? protocol_.get() : nullptr, std::move(exc));
    release_fd();
    protocol_.reset();
    loop_.resources().remove(*this);
    report_connection_lost_failure(loop_, std::move(failed));
}

void PipeWriteTransport::loop_closing() noexcept {
    auto self = std::move(self_);
    closing_ = true;
    ++conn_lost_;
    release_fd();
    buffer_.clear();
    protocol_.reset();
    loop_.resources().remove(*this);
}

void PipeWriteTransport::release_fd() noexcept {
    if (watch_) std::exchange(watch_, nullptr)->release();
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

}  // namespace tulip::asyncio::detail
