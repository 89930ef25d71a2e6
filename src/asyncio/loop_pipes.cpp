// EventLoop::connect_read_pipe / connect_write_pipe (Python's unix_events): the factory's
// protocol on a pipe transport, returned once connection_made has run.
#include "transports/pipe_read_transport.hpp"
#include "transports/pipe_write_transport.hpp"
#include "tulip/asyncio/events.hpp"

namespace tulip::asyncio {

namespace {

std::shared_ptr<BaseProtocol> make_protocol(EventLoop::ProtocolFactory& factory) {
    std::shared_ptr<BaseProtocol> protocol = factory();
    if (!protocol) throw ValueError("the protocol factory returned no protocol");
    return protocol;
}

// Waits for connection_made; on failure the transport is closed and the error rethrown.
template <class T>
Coro<void> wait_made(Future<void> waiter, const std::shared_ptr<T>& transport) {
    std::exception_ptr failed;
    try {
        co_await waiter;
    } catch (...) {
        failed = std::current_exception();
    }
    if (failed) {
        transport->close();
        std::rethrow_exception(failed);
    }
}

}  // namespace

Coro<std::pair<std::shared_ptr<ReadTransport>, std::shared_ptr<BaseProtocol>>> EventLoop::connect_read_pipe_impl(
    ProtocolFactory factory, int fd) {
    std::shared_ptr<BaseProtocol> protocol = make_protocol(factory);
    Future<void> waiter = create_future<void>();
    std::shared_ptr<ReadTransport> transport = detail::PipeReadTransport::create(*this, fd, protocol, waiter);
    co_await wait_made(std::move(waiter), transport);
    co_return std::pair(std::move(transport), std::move(protocol));
}

Coro<std::pair<std::shared_ptr<WriteTransport>, std::shared_ptr<BaseProtocol>>> EventLoop::connect_write_pipe_impl(
    ProtocolFactory factory, int fd) {
    std::shared_ptr<BaseProtocol> protocol = make_protocol(factory);
    Future<void> waiter = create_future<void>();
    std::shared_ptr<WriteTransport> transport = detail::PipeWriteTransport::create(*this, fd, protocol, waiter);
    co_await wait_made(std::move(waiter), transport);
    co_return std::pair(std::move(transport), std::move(protocol));
}

}  // namespace tulip::asyncio
