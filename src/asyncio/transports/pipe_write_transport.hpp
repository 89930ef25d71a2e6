// The write end of a pipe (Python's unix_events._UnixWritePipeTransport): a pipe, a FIFO, a
// socket or a character device that the loop writes to without blocking.
//
// write() tries write(2) at once and buffers only what the pipe did not take (WriteBuffer); the
// buffer goes out vectored (writev) as the pipe drains, with Python's water marks. write_eof()
// and close() flush the buffer, then close the fd and call connection_lost(null); abort() drops
// the buffer. A write to a pipe whose read end is closed is connection_lost(BrokenPipeError),
// once, and never a SIGPIPE (the signal is blocked around each write).
//
// The read end closing is noticed even while nothing is written: for a FIFO or a socket the
// write end is also watched for readability, as Python does; Linux reports the closed read end
// as an error there. With data still buffered that is a BrokenPipeError, otherwise a plain close.
//
// The transport owns the fd from creation. It is a Transport so that
// Protocol::connection_made(Transport&) can take it; its read half does nothing (the loop hands it
// out as a WriteTransport).
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>

#include "fd_watch.hpp"
#include "tulip/asyncio/detail/loop_resource.hpp"
#include "tulip/asyncio/futures.hpp"
#include "tulip/asyncio/transports.hpp"
#include "write_buffer.hpp"
#include "write_flow_control.hpp"

namespace tulip::asyncio::detail {

class PipeWriteTransport final : public Transport, private FdWatchOwner, private LoopResource {
public:
    // Checks the fd (ValueError for a regular file; the fd then stays the caller's), makes it
    // non-blocking, takes it, and schedules connection_made; `waiter` then gets its result.
    static std::shared_ptr<PipeWriteTransport> create(EventLoop& loop, int fd, std::shared_ptr<BaseProtocol> protocol,
                                                      std::optional<Future<void>> waiter = std::nullopt);

    PipeWriteTransport(EventLoop& loop, int fd, std::shared_ptr<BaseProtocol> protocol, bool watch_reader);
    ~PipeWriteTransport();

    // BaseTransport
    void close() override;
    bool is_closing() const noexcept override { return closing_; }
    std::shared_ptr<BaseProtocol> get_protocol() const override { return protocol_; }
    void set_protocol(std::shared_ptr<BaseProtocol> protocol) override { protocol_ = std::move(protocol); }
    // "pipe": the fd (int) while it is open.
    std::any get_extra_info(std::string_view name) const override;
    std::optional<socket::Address> peername() const override { return std::nullopt; }
    std::optional<socket::Address> sockname() const override { return std::nullopt; }
    const socket::Socket* socket() const noexcept override { return nullptr; }

    // ReadTransport: a write pipe does not read; is_reading() is false and pausing does nothing.
    bool is_reading() const noexcept override { return false; }
    void pause_reading() override {}
    void resume_reading() override {}

    // WriteTransport
    using WriteTransport::write;
    using WriteTransport::writelines;
    void write(std::span<const std::byte> data) override;
    void writelines(std::span<const std::string_view> lines) override;
    void write_eof() override;
    bool can_write_eof() const noexcept override { return true; }
    void abort() override;
    std::size_t get_write_buffer_size() const noexcept override { return buffer_.size(); }
    std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return flow_.limits(); }
    void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                 std::optional<std::size_t> low = std::nullopt) override;

private:
    void on_fd_events(std::uint32_t events) override;
    void loop_closing() noexcept override;

    void call_connection_made(std::optional<Future<void>> waiter);
    void reader_closed();
    void write_ready();
    // I/O: bytes written, 0 on EAGAIN, -errno on failure; SIGPIPE blocked.
    std::ptrdiff_t write_some(std::span<const std::byte> data) noexcept;
    std::ptrdiff_t write_buffered() noexcept;
    void maybe_pause_protocol();
    void maybe_resume_protocol();
    void fatal_error(std::exception_ptr exc, const char* message);
    void force_close(std::exception_ptr exc);
    void schedule_connection_lost(std::exception_ptr exc);
    void call_connection_lost(std::exception_ptr exc);
    void release_fd() noexcept;

    EventLoop& loop_;
    int fd_;
    std::shared_ptr<BaseProtocol> protocol_;
    FdWatch* watch_ = nullptr;
    WriteBuffer buffer_;
    WriteFlowControl flow_;
    std::shared_ptr<PipeWriteTransport> self_;  // the loop's reference while open
    std::uint32_t conn_lost_ = 0;               // > 0 once connection_lost is scheduled
    bool watch_reader_;                         // watch for the read end closing (FIFO, socket)
    bool closing_ = false;                      // write_eof(), close(), abort() or a fatal error
    bool user_closed_ = false;                  // write_eof(), close() or abort(): writes are refused
    bool connected_ = false;                    // connection_made() ran
};

}  // namespace tulip::asyncio::detail
