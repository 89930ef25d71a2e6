// Protocols (Python's asyncio/protocols.py): the callback half of asyncio. A protocol is the
// user's object that a transport calls when something happens on its connection.
//
//     class Echo : public asyncio::Protocol {
//         asyncio::Transport* transport_ = nullptr;
//         void connection_made(asyncio::Transport& t) override { transport_ = &t; }
//         void data_received(std::string_view data) override { transport_->write(data); }
//     };
//
// Lifetime. Protocols are held by std::shared_ptr: the factory given to create_connection /
// create_server returns one, and the transport keeps it until connection_lost() has returned.
// The transport passed to connection_made() stays valid at least until connection_lost() returns;
// a protocol may keep a plain pointer to it (as above) or, to keep it longer, its
// shared_from_this().
//
// Callbacks run on the loop's thread, in this order (Python's state machine):
//   connection_made -> data_received* -> eof_received? -> connection_lost
// pause_writing/resume_writing may come between connection_made and connection_lost. An exception
// thrown from a callback goes to the loop's exception handler and the transport is closed.
#pragma once

#include <cstddef>
#include <exception>
#include <span>
#include <string_view>

namespace tulip::socket {
class Address;
}

namespace tulip::asyncio {

class Transport;
class DatagramTransport;
class ReadTransport;
class WriteTransport;

class BaseProtocol {
public:
    BaseProtocol() = default;
    BaseProtocol(const BaseProtocol&) = delete;
    BaseProtocol& operator=(const BaseProtocol&) = delete;
    virtual ~BaseProtocol() = default;

    // The connection is gone: `exc` is null for a normal close or EOF, otherwise the error
    // (ConnectionResetError, ...). Called exactly once per connection_made().
    virtual void connection_lost(std::exception_ptr exc) { (void)exc; }

    // The transport's write buffer went above its high-water mark / back down to its low-water
    // mark. Calls alternate, starting with pause_writing.
    virtual void pause_writing() {}
    virtual void resume_writing() {}
};

// A stream protocol (TCP, Unix sockets, pipes).
class Protocol : public BaseProtocol {
public:
    virtual void connection_made(Transport& transport) { (void)transport; }
    // Received bytes. The view is valid only during the call: copy what is needed later.
    virtual void data_received(std::string_view data) { (void)data; }
    // The peer sent EOF (shut down its writing side). Return false (the default) to have the
    // transport close itself; true to keep it open for writing (then the protocol closes it).
    virtual bool eof_received() { return false; }
};

// A stream protocol that receives into its own buffer (Python 3.7's BufferedProtocol): the
// transport asks for a buffer, reads into it, and says how much it filled. No copy is made.
class BufferedProtocol : public BaseProtocol {
public:
    virtual void connection_made(Transport& transport) { (void)transport; }
    // A buffer to read into; sizehint is advisory (0: any size). Must not be empty.
    virtual std::span<std::byte> get_buffer(std::size_t sizehint) = 0;
    // nbytes of the last buffer were filled.
    virtual void buffer_updated(std::size_t nbytes) = 0;
    virtual bool eof_received() { return false; }
};

// A datagram protocol (UDP, Unix datagram sockets).
class DatagramProtocol : public BaseProtocol {
public:
    virtual void connection_made(DatagramTransport& transport) { (void)transport; }
    // One datagram and where it came from; the view is valid only during the call.
    virtual void datagram_received(std::string_view data, const socket::Address& addr) {
        (void)data;
        (void)addr;
    }
    // A send or receive failed (for example ConnectionRefusedError after an ICMP port
    // unreachable on a connected UDP socket). The transport stays open.
    virtual void error_received(std::exception_ptr exc) { (void)exc; }
};

}  // namespace tulip::asyncio
