// StreamReader: the public handle. The reading coroutines are free functions that take a
// reference to the state, so that their frames own it (a member coroutine would hold only `this`,
// a handle the caller may drop while the read is pending).
#include "tulip/asyncio/streams.hpp"

#include <algorithm>
#include <vector>

#include "reader_state.hpp"

namespace tulip::asyncio {

namespace {

using State = detail::Ref<detail::StreamReaderState>;

Coro<std::string> read_impl(State s, std::ptrdiff_t n) {
    s->raise_if_failed();
    if (n == 0) co_return std::string();
    if (n < 0) {
        // Read limit-sized blocks until EOF: waiting for the whole stream in the buffer would
        // deadlock once it passes 2 x limit and pauses the transport.
        std::string all;
        for (;;) {
            s->raise_if_failed();
            if (s->buffer().empty() && !s->eof()) co_await s->wait_for_data("read");
            std::string block = s->buffer().take(s->limit());
            s->maybe_resume_transport();
            if (block.empty()) break;
            if (all.empty()) {
                all = std::move(block);
            } else {
                all += block;
            }
        }
        co_return all;
    }
    if (s->buffer().empty() && !s->eof()) co_await s->wait_for_data("read");
    std::string data = s->buffer().take(static_cast<std::size_t>(n));
    s->maybe_resume_transport();
    co_return data;
}

Coro<std::string> readexactly_impl(State s, std::ptrdiff_t n) {
    if (n < 0) throw ValueError("readexactly size can not be less than zero");
    s->raise_if_failed();
    const auto want = static_cast<std::size_t>(n);
    if (want == 0) co_return std::string();
    while (s->buffer().size() < want) {
        if (s->eof()) throw IncompleteReadError(s->buffer().take(s->buffer().size()), want);
        co_await s->wait_for_data("readexactly");
    }
    std::string data = s->buffer().take(want);
    s->maybe_resume_transport();
    co_return data;
}

// Owns the separators for the frame's lifetime, sorted shortest first (Python sorts by len so
// that the shortest separator is the one LimitOverrunError refers to).
Coro<std::string> readuntil_impl(State s, std::vector<std::string> separators) {
    if (separators.empty()) throw ValueError("Separator should contain at least one element");
    std::vector<std::string_view> views(separators.begin(), separators.end());
    std::stable_sort(views.begin(), views.end(),
                     [](std::string_view a, std::string_view b) { return a.size() < b.size(); });
    if (views.front().empty()) throw ValueError("Separator should be at least one-byte string");
    co_return co_await s->readuntil(views);
}

Coro<std::string> readuntil_one(State s, std::string separator) {
    if (separator.empty()) throw ValueError("Separator should be at least one-byte string");
    const std::string_view one[] = {separator};
    co_return co_await s->readuntil(one);
}

Coro<std::string> readline_impl(State s) {
    static constexpr std::string_view newline[] = {"\n"};
    std::optional<LimitOverrunError> overrun;
    try {
        co_return co_await s->readuntil(newline);
    } catch (IncompleteReadError& e) {
        co_return std::move(e.partial);
    } catch (const LimitOverrunError& e) {
        overrun.emplace(e);
    }
    // Drop the over-long line: up to its newline if that has arrived, else all that is here.
    detail::StreamBuffer& buffer = s->buffer();
    if (buffer.view().substr(overrun->consumed).starts_with('\n')) {
        buffer.discard(overrun->consumed + 1);
    } else {
        buffer.clear();
    }
    s->maybe_resume_transport();
    throw ValueError(overrun->what());
}

Coro<std::optional<std::string>> anext_impl(State s) {
    std::string line = co_await readline_impl(s);
    if (line.empty()) co_return std::nullopt;
    co_return std::optional<std::string>(std::move(line));
}

}  // namespace

StreamReader::StreamReader(std::size_t limit) {
    if (limit == 0) throw ValueError("Limit cannot be <= 0");
    state_ = detail::Ref<detail::StreamReaderStateBase>(new detail::StreamReaderState(limit));
}

void StreamReader::feed_data(std::string_view data) { state().feed_data(data); }
void StreamReader::feed_eof() { state().feed_eof(); }
void StreamReader::set_exception(std::exception_ptr exc) { state().set_exception(std::move(exc)); }
void StreamReader::set_transport(ReadTransport& transport) { state().set_transport(transport); }

std::exception_ptr StreamReader::exception() const noexcept { return state().exception(); }
bool StreamReader::at_eof() const noexcept { return state().eof() && state().buffer().empty(); }
std::size_t StreamReader::limit() const noexcept { return state().limit(); }
std::string_view StreamReader::buffered() const noexcept { return state().buffer().view(); }

Coro<std::string> StreamReader::read(std::ptrdiff_t n) const { return read_impl(State(&state()), n); }
Coro<std::string> StreamReader::readline() const { return readline_impl(State(&state())); }
Coro<std::string> StreamReader::readexactly(std::ptrdiff_t n) const { return readexactly_impl(State(&state()), n); }
Coro<std::string> StreamReader::readuntil(std::string_view separator) const {
    return readuntil_one(State(&state()), std::string(separator));
}
Coro<std::string> StreamReader::readuntil(std::initializer_list<std::string_view> separators) const {
    return readuntil(std::span<const std::string_view>(separators.begin(), separators.size()));
}
Coro<std::string> StreamReader::readuntil(std::span<const std::string_view> separators) const {
    return readuntil_impl(State(&state()), std::vector<std::string>(separators.begin(), separators.end()));
}
Coro<std::optional<std::string>> StreamReader::anext() const { return anext_impl(State(&state())); }

}  // namespace tulip::asyncio
