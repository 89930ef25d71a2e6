// Transports (Python's asyncio/transports.py): the loop's side of a connection. A transport owns
// its socket or pipe and its write buffer; the user talks to it through these interfaces and hears
// from it through a protocol (protocols.hpp).
//
// The class tree is Python's: Transport is both a ReadTransport and a WriteTransport (virtual
// bases, so a Transport& converts to each). Transports are created by the loop
// (create_connection, create_server, connect_read_pipe, ...) and held by std::shared_ptr; the
// loop keeps an open transport alive, so dropping every user reference does not close it.
//
// Every method is for the loop's thread. Implementations override the span overloads and bring
// the string_view ones back into scope with `using WriteTransport::write;` (and likewise for
// writelines and sendto).
#pragma once

#include <any>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "tulip/asyncio/protocols.hpp"
#include "tulip/socket.hpp"

namespace tulip::asyncio {

class BaseTransport : public std::enable_shared_from_this<BaseTransport> {
public:
    BaseTransport() = default;
    BaseTransport(const BaseTransport&) = delete;
    BaseTransport& operator=(const BaseTransport&) = delete;
    virtual ~BaseTransport() = default;

    // Closes the transport: buffered data is still sent, then the protocol's connection_lost(null)
    // runs on the next loop iteration. A second close() does nothing.
    virtual void close() = 0;
    // True once close() or abort() was called or the connection was lost.
    virtual bool is_closing() const noexcept = 0;

    // The protocol (null after connection_lost). set_protocol switches protocols mid-connection,
    // as Python's does (used by start_tls and by the streams layer).
    virtual std::shared_ptr<BaseProtocol> get_protocol() const = 0;
    virtual void set_protocol(std::shared_ptr<BaseProtocol> protocol) = 0;

    // Python's get_extra_info(name, default): "peername", "sockname", "socket" and the like.
    // Returns an empty std::any for a name this transport does not know. The typed accessors
    // below are the same information without the std::any_cast.
    virtual std::any get_extra_info(std::string_view name) const = 0;
    // The peer's / our own address (nullopt where there is none, as for pipes).
    virtual std::optional<socket::Address> peername() const = 0;
    virtual std::optional<socket::Address> sockname() const = 0;
    // The socket the transport owns (null for pipes). Do not read, write or close it directly.
    virtual const socket::Socket* socket() const noexcept = 0;
};

class ReadTransport : public virtual BaseTransport {
public:
    virtual bool is_reading() const noexcept = 0;
    // Stops / restarts calling data_received. Both are idempotent (Python 3.7+).
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;
};

class WriteTransport : public virtual BaseTransport {
public:
    // Writes without blocking: what the kernel does not take at once is buffered and sent as the
    // socket drains. Throws RuntimeError after write_eof(), close() or abort() ("transport is
    // closing"); after the connection was lost, writes are dropped (with a warning after a few, as
    // Python's).
    virtual void write(std::span<const std::byte> data) = 0;
    void write(std::string_view data) { write(std::as_bytes(std::span(data.data(), data.size()))); }
    // Writes several buffers, vectored where the transport can.
    virtual void writelines(std::span<const std::string_view> lines) = 0;
    void writelines(std::initializer_list<std::string_view> lines) {
        writelines(std::span<const std::string_view>(lines.begin(), lines.size()));
    }

    // Shuts down the writing side once the buffer is flushed (not for every transport).
    virtual void write_eof() = 0;
    virtual bool can_write_eof() const noexcept = 0;
    // Closes at once: buffered data is dropped; connection_lost(null) follows.
    virtual void abort() = 0;

    // Bytes buffered and not yet handed to the kernel.
    virtual std::size_t get_write_buffer_size() const noexcept = 0;
    // (low, high) water marks of the write buffer.
    virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;
    // Python's defaults: high 64 KiB; low high/4; with only low given, high is 4 x low. Throws
    // ValueError unless high >= low >= 0. May call pause_writing/resume_writing at once.
    virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                         std::optional<std::size_t> low = std::nullopt) = 0;
};

// A bidirectional stream: TCP, Unix stream sockets, socketpairs.
class Transport : public ReadTransport, public WriteTransport {};

class DatagramTransport : public virtual BaseTransport {
public:
    // Sends one datagram to addr, or to the connected peer when addr is nullopt (then addr, if
    // given, must equal the remote address: ValueError otherwise, as Python's). Never blocks: a
    // datagram the kernel refuses with EAGAIN is buffered.
    virtual void sendto(std::span<const std::byte> data, const std::optional<socket::Address>& addr) = 0;
    void sendto(std::string_view data, const std::optional<socket::Address>& addr = std::nullopt) {
        sendto(std::as_bytes(std::span(data.data(), data.size())), addr);
    }
    // Closes at once: queued datagrams are dropped; connection_lost(null) follows.
    virtual void abort() = 0;
    // Stops / restarts calling datagram_received, as ReadTransport's pair does for data_received.
    // Datagrams that arrive meanwhile wait (the kernel drops what overflows the socket's receive
    // buffer) and are delivered in order on resume. Both are idempotent.
    virtual bool is_reading() const noexcept = 0;
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;
    // Bytes of the datagrams queued and not yet handed to the kernel.
    virtual std::size_t get_write_buffer_size() const noexcept = 0;
    // Water marks of the queue, as WriteTransport's (Python's datagram transport has them too).
    virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;
    virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                         std::optional<std::size_t> low = std::nullopt) = 0;
};

}  // namespace tulip::asyncio
