// StreamWriter (Python's streams.StreamWriter): a transport plus drain() and wait_closed().
#include <utility>

#include "reader_state.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/streams.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio {

namespace detail {

struct StreamWriterState {
    StreamWriterState(std::shared_ptr<Transport> t, std::shared_ptr<FlowControlMixin> p,
                      std::optional<StreamReader> r)
        : transport(std::move(t)), protocol(std::move(p)), reader(std::move(r)), loop(&get_event_loop()) {}
    StreamWriterState(const StreamWriterState&) = delete;
    StreamWriterState& operator=(const StreamWriterState&) = delete;

    // The last handle is gone: close a transport that is still open, as Python's
    // StreamWriter.__del__ does, so that an abandoned connection does not stay open forever.
    // Not when the loop is gone or closed: the transport could not run its close.
    ~StreamWriterState() {
        if (!loop_is_alive(loop) || loop->is_closed()) return;
        try {
            if (!transport->is_closing()) transport->close();
        } catch (...) {
            // A destructor must not throw; a transport that cannot close has nothing left to do.
        }
    }

    // The reader's exception, or null (also without a reader): read in place, without the
    // copy that StreamReader::exception() returns.
    bool reader_failed() const noexcept { return reader && reader->state().failed(); }

    std::shared_ptr<Transport> transport;
    std::shared_ptr<FlowControlMixin> protocol;
    std::optional<StreamReader> reader;
    EventLoop* loop;
};

}  // namespace detail

namespace {

using State = std::shared_ptr<detail::StreamWriterState>;

Coro<> drain_impl(State s) {
    if (s->reader_failed()) std::rethrow_exception(s->reader->exception());
    // A closing transport loses its connection on a later iteration: yield once so that a
    // `write(); co_await drain();` loop sees the error instead of spinning.
    if (s->transport->is_closing()) co_await sleep(0);
    // drain_helper() returns at once unless writing is paused or the connection is lost: test
    // that here and spare the common drain a second coroutine frame.
    FlowControlMixin& protocol = *s->protocol;
    if (protocol.writing_paused() || protocol.is_connection_lost()) co_await protocol.drain_helper();
}

// drain_impl's frame, set up out of line: inlined, it would cost drain()'s fast path registers.
[[gnu::noinline]] Coro<> start_drain(const State& s) { return drain_impl(s); }

Coro<> wait_closed_impl(State s) { co_await s->protocol->wait_closed(); }

}  // namespace

StreamWriter::StreamWriter(std::shared_ptr<Transport> transport, std::shared_ptr<FlowControlMixin> protocol,
                           std::optional<StreamReader> reader) {
    if (!transport) throw ValueError("StreamWriter needs a transport");
    if (!protocol) throw ValueError("StreamWriter needs a protocol");
    state_ = std::make_shared<detail::StreamWriterState>(std::move(transport), std::move(protocol), std::move(reader));
}

const std::shared_ptr<Transport>& StreamWriter::transport() const noexcept { return state_->transport; }

void StreamWriter::write(std::string_view data) { state_->transport->write(data); }
void StreamWriter::write(std::span<const std::byte> data) { state_->transport->write(data); }
void StreamWriter::writelines(std::span<const std::string_view> lines) { state_->transport->writelines(lines); }
void StreamWriter::writelines(std::initializer_list<std::string_view> lines) {
    state_->transport->writelines(lines);
}
void StreamWriter::write_eof() { state_->transport->write_eof(); }
bool StreamWriter::can_write_eof() const { return state_->transport->can_write_eof(); }

void StreamWriter::close() { state_->transport->close(); }
bool StreamWriter::is_closing() const { return state_->transport->is_closing(); }
Coro<> StreamWriter::wait_closed() const { return wait_closed_impl(state_); }
Coro<> StreamWriter::drain() const {
    // The common drain has nothing to raise, nothing to yield for and nothing to wait for: a
    // finished Coro, without a frame. The same tests as drain_impl's, in the same order.
    const detail::StreamWriterState& s = *state_;
    if (!s.reader_failed() && !s.transport->is_closing()) {
        const FlowControlMixin& protocol = *s.protocol;
        if (!protocol.writing_paused() && !protocol.is_connection_lost()) return Coro<>::ready();
    }
    return start_drain(state_);
}

std::any StreamWriter::get_extra_info(std::string_view name, std::any default_value) const {
    std::any info = state_->transport->get_extra_info(name);
    return info.has_value() ? info : default_value;
}
std::optional<socket::Address> StreamWriter::peername() const { return state_->transport->peername(); }
std::optional<socket::Address> StreamWriter::sockname() const { return state_->transport->sockname(); }

}  // namespace tulip::asyncio
