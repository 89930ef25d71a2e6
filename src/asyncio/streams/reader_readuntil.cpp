// StreamReaderState::readuntil: Python 3.13's StreamReader.readuntil, for one separator or
// several (the shortest match wins).
#include <algorithm>
#include <optional>

#include "reader_state.hpp"
#include "tulip/asyncio/exceptions.hpp"

namespace tulip::asyncio::detail {

namespace {

struct Match {
    std::size_t start;
    std::size_t end;
};

// The match that ends first among the separators, searching from offset.
std::optional<Match> find_first_end(std::string_view buffer, std::span<const std::string_view> separators,
                                    std::size_t offset) {
    std::optional<Match> best;
    for (std::string_view sep : separators) {
        std::size_t at = buffer.find(sep, offset);
        if (at == std::string_view::npos) continue;
        std::size_t end = at + sep.size();
        if (!best || end < best->end) best = Match{at, end};
    }
    return best;
}

}  // namespace

Coro<std::string> StreamReaderState::readuntil(std::span<const std::string_view> separators) {
    raise_if_failed();
    const std::size_t min_seplen = separators.front().size();
    const std::size_t max_seplen = separators.back().size();

    // `offset`: how many leading bytes of the buffer are known to hold no separator. After a
    // failed search everything but the last max_seplen - 1 bytes is known clean: a separator
    // may start there and end in data still to come.
    std::size_t offset = 0;
    std::optional<Match> match;
    for (;;) {
        const std::size_t buflen = buffer_.size();
        if (buflen >= offset + min_seplen) {
            match = find_first_end(buffer_.view(), separators, offset);
            if (match) break;
            offset = buflen + 1 > max_seplen ? buflen + 1 - max_seplen : 0;
            if (offset > limit_)
                throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
        }
        // The last chunk may have completed a separator together with EOF: look first.
        if (eof_) throw IncompleteReadError(buffer_.take(buffer_.size()), 0, /*expected_known=*/false);
        co_await wait_for_data("readuntil");
    }
    if (match->start > limit_)
        throw LimitOverrunError("Separator is found, but chunk is longer than limit", match->start);
    std::string chunk = buffer_.take(match->end);
    maybe_resume_transport();
    co_return chunk;
}

}  // namespace tulip::asyncio::detail
