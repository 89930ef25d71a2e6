// The read end of a pipe (Python's unix_events._UnixReadPipeTransport): a pipe, a FIFO, a
// socket or a character device that the loop reads and hands to a Protocol's data_received.
//
// Each readiness event is one read(2) into the loop's shared read buffer. read() returning 0 is
// EOF: eof_received() runs (its return value is ignored, as in Python: a pipe has no writing side
// to keep open), then the transport closes and connection_lost(null) follows.
//
// The transport owns the fd from creation: it closes it when the connection is lost or the loop
// closes. It is a Transport so that Protocol::connection_made(Transport&) can take it; its write
// half throws RuntimeError (the loop hands it out as a ReadTransport).
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>

#include "fd_watch.hpp"
#include "tulip/asyncio/detail/loop_resource.hpp"
#include "tulip/asyncio/futures.hpp"
#include "tulip/asyncio/transports.hpp"

namespace tulip::asyncio::detail {

class PipeReadTransport final : public Transport, private FdWatchOwner, private LoopResource {
public:
    // Checks the fd (ValueError for a regular file; the fd then stays the caller's), makes it
    // non-blocking, takes it, and schedules connection_made; `waiter` then gets its result.
    static std::shared_ptr<PipeReadTransport> create(EventLoop& loop, int fd, std::shared_ptr<BaseProtocol> protocol,
                                                     std::optional<Future<void>> waiter = std::nullopt);

    PipeReadTransport(EventLoop& loop, int fd, std::shared_ptr<BaseProtocol> protocol);
    ~PipeReadTransport();

    // BaseTransport
    void close() override;
    bool is_closing() const noexcept override { return closing_; }
    std::shared_ptr<BaseProtocol> get_protocol() const override { return protocol_; }
    void set_protocol(std::shared_ptr<BaseProtocol> protocol) override;
    // "pipe": the fd (int) while it is open.
    std::any get_extra_info(std::string_view name) const override;
    std::optional<socket::Address> peername() const override { return std::nullopt; }
    std::optional<socket::Address> sockname() const override { return std::nullopt; }
    const socket::Socket* socket() const noexcept override { return nullptr; }

    // ReadTransport
    bool is_reading() const noexcept override { return !closing_ && !paused_; }
    void pause_reading() override;
    void resume_reading() override;

    // WriteTransport: a read pipe cannot write; these throw RuntimeError.
    using WriteTransport::write;
    using WriteTransport::writelines;
    void write(std::span<const std::byte> data) override;
    void writelines(std::span<const std::string_view> lines) override;
    void write_eof() override;
    bool can_write_eof() const noexcept override { return false; }
    void abort() override;
    std::size_t get_write_buffer_size() const noexcept override { return 0; }
    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return {0, 0}; }
    void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                 std::optional<std::size_t> low = std::nullopt) override;

private:
    void on_fd_events(std::uint32_t events) override;
    void loop_closing() noexcept override;

    void call_connection_made(std::optional<Future<void>> waiter);
    void read_ready();
    void update_reading() noexcept;
    void fatal_error(std::exception_ptr exc, const char* message);
    void schedule_connection_lost(std::exception_ptr exc);
    void call_connection_lost(std::exception_ptr exc);
    void release_fd() noexcept;

    EventLoop& loop_;
    int fd_;
    std::shared_ptr<BaseProtocol> protocol_;
    Protocol* stream_ = nullptr;
    FdWatch* watch_ = nullptr;
    std::shared_ptr<PipeReadTransport> self_;  // the loop's reference while open
    bool closing_ = false;
    bool paused_ = false;
    bool connected_ = false;  // connection_made() ran
    bool lost_ = false;       // connection_lost is scheduled
};

}  // namespace tulip::asyncio::detail
