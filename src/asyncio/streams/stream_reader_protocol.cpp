// StreamReaderProtocol (Python's streams.StreamReaderProtocol): a Protocol that feeds a
// StreamReader and, for servers, starts the client_connected_cb task.
#include <string>
#include <utility>

#include "reader_state.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/streams.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

namespace {

// Python 3.12's done-callback for the client_connected_cb task: a handler that failed or was
// cancelled must not leave its connection open.
void watch_client_task(const Task<>& task, std::weak_ptr<BaseTransport> transport) {
    task.add_done_callback([transport = std::move(transport)](Future<> done) {
        auto t = transport.lock();
        if (done.cancelled()) {
            if (t) t->close();
            return;
        }
        if (std::exception_ptr exc = done.exception()) {
            ExceptionContext context;
            context.message = "Unhandled exception in client_connected_cb";
            context.exception = exc;
            done.get_loop().call_exception_handler(context);
            if (t) t->close();
        }
    });
}

}  // namespace

StreamReaderProtocol::StreamReaderProtocol(StreamReader reader, ClientConnectedCallback client_connected_cb)
    : reader_(std::move(reader)), client_connected_cb_(std::move(client_connected_cb)) {}

void StreamReaderProtocol::connection_made(Transport& transport) {
    reader_.set_transport(transport);
    over_ssl_ = transport.get_extra_info("sslcontext").has_value();
    if (!client_connected_cb_) return;
    // The writer owns the transport and this protocol; the task's frame owns the writer.
    std::shared_ptr<Transport> owned = std::dynamic_pointer_cast<Transport>(transport.shared_from_this());
    StreamWriter writer(owned, shared_from_this(), reader_);
    Task<> task = get_running_loop().create_task(client_connected_cb_(reader_, std::move(writer)));
    watch_client_task(task, owned);
}

void StreamReaderProtocol::data_received(std::string_view data) { reader_.state().feed_data(data); }

std::span<std::byte> StreamReaderProtocol::direct_buffer() noexcept {
    std::span<std::byte> buffer = reader_.state().direct_buffer();
    return buffer.size() >= direct_receive_min ? buffer : std::span<std::byte>();
}

void StreamReaderProtocol::direct_received(std::size_t n) { reader_.state().direct_received(n); }

bool StreamReaderProtocol::eof_received() {
    reader_.feed_eof();
    // TLS cannot half-close: its transport warns when asked to stay open.
    return !over_ssl_;
}

void StreamReaderProtocol::connection_lost(std::exception_ptr exc) {
    if (exc) {
        reader_.set_exception(exc);
    } else {
        reader_.feed_eof();
    }
    // The reader keeps only a plain pointer to the transport, valid until now.
    reader_.state().forget_transport();
    if (!closed_) {
        closed_ = true;
        closed_exception_ = exc;
        close_waiters_.wake_pending(close_waiters_.size());
    }
    FlowControlMixin::connection_lost(std::move(exc));
}

Coro<> StreamReaderProtocol::wait_closed() {
    if (!closed_) {
        detail::Waiter waiter(close_waiters_, get_running_loop());
        co_await waiter.future();
    }
    if (closed_exception_) std::rethrow_exception(closed_exception_);
}

}  // namespace tulip::asyncio
