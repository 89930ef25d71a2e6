// The stream transport over a connected socket (TCP, Unix stream, socketpair): Python's
// _SelectorSocketTransport, on the backend contract, so it runs the same on every backend.
//
// Read path: on readiness, one recv into the loop's shared read buffer and data_received(view)
// (or get_buffer/recv/buffer_updated for a BufferedProtocol); no per-connection read buffer. A
// protocol that is a DirectReceiver (the streams' protocol) may offer a buffer of its own for
// the next recv instead.
// Write path: write() tries send() at once and buffers only what the kernel did not take; the
// buffer goes out vectored (sendmsg, MSG_NOSIGNAL) when the socket drains.
// On a completion backend (io_uring), unless the protocol is a DirectReceiver (whose reads are
// better served by readiness there too), the transport reads and sends through StreamOps instead:
// a multishot recv on provided buffers (an idle connection pins no read buffer) and one vectored
// send at a time for what the kernel did not take at once (a write with nothing queued still
// tries send() first, so that nothing is copied when it all goes out).
// Lifetime: the loop holds the transport (self_) from creation until connection_lost() has run,
// or until the loop closes. All socket I/O is in the functions marked "I/O".
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>

#include "fd_watch.hpp"
#include "stream_ops.hpp"
#include "tulip/asyncio/detail/direct_receiver.hpp"
#include "tulip/asyncio/detail/loop_resource.hpp"
#include "tulip/asyncio/futures.hpp"
#include "tulip/asyncio/transports.hpp"
#include "write_buffer.hpp"
#include "write_flow_control.hpp"

namespace tulip::asyncio {
class EventLoop;
class Server;
}  // namespace tulip::asyncio

namespace tulip::asyncio::detail {

class SocketTransport final : public Transport, private FdWatchOwner, private StreamOpsOwner, private LoopResource {
public:
    // Takes the (connected) socket, makes it non-blocking, and schedules connection_made; then
    // `waiter`, if given, gets its result (or the exception connection_made threw).
    static std::shared_ptr<SocketTransport> create(EventLoop& loop, socket::Socket sock,
                                                   std::shared_ptr<BaseProtocol> protocol,
                                                   std::optional<Future<void>> waiter = std::nullopt,
                                                   std::shared_ptr<Server> server = nullptr);

    SocketTransport(EventLoop& loop, socket::Socket sock, std::shared_ptr<BaseProtocol> protocol,
                    std::shared_ptr<Server> server);
    ~SocketTransport();

    // BaseTransport
    void close() override;
    bool is_closing() const noexcept override { return closing_; }
    std::shared_ptr<BaseProtocol> get_protocol() const override { return protocol_; }
    void set_protocol(std::shared_ptr<BaseProtocol> protocol) override;
    std::any get_extra_info(std::string_view name) const override;
    std::optional<socket::Address> peername() const override;
    std::optional<socket::Address> sockname() const override;
    const socket::Socket* socket() const noexcept override { return &sock_; }

    // ReadTransport
    bool is_reading() const noexcept override { return !closing_ && !reading_paused_; }
    void pause_reading() override;
    void resume_reading() override;

    // WriteTransport
    using WriteTransport::write;
    using WriteTransport::writelines;
    void write(std::span<const std::byte> data) override;
    void writelines(std::span<const std::string_view> lines) override;
    void write_eof() override;
    bool can_write_eof() const noexcept override { return true; }
    void abort() override;
    std::size_t get_write_buffer_size() const noexcept override {
        return buffer_.size() + (ops_ ? ops_->bytes_in_flight() : 0);
    }
    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return flow_.limits(); }
    void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                 std::optional<std::size_t> low = std::nullopt) override;

private:
    // Readiness backends: FdWatch events.
    void on_fd_events(std::uint32_t events) override;
    // Completion backends: StreamOps results.
    void on_received(std::span<const std::byte> data) override;
    void on_batch_end() override;
    void on_read_end(int result) override;
    void on_sent(int result) override;
    void loop_closing() noexcept override;

    void start(std::optional<Future<void>> waiter);
    void call_connection_made(std::optional<Future<void>> waiter);
    void read_ready();
    // I/O: one recv into buf; the bytes received, or 0 when there is nothing to hand over (it
    // would block, or EOF or an error, which it handles).
    std::size_t receive(std::span<std::byte> buf);
    void read_ready_stream();
    // A DirectReceiver's read: into its buffer when it offers one, else read_ready_stream().
    void read_ready_direct();
    void read_ready_buffered();
    void eof_ready();
    void write_ready();
    void write_native(std::span<const std::byte> data);
    void send_native();
    // Nothing buffered and nothing on its way to the kernel.
    bool write_drained() const noexcept { return buffer_.empty() && !(ops_ && ops_->sending()); }
    void stop_write_watch() noexcept;
    void after_drained();
    // close() without marking the transport closed by the user.
    void begin_close();
    // I/O: send without blocking; bytes sent, 0 on EAGAIN, -errno on failure.
    std::ptrdiff_t send_some(std::span<const std::byte> data) noexcept;
    std::ptrdiff_t send_buffered() noexcept;
    void update_reading() noexcept;
    void maybe_pause_protocol();
    void maybe_resume_protocol();
    // Python's _fatal_error: reports (except for connection resets and the like) and force-closes.
    void fatal_error(std::exception_ptr exc, const char* message);
    void fatal_os_error(int err, const char* call);
    void force_close(std::exception_ptr exc);
    void schedule_connection_lost(std::exception_ptr exc);
    void call_connection_lost(std::exception_ptr exc);
    void release_socket() noexcept;
    void set_protocol_pointers() noexcept;

    EventLoop& loop_;
    socket::Socket sock_;
    std::shared_ptr<BaseProtocol> protocol_;
    Protocol* stream_ = nullptr;            // protocol_ as a Protocol, or null
    BufferedProtocol* buffered_ = nullptr;  // protocol_ as a BufferedProtocol, or null
    DirectReceiver* direct_ = nullptr;      // stream_ as a DirectReceiver, or null
    FdWatch* watch_ = nullptr;              // readiness backends
    StreamOps* ops_ = nullptr;              // completion backends
    WriteBuffer buffer_;
    WriteFlowControl flow_;
    std::shared_ptr<SocketTransport> self_;  // the loop's reference while open
    std::shared_ptr<Server> server_;
    std::uint32_t conn_lost_ = 0;            // > 0 once connection_lost is scheduled
    bool closing_ = false;                   // close(), abort() or a fatal error
    bool user_closed_ = false;               // close() or abort() by the user: writes are refused
    bool eof_ = false;                       // write_eof() asked
    bool eof_received_ = false;              // the peer's EOF was seen
    bool reading_paused_ = false;
    bool protocol_connected_ = false;        // connection_made() ran
};

}  // namespace tulip::asyncio::detail
