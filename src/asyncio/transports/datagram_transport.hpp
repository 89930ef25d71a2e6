// The datagram transport over a UDP or Unix datagram socket: Python's
// _SelectorDatagramTransport, on the backend contract, so it runs the same on every backend.
//
// Write path: sendto() tries sendto(2) at once while nothing is queued; a datagram the kernel
// refuses for now (EAGAIN, ENOBUFS) is queued whole with its address and sent, in order, when the
// socket is writable. Datagrams are never split or merged.
// Read path: on readiness, up to kMaxDatagramsPerEvent recvfrom calls into the loop's shared read
// buffer, each handed to datagram_received(view, addr).
// On a completion backend (io_uring) the transport reads and sends through DatagramOps instead:
// one RECVMSG in flight into the endpoint's own receive buffer, and the queued datagrams go out
// one SENDMSG at a time (sendto() with nothing queued still tries the syscall first).
// pause_reading() stops datagram_received; datagrams wait meanwhile (in the socket, or the one a
// cancelled RECVMSG completed with), and arrive in order after resume_reading().
// Errors of sendto/recvfrom (ECONNREFUSED after an ICMP port unreachable, ...) go to
// error_received and the transport stays open, as in Python.
// Lifetime: the loop holds the transport (self_) until connection_lost() has run, or until the
// loop closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <vector>

#include "datagram_ops.hpp"
#include "fd_watch.hpp"
#include "tulip/asyncio/detail/loop_resource.hpp"
#include "tulip/asyncio/futures.hpp"
#include "tulip/asyncio/transports.hpp"
#include "write_flow_control.hpp"

namespace tulip::asyncio {
class EventLoop;
}

namespace tulip::asyncio::detail {

class DatagramSocketTransport final : public DatagramTransport,
                                      private FdWatchOwner,
                                      private DatagramOpsOwner,
                                      private LoopResource {
public:
    // Datagrams read per readiness event at most: other fds get their turn after that many.
    static constexpr int kMaxDatagramsPerEvent = 32;

    // Takes the socket (connected when `remote` is given), makes it non-blocking, and schedules
    // connection_made; then `waiter`, if given, gets its result (or what connection_made threw).
    static std::shared_ptr<DatagramSocketTransport> create(EventLoop& loop, socket::Socket sock,
                                                           std::shared_ptr<DatagramProtocol> protocol,
                                                           std::optional<socket::Address> remote,
                                                           std::optional<Future<void>> waiter = std::nullopt);

    DatagramSocketTransport(EventLoop& loop, socket::Socket sock, std::shared_ptr<DatagramProtocol> protocol,
                            std::optional<socket::Address> remote);
    ~DatagramSocketTransport();

    // BaseTransport
    void close() override;
    bool is_closing() const noexcept override { return closing_; }
    std::shared_ptr<BaseProtocol> get_protocol() const override { return protocol_; }
    void set_protocol(std::shared_ptr<BaseProtocol> protocol) override;
    std::any get_extra_info(std::string_view name) const override;
    // The connected peer (nullopt for a broadcast endpoint's mere default destination, as Python).
    std::optional<socket::Address> peername() const override { return connected_ ? remote_ : std::nullopt; }
    std::optional<socket::Address> sockname() const override;
    const socket::Socket* socket() const noexcept override { return &sock_; }

    // DatagramTransport
    using DatagramTransport::sendto;
    void sendto(std::span<const std::byte> data, const std::optional<socket::Address>& addr) override;
    void abort() override;
    bool is_reading() const noexcept override { return !closing_ && !reading_paused_; }
    void pause_reading() override;
    void resume_reading() override;
    std::size_t get_write_buffer_size() const noexcept override {
        return queued_bytes_ + (ops_ ? ops_->bytes_in_flight() : 0);
    }
    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return flow_.limits(); }
    void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                 std::optional<std::size_t> low = std::nullopt) override;

private:
    struct Datagram {
        std::vector<std::byte> data;
        std::optional<socket::Address> addr;  // nullopt: the connected peer
    };

    // Readiness backends: FdWatch events.
    void on_fd_events(std::uint32_t events) override;
    // Completion backends: DatagramOps results.
    void on_datagram(std::span<const std::byte> data, const sockaddr* from, socklen_t fromlen) override;
    void on_receive_error(int result) override;
    void on_sent(int result) override;
    void loop_closing() noexcept override;

    void start(std::optional<Future<void>> waiter);
    void call_connection_made(std::optional<Future<void>> waiter);
    void read_ready();
    void write_ready();
    void send_next_native();
    // Nothing queued and nothing on its way to the kernel.
    bool write_drained() const noexcept { return queue_.empty() && !(ops_ && ops_->sending()); }
    void deliver(std::span<const std::byte> data, const sockaddr* from, socklen_t fromlen);
    // I/O: one datagram without blocking; 0 when sent, EAGAIN when the kernel has no room now,
    // another errno on failure.
    int send_one(std::span<const std::byte> data, const std::optional<socket::Address>& addr) noexcept;
    void report_error(int err, const char* call);
    void update_reading() noexcept;
    void maybe_pause_protocol();
    void maybe_resume_protocol();
    // A protocol callback threw: report it and force-close, as Python's _fatal_error.
    void fatal_error(std::exception_ptr exc, const char* message);
    void force_close(std::exception_ptr exc);
    void schedule_connection_lost(std::exception_ptr exc);
    void call_connection_lost(std::exception_ptr exc);
    void release_socket() noexcept;

    EventLoop& loop_;
    socket::Socket sock_;
    std::shared_ptr<DatagramProtocol> protocol_;
    std::optional<socket::Address> remote_;  // the default (and only) destination, if any
    bool connected_ = false;                 // the socket is connected to remote_: send() it
    FdWatch* watch_ = nullptr;      // readiness backends
    DatagramOps* ops_ = nullptr;    // completion backends
    std::deque<Datagram> queue_;    // not yet handed to the kernel (nor to ops_)
    std::size_t queued_bytes_ = 0;  // of queue_
    WriteFlowControl flow_;
    std::shared_ptr<DatagramSocketTransport> self_;  // the loop's reference while open
    std::uint32_t conn_lost_ = 0;                    // > 0 once connection_lost is scheduled
    bool closing_ = false;                           // close(), abort() or a fatal error
    bool user_closed_ = false;                       // close() or abort(): sendto is refused
    bool reading_paused_ = false;
    bool protocol_connected_ = false;
};

}  // namespace tulip::asyncio::detail
