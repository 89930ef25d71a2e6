// Streams (Python's asyncio/streams.py) on an in-memory transport: StreamReader,
// StreamReaderProtocol, FlowControlMixin and StreamWriter. Cases ported from CPython's
// test_asyncio/test_streams.py keep its names.
#include "tulip/asyncio/streams.hpp"

#include <array>
#include <cstddef>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "contention.hpp"
#include "fake_transport.hpp"
#include "loop_fixture.hpp"
#include "tulip/asyncio.hpp"

namespace asyncio = tulip::asyncio;
using asyncio::IncompleteReadError;
using asyncio::LimitOverrunError;
using asyncio::StreamReader;
using asyncio::StreamReaderProtocol;
using asyncio::StreamWriter;
using tulip::testing::ends_cancelled;
using tulip::testing::FakeTransport;
using tulip::testing::LoopFixture;

namespace {

const std::string DATA = "line1\nline2\nline3\n";

// A reader, its protocol, a fake transport connected to it, and a writer: what
// open_connection() returns, on an in-memory connection.
struct Stream {
    StreamReader reader;
    std::shared_ptr<StreamReaderProtocol> protocol;
    std::shared_ptr<FakeTransport> transport;
    StreamWriter writer;
};

Stream connect_stream(std::size_t limit = asyncio::stream_default_limit) {
    StreamReader reader(limit);
    auto protocol = std::make_shared<StreamReaderProtocol>(reader);
    auto transport = FakeTransport::connect(protocol);
    StreamWriter writer(transport, protocol, reader);
    return Stream{reader, protocol, transport, writer};
}

// Lets the loop run `turns` iterations (callbacks scheduled with call_soon run).
asyncio::Coro<> turns(int n = 3) {
    for (int i = 0; i < n; ++i) co_await asyncio::sleep(0);
}

template <class F>
asyncio::Coro<> feed_soon(F fn) {
    co_await asyncio::sleep(0);
    fn();
}

}  // namespace

// --- construction and state -------------------------------------------------------------

TEST_CASE("streams: StreamReader limit must be positive", "[streams]") {
    CHECK_THROWS_AS(StreamReader(0), tulip::ValueError);
    CHECK_THROWS_WITH(StreamReader(0), "Limit cannot be <= 0");
    CHECK(StreamReader().limit() == 65536);
    CHECK(StreamReader(10).limit() == 10);
}

TEST_CASE("streams: feed_data, feed_eof and at_eof", "[streams]") {
    StreamReader r;
    CHECK_FALSE(r.at_eof());
    r.feed_data("");
    CHECK(r.buffered().empty());
    r.feed_data("abc");
    r.feed_eof();
    CHECK(r.buffered() == "abc");
    CHECK_FALSE(r.at_eof());  // data left
    CHECK_THROWS_AS(r.feed_data("x"), tulip::RuntimeError);
    CHECK_THROWS_WITH(r.feed_data("x"), Catch::Matchers::Contains("after feed_eof"));
}

TEST_CASE("streams: copies of a StreamReader share one stream", "[streams]") {
    StreamReader a;
    StreamReader b = a;
    a.feed_data("shared");
    CHECK(b.buffered() == "shared");
}

// --- read ---------------------------------------------------------------------------------

TEST_CASE_METHOD(LoopFixture, "streams: test_read_zero", "[streams]") {
    StreamReader r;
    r.feed_data(DATA);
    std::string data = run(r.read(0));
    CHECK(data.empty());
    CHECK(r.buffered() == DATA);
}

TEST_CASE_METHOD(LoopFixture, "streams: test_read waits for data, then returns what came", "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(r.read(30));
        co_await feed_soon([&] { r.feed_data(DATA); });
        co_return co_await t;
    };
    CHECK(run(body()) == DATA);
    CHECK(r.buffered().empty());
}

TEST_CASE_METHOD(LoopFixture, "streams: test_read_line_breaks and a read of part of the buffer", "[streams]") {
    StreamReader r;
    r.feed_data("line1");
    r.feed_data("line2");
    std::string first = run(r.read(5));
    CHECK(first == "line1");
    CHECK(r.buffered() == "line2");
}

TEST_CASE_METHOD(LoopFixture, "streams: test_read_eof", "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(r.read(1024));
        co_await feed_soon([&] { r.feed_eof(); });
        co_return co_await t;
    };
    CHECK(run(body()).empty());
    CHECK(r.at_eof());
    std::string again = run(r.read(10));
    CHECK(again.empty());
}

TEST_CASE_METHOD(LoopFixture, "streams: test_read_until_eof: read(-1) collects every chunk", "[streams]") {
    StreamReader r(16);
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(r.read());
        co_await asyncio::sleep(0);
        r.feed_data("chunk1\n");
        co_await asyncio::sleep(0);
        r.feed_data(std::string(100, 'x'));  // more than 2 x limit in one go
        co_await asyncio::sleep(0);
        r.feed_data("chunk2");
        r.feed_eof();
        co_return co_await t;
    };
    CHECK(run(body()) == "chunk1\n" + std::string(100, 'x') + "chunk2");
    CHECK(r.at_eof());
}

TEST_CASE_METHOD(LoopFixture, "streams: test_read_exception", "[streams]") {
    StreamReader r;
    r.feed_data("line\n");
    std::string data = run(r.read(2));
    CHECK(data == "li");
    r.set_exception(std::make_exception_ptr(tulip::ValueError("boom")));
    // Raised at once, although data is still buffered (Python's order of checks).
    CHECK_THROWS_AS(run(r.read(2)), tulip::ValueError);
    CHECK_THROWS_WITH(run(r.read(-1)), "boom");
    CHECK(r.buffered() == "ne\n");
}

// --- readline -------------------------------------------------------------------------------

TEST_CASE_METHOD(LoopFixture, "streams: test_readline with the line split across feeds", "[streams]") {
    StreamReader r;
    r.feed_data("chunk1 ");
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(r.readline());
        co_await asyncio::sleep(0);
        r.feed_data("chunk2 ");
        co_await asyncio::sleep(0);
        r.feed_data("chunk3 ");
        co_await asyncio::sleep(0);
        r.feed_data("\n chunk4");
        co_return co_await t;
    };
    CHECK(run(body()) == "chunk1 chunk2 chunk3 \n");
    CHECK(r.buffered() == " chunk4");
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readline_limit_with_existing_data", "[streams]") {
    // CPython's case: the limit applies to the line without its newline.
    {
        StreamReader r(3);
        r.feed_data("li");
        r.feed_data("ne1\nline2\n");
        CHECK_THROWS_AS(run(r.readline()), tulip::ValueError);
        // The newline was there: only the long line is dropped.
        CHECK(r.buffered() == "line2\n");
    }
    {
        StreamReader r(3);
        r.feed_data("li");
        r.feed_data("ne1");
        r.feed_data("li");
        CHECK_THROWS_AS(run(r.readline()), tulip::ValueError);
        // No newline yet: the whole buffer is dropped.
        CHECK(r.buffered().empty());
    }
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readline_limit", "[streams]") {
    auto feed_soon_then_readline = [&](StreamReader r, std::vector<std::string_view> pieces) {
        loop().call_soon([r, pieces]() mutable {
            for (std::string_view p : pieces) r.feed_data(p);
            r.feed_eof();
        });
        return run(r.readline());
    };
    {
        StreamReader r(7);
        CHECK_THROWS_AS(feed_soon_then_readline(r, {"chunk1", "chunk2", "chunk3\n"}), tulip::ValueError);
        // The buffer had just one line of data, and after raising a ValueError it is empty.
        CHECK(r.buffered().empty());
    }
    {
        StreamReader r(7);
        CHECK_THROWS_AS(feed_soon_then_readline(r, {"chunk1", "chunk2\n", "chunk3\n"}), tulip::ValueError);
        CHECK(r.buffered() == "chunk3\n");
    }
    // The limit is strict.
    StreamReader r(7);
    r.feed_data("1234567\n");
    std::string line = run(r.readline());
    CHECK(line == "1234567\n");
    CHECK(r.buffered().empty());
    r.feed_data("12345678\n");
    CHECK_THROWS_AS(run(r.readline()), tulip::ValueError);
    CHECK(r.buffered().empty());
    r.feed_data("12345678");
    CHECK_THROWS_AS(run(r.readline()), tulip::ValueError);
    CHECK(r.buffered().empty());
}

TEST_CASE_METHOD(LoopFixture, "streams: readline overrun while waiting, then the stream is usable",
                 "[streams]") {
    StreamReader r(7);
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(r.readline());
        co_await asyncio::sleep(0);
        r.feed_data("chunk1");
        r.feed_data("chunk2");
        co_await asyncio::sleep(0);
        r.feed_data("chunk3\n");
        bool raised = false;
        try {
            co_await t;
        } catch (const tulip::ValueError& e) {
            raised = true;
            CHECK(std::string(e.what()) == "Separator is not found, and chunk exceed the limit");
        }
        CHECK(raised);
        // CPython: buffer == b'' would be wrong here since the task saw "chunk1chunk2" then
        // overran before chunk3 came; what arrived afterwards is still there.
        CHECK(r.buffered() == "chunk3\n");
        std::string next = co_await r.readline();
        CHECK(next == "chunk3\n");
        r.feed_data("ok\n");
        std::string after = co_await r.readline();
        CHECK(after == "ok\n");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: readline with the line exactly at the limit", "[streams]") {
    StreamReader r(5);
    r.feed_data("12345\n123456\n");
    std::string line = run(r.readline());
    CHECK(line == "12345\n");  // the limit does not count the separator
    CHECK_THROWS_WITH(run(r.readline()), "Separator is found, but chunk is longer than limit");
    CHECK(r.buffered().empty());
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readline_nolimit_nowait and test_readline_eof", "[streams]") {
    StreamReader r;
    r.feed_data(DATA.substr(0, 6));
    r.feed_data(DATA.substr(6));
    std::string l1 = run(r.readline());
    CHECK(l1 == "line1\n");
    CHECK(r.buffered() == "line2\nline3\n");

    StreamReader e;
    e.feed_data("some data");
    e.feed_eof();
    std::string partial = run(e.readline());
    CHECK(partial == "some data");
    std::string empty = run(e.readline());
    CHECK(empty.empty());
    CHECK(e.at_eof());
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readline_read_byte_count", "[streams]") {
    StreamReader r;
    r.feed_data(DATA);
    std::string line = run(r.readline());
    std::string rest = run(r.read(7));
    CHECK(line == "line1\n");
    CHECK(rest == "line2\nl");
    CHECK(r.buffered() == "ine3\n");
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readline_exception", "[streams]") {
    StreamReader r;
    r.feed_data("line\n");
    std::string line = run(r.readline());
    CHECK(line == "line\n");
    r.set_exception(std::make_exception_ptr(tulip::ValueError("boom")));
    CHECK_THROWS_AS(run(r.readline()), tulip::ValueError);
    CHECK(r.buffered().empty());
}

// --- readuntil ------------------------------------------------------------------------------

TEST_CASE_METHOD(LoopFixture, "streams: test_readuntil_separator: empty separators are refused", "[streams]") {
    StreamReader r;
    CHECK_THROWS_AS(run(r.readuntil("")), tulip::ValueError);
    CHECK_THROWS_WITH(run(r.readuntil("")), "Separator should be at least one-byte string");
    CHECK_THROWS_WITH(run(r.readuntil({"a", ""})), "Separator should be at least one-byte string");
    CHECK_THROWS_WITH(run(r.readuntil(std::span<const std::string_view>())),
                      "Separator should contain at least one element");
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readuntil_multi_chunks", "[streams]") {
    StreamReader r;
    r.feed_data("lineAAA");
    std::string a = run(r.readuntil("AAA"));
    CHECK(a == "lineAAA");
    CHECK(r.buffered().empty());

    r.feed_data("lineAAA");
    r.feed_data("xxx");
    std::string b = run(r.readuntil("AAA"));
    CHECK(b == "lineAAA");
    CHECK(r.buffered() == "xxx");
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readuntil_multi_chunks_1: separator split across feeds",
                 "[streams]") {
    StreamReader r;
    auto read_after = [&](std::initializer_list<std::string_view> pieces) {
        for (std::string_view p : pieces) r.feed_data(p);
        return run(r.readuntil("aaa"));
    };
    CHECK(read_after({"QWEaa", "XYaa", "a"}) == "QWEaaXYaaa");
    CHECK(r.buffered().empty());
    CHECK(read_after({"QWEaa", "XYa", "aa"}) == "QWEaaXYaaa");
    CHECK(read_after({"aaa"}) == "aaa");
    CHECK(read_after({"Xaaa"}) == "Xaaa");
    CHECK(read_after({"XXX", "a", "a", "a"}) == "XXXaaa");
    CHECK(r.buffered().empty());

    // The same with the reader waiting between the pieces of the separator.
    auto split = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(r.readuntil("AAA"));
        for (std::string_view piece : {"QWEA", "XYA", "A", "A", "tail"}) {
            co_await asyncio::sleep(0);
            r.feed_data(piece);
        }
        co_return co_await t;
    };
    CHECK(run(split()) == "QWEAXYAAA");
    CHECK(r.buffered() == "tail");
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readuntil_eof", "[streams]") {
    StreamReader r;
    r.feed_data("some dataAA");
    r.feed_eof();
    bool raised = false;
    try {
        run(r.readuntil("AAA"));
    } catch (const IncompleteReadError& e) {
        raised = true;
        CHECK(e.partial == "some dataAA");
        CHECK_FALSE(e.expected_known);
        CHECK(std::string(e.what()) == "11 bytes read on a total of undefined expected bytes");
    }
    CHECK(raised);
    CHECK(r.buffered().empty());
}

TEST_CASE_METHOD(LoopFixture, "streams: readuntil finds a separator completed by the last chunk before EOF",
                 "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(r.readuntil("\r\n"));
        co_await asyncio::sleep(0);
        r.feed_data("end\r");
        co_await asyncio::sleep(0);
        r.feed_data("\n");
        r.feed_eof();
        co_return co_await t;
    };
    CHECK(run(body()) == "end\r\n");
    CHECK(r.at_eof());
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readuntil_limit_found_sep", "[streams]") {
    StreamReader r(3);
    r.feed_data("some dataAA");
    bool raised = false;
    try {
        run(r.readuntil("AAA"));
    } catch (const LimitOverrunError& e) {
        raised = true;
        CHECK(std::string(e.what()) == "Separator is not found, and chunk exceed the limit");
        CHECK(e.consumed == 9);  // 11 + 1 - 3
    }
    CHECK(raised);
    CHECK(r.buffered() == "some dataAA");  // left for the caller

    r.feed_data("A");
    raised = false;
    try {
        run(r.readuntil("AAA"));
    } catch (const LimitOverrunError& e) {
        raised = true;
        CHECK(std::string(e.what()) == "Separator is found, but chunk is longer than limit");
        CHECK(e.consumed == 9);
    }
    CHECK(raised);
    CHECK(r.buffered() == "some dataAAA");
    // Still usable: take the data some other way.
    std::string all = run(r.readexactly(12));
    CHECK(all == "some dataAAA");
}

TEST_CASE_METHOD(LoopFixture, "streams: readuntil with the data exactly at the limit", "[streams]") {
    StreamReader r(4);
    r.feed_data("abcd\n");
    std::string line = run(r.readuntil("\n"));
    CHECK(line == "abcd\n");
    // 5 bytes without a separator: offset 5 > limit 4.
    r.feed_data("abcde");
    CHECK_THROWS_AS(run(r.readuntil("\n")), LimitOverrunError);
    CHECK(r.buffered() == "abcde");
}

TEST_CASE_METHOD(LoopFixture, "streams: readuntil with several separators returns the shortest match",
                 "[streams]") {
    StreamReader r;
    r.feed_data("key: value\r\nnext\n");
    std::string first = run(r.readuntil({"\n", "\r\n"}));
    CHECK(first == "key: value\r\n");  // both end at the same byte
    r.feed_data("a||b|");
    std::string second = run(r.readuntil({"||", "|"}));
    CHECK(second == "next\na|");  // "|" ends before "||" does
    CHECK(r.buffered() == "|b|");
    std::string third = run(r.readuntil({"b|", "||"}));
    CHECK(third == "|b|");  // "||" is not there at all
    CHECK(r.buffered().empty());
    r.feed_data("xAByzABC");
    std::string fourth = run(r.readuntil({"ABC", "yz"}));
    CHECK(fourth == "xAByz");
    std::string fifth = run(r.readuntil({"XYZ", "ABC"}));
    CHECK(fifth == "ABC");
}

TEST_CASE_METHOD(LoopFixture, "streams: readuntil with several separators split across feeds", "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<std::string> {
        std::vector<std::string_view> seps{"<END>", "\n\n"};
        auto t = asyncio::create_task(r.readuntil(seps));
        for (std::string_view piece : {"hello <E", "N", "D", "> more"}) {
            co_await asyncio::sleep(0);
            r.feed_data(piece);
        }
        co_return co_await t;
    };
    CHECK(run(body()) == "hello <END>");
    CHECK(r.buffered() == " more");
}

TEST_CASE_METHOD(LoopFixture, "streams: readuntil with several separators: limit counts the shortest",
                 "[streams]") {
    StreamReader r(3);
    r.feed_data("abcdef");
    bool raised = false;
    try {
        run(r.readuntil({"XY", "Z"}));
    } catch (const LimitOverrunError& e) {
        raised = true;
        // offset = buflen + 1 - longest separator = 5
        CHECK(e.consumed == 5);
    }
    CHECK(raised);
    CHECK(r.buffered() == "abcdef");
}

// --- readexactly ----------------------------------------------------------------------------

TEST_CASE_METHOD(LoopFixture, "streams: test_readexactly_zero_or_less", "[streams]") {
    StreamReader r;
    r.feed_data(DATA);
    std::string none = run(r.readexactly(0));
    CHECK(none.empty());
    CHECK(r.buffered() == DATA);
    CHECK_THROWS_AS(run(r.readexactly(-1)), tulip::ValueError);
    CHECK_THROWS_WITH(run(r.readexactly(-1)), "readexactly size can not be less than zero");
    CHECK(r.buffered() == DATA);
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readexactly waits across feeds", "[streams]") {
    StreamReader r;
    const std::ptrdiff_t n = 2 * static_cast<std::ptrdiff_t>(DATA.size());
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(r.readexactly(n));
        for (int i = 0; i < 3; ++i) {
            co_await asyncio::sleep(0);
            r.feed_data(DATA);
        }
        co_return co_await t;
    };
    CHECK(run(body()) == DATA + DATA);
    CHECK(r.buffered() == DATA);
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readexactly_limit: n above the limit resumes a paused transport",
                 "[streams]") {
    auto s = connect_stream(4);
    s.transport->receive("0123456789");  // > 2 x limit: reading pauses
    CHECK_FALSE(s.transport->is_reading());
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(s.reader.readexactly(20));
        co_await asyncio::sleep(0);
        // Waiting with a paused transport would deadlock: the reader resumed it.
        CHECK(s.transport->is_reading());
        s.transport->receive("abcdefghij");
        co_return co_await t;
    };
    CHECK(run(body()) == "0123456789abcdefghij");
    s.writer.close();
    run(s.writer.wait_closed());
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readexactly_eof gives the partial data", "[streams]") {
    StreamReader r;
    const std::ptrdiff_t n = 2 * static_cast<std::ptrdiff_t>(DATA.size());
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(r.readexactly(n));
        co_await asyncio::sleep(0);
        r.feed_data(DATA);
        r.feed_eof();
        bool raised = false;
        try {
            co_await t;
        } catch (const IncompleteReadError& e) {
            raised = true;
            CHECK(e.partial == DATA);
            CHECK(e.expected == static_cast<std::size_t>(n));
            CHECK(e.expected_known);
            CHECK(std::string(e.what()) == "18 bytes read on a total of 36 expected bytes");
        }
        CHECK(raised);
    };
    run(body());
    CHECK(r.buffered().empty());
    CHECK(r.at_eof());
}

TEST_CASE_METHOD(LoopFixture, "streams: test_readexactly_exception", "[streams]") {
    StreamReader r;
    r.feed_data("line\n");
    std::string two = run(r.readexactly(2));
    CHECK(two == "li");
    r.set_exception(std::make_exception_ptr(tulip::ValueError("boom")));
    CHECK_THROWS_WITH(run(r.readexactly(2)), "boom");
}

// --- read_into ------------------------------------------------------------------------------

namespace {

// read_into() as a coroutine, so that it can run as a task; returns the bytes read.
asyncio::Coro<std::string> read_into_task(StreamReader r, std::size_t size) {
    std::string buf(size, '?');
    std::size_t n = co_await r.read_into(buf);
    buf.resize(n);
    co_return buf;
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "streams: read_into takes what is buffered, up to the buffer's size", "[streams]") {
    StreamReader r;
    r.feed_data(DATA);
    auto body = [&]() -> asyncio::Coro<> {
        std::array<char, 5> small{};
        std::size_t n = co_await r.read_into(small);
        CHECK(n == 5);
        CHECK(std::string_view(small.data(), n) == "line1");
        CHECK(r.buffered() == DATA.substr(5));
        std::array<std::byte, 64> big{};
        n = co_await r.read_into(big);  // the std::byte form
        CHECK(n == DATA.size() - 5);
        CHECK(std::string_view(reinterpret_cast<const char*>(big.data()), n) == DATA.substr(5));
        CHECK(r.buffered().empty());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: read_into waits for data, then returns what came", "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(read_into_task(r, 30));
        co_await asyncio::sleep(0);
        CHECK_FALSE(t.done());
        r.feed_data("abc");
        r.feed_data("def");  // both arrive before the reader runs
        co_return co_await t;
    };
    CHECK(run(body()) == "abcdef");
    CHECK(r.buffered().empty());
}

TEST_CASE_METHOD(LoopFixture, "streams: read_into returns 0 at EOF and for an empty buffer", "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<> {
        std::span<char> none;
        r.feed_data("xy");
        CHECK(co_await r.read_into(none) == 0);  // does not wait, takes nothing
        CHECK(r.buffered() == "xy");
        auto t = asyncio::create_task(read_into_task(r, 1));
        CHECK(co_await t == "x");
        auto waiting = asyncio::create_task(read_into_task(r, 10));
        CHECK(co_await waiting == "y");
        auto at_eof = asyncio::create_task(read_into_task(r, 10));
        co_await asyncio::sleep(0);
        CHECK_FALSE(at_eof.done());
        r.feed_eof();  // wakes the waiting read with nothing
        CHECK((co_await at_eof).empty());
        CHECK(r.at_eof());
        std::array<char, 4> buf{};
        CHECK(co_await r.read_into(buf) == 0);  // after EOF: at once
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: read_into raises the reader's exception, also while waiting", "[streams]") {
    StreamReader r;
    r.feed_data("data");
    r.set_exception(std::make_exception_ptr(tulip::ValueError("boom")));
    // At once, with data still buffered (as read()).
    CHECK_THROWS_WITH(run(read_into_task(r, 4)), "boom");
    CHECK(r.buffered() == "data");

    StreamReader w;
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(read_into_task(w, 4));
        co_await asyncio::sleep(0);
        w.set_exception(std::make_exception_ptr(tulip::ConnectionResetError(ECONNRESET, "peer")));
        CHECK_THROWS_AS(co_await t, tulip::ConnectionResetError);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: a cancelled read_into takes nothing and leaves the stream usable",
                 "[streams][cancel]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(read_into_task(r, 8));
        co_await asyncio::sleep(0);
        t.cancel("stop");
        bool was_cancelled = co_await ends_cancelled(t);
        CHECK(was_cancelled);
        // Woken and cancelled before it ran: the data stays for the next reader.
        auto woken = asyncio::create_task(read_into_task(r, 8));
        co_await asyncio::sleep(0);
        r.feed_data("kept");
        woken.cancel();
        was_cancelled = co_await ends_cancelled(woken);
        CHECK(was_cancelled);
        CHECK(r.buffered() == "kept");
        auto next = asyncio::create_task(read_into_task(r, 8));
        CHECK(co_await next == "kept");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: data for a waiting read_into goes straight into its buffer, the rest in order",
                 "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(read_into_task(r, 4));
        co_await asyncio::sleep(0);
        r.feed_data("abcdefgh");
        CHECK(r.buffered() == "efgh");  // what did not fit, behind what did
        r.feed_data("ij");
        auto got1 = co_await t;
        CHECK(got1 == "abcd");
        CHECK(r.buffered() == "efghij");
        auto next = asyncio::create_task(read_into_task(r, 10));
        auto got2 = co_await next;
        CHECK(got2 == "efghij");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: a read_into cancelled after its data came puts it back in front",
                 "[streams][cancel]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(read_into_task(r, 4));
        co_await asyncio::sleep(0);
        r.feed_data("abcdefgh");
        r.feed_data("ij");
        // Another reader takes from the rest before the cancelled one runs.
        std::string taken = co_await r.read(4);
        CHECK(taken == "efgh");
        t.cancel();
        bool was_cancelled = co_await ends_cancelled(t);
        CHECK(was_cancelled);
        CHECK(r.buffered() == "abcdij");  // back in front of what is left, in order
        // And with nothing taken from the rest.
        StreamReader r2;
        auto u = asyncio::create_task(read_into_task(r2, 3));
        co_await asyncio::sleep(0);
        r2.feed_data("xyz0123");
        u.cancel();
        was_cancelled = co_await ends_cancelled(u);
        CHECK(was_cancelled);
        CHECK(r2.buffered() == "xyz0123");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: the bytes a waiting read_into takes do not count towards pausing",
                 "[streams]") {
    auto s = connect_stream(10);
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(read_into_task(s.reader, 10));
        co_await asyncio::sleep(0);
        s.transport->receive(std::string(30, 'a'));  // 10 into the read, 20 buffered: not above 2 x limit
        CHECK(s.transport->is_reading());
        auto got3 = co_await t;
        CHECK(got3.size() == 10);
        auto u = asyncio::create_task(read_into_task(s.reader, 25));
        auto got4 = co_await u;
        CHECK(got4.size() == 20);
        auto v = asyncio::create_task(read_into_task(s.reader, 4));
        co_await asyncio::sleep(0);
        s.transport->receive(std::string(25, 'b'));  // 21 buffered: paused
        CHECK_FALSE(s.transport->is_reading());
        CHECK(s.transport->pause_reading_calls == 1);
        auto got5 = co_await v;
        CHECK(got5.size() == 4);
        CHECK_FALSE(s.transport->is_reading());  // 21 still buffered
        std::array<char, 21> buf{};
        std::size_t got6 = co_await s.reader.read_into(buf);
        CHECK(got6 == 21);  // empty: resumed
        CHECK(s.transport->is_reading());
        // Cancelled after its data came: the bytes put back count again.
        auto w = asyncio::create_task(read_into_task(s.reader, 8));
        co_await asyncio::sleep(0);
        s.transport->receive(std::string(25, 'c'));  // 8 into the read, 17 buffered: not paused
        CHECK(s.transport->is_reading());
        w.cancel();
        bool was_cancelled = co_await ends_cancelled(w);
        CHECK(was_cancelled);
        CHECK(s.reader.buffered() == std::string(25, 'c'));
        CHECK_FALSE(s.transport->is_reading());  // 25 buffered: paused
        CHECK(s.transport->pause_reading_calls == 2);
    };
    run(body());
    s.writer.close();
    run(s.writer.wait_closed());
}

TEST_CASE_METHOD(LoopFixture, "streams: the cancel message of a read_into reaches its CancelledError",
                 "[streams][cancel]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(read_into_task(r, 8));
        co_await asyncio::sleep(0);
        t.cancel("enough");
        try {
            co_await t;
        } catch (const asyncio::CancelledError& e) {
            co_return e.message();
        }
        co_return "not cancelled";
    };
    CHECK(run(body()) == "enough");
}

TEST_CASE_METHOD(LoopFixture, "streams: read_into and read share the one-waiter rule", "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<> {
        auto first = asyncio::create_task(read_into_task(r, 8));
        co_await asyncio::sleep(0);
        CHECK_THROWS_WITH(co_await r.read(3), "read() called while another coroutine is already waiting for incoming data");
        std::array<char, 2> buf{};
        CHECK_THROWS_WITH(co_await r.read_into(buf),
                          "read_into() called while another coroutine is already waiting for incoming data");
        r.feed_data("ok");
        CHECK(co_await first == "ok");
        // And the other way round.
        auto reading = asyncio::create_task(r.read(8));
        co_await asyncio::sleep(0);
        CHECK_THROWS_WITH(co_await r.read_into(buf), Catch::Matchers::StartsWith("read_into() called while"));
        r.feed_data("go");
        CHECK(co_await reading == "go");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: read_into resumes a paused transport at the limit", "[streams]") {
    auto s = connect_stream(10);
    s.transport->receive(std::string(21, 'a'));  // above 2 x limit: paused
    CHECK_FALSE(s.transport->is_reading());
    auto body = [&]() -> asyncio::Coro<> {
        std::array<char, 10> buf{};
        CHECK(co_await s.reader.read_into(std::span<char>(buf).first(9)) == 9);  // 12 left
        CHECK_FALSE(s.transport->is_reading());
        CHECK(co_await s.reader.read_into(std::span<char>(buf).first(2)) == 2);  // 10 left: resume
        CHECK(s.transport->is_reading());
        CHECK(s.transport->resume_reading_calls == 1);
    };
    run(body());
    s.writer.close();
    run(s.writer.wait_closed());
}

TEST_CASE_METHOD(LoopFixture, "streams: a read_into waiting when the connection is lost", "[streams]") {
    auto s = connect_stream();
    auto body = [&]() -> asyncio::Coro<> {
        auto clean = asyncio::create_task(read_into_task(s.reader, 8));
        co_await asyncio::sleep(0);
        s.transport->receive("last");
        s.transport->lose(nullptr);
        CHECK(co_await clean == "last");
        CHECK((co_await read_into_task(s.reader, 8)).empty());  // EOF
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: echo with read_into, write and drain on one reused buffer", "[streams]") {
    auto s = connect_stream();
    auto echo = [&]() -> asyncio::Coro<int> {
        std::vector<char> buffer(16);
        int messages = 0;
        for (;;) {
            std::size_t n = co_await s.reader.read_into(buffer);
            if (n == 0) break;
            s.writer.write(std::string_view(buffer.data(), n));
            co_await s.writer.drain();
            ++messages;
        }
        co_return messages;
    };
    auto body = [&]() -> asyncio::Coro<int> {
        auto t = asyncio::create_task(echo());
        std::string expected;
        for (int i = 0; i < 50; ++i) {
            std::string msg = "message " + std::to_string(i) + "|";
            s.transport->receive(msg);
            expected += msg;
            co_await asyncio::sleep(0);
        }
        s.transport->receive(std::string(40, 'z'));  // more than the buffer: several reads
        expected += std::string(40, 'z');
        s.transport->receive_eof();
        int messages = co_await t;
        CHECK(s.transport->written == expected);
        co_return messages;
    };
    CHECK(run(body()) == 53);  // 50 messages, then 40 bytes in reads of 16, 16 and 8
    s.writer.close();
    run(s.writer.wait_closed());
}

// --- exceptions, waiters, cancellation ---------------------------------------------------

TEST_CASE_METHOD(LoopFixture, "streams: test_exception_waiter: an exception set while waiting", "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(r.readline());
        co_await asyncio::sleep(0);
        r.set_exception(std::make_exception_ptr(tulip::ConnectionResetError(ECONNRESET, "peer")));
        CHECK(r.exception() != nullptr);
        bool raised = false;
        try {
            co_await t;
        } catch (const tulip::ConnectionResetError&) {
            raised = true;
        }
        CHECK(raised);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: test_exception_cancel: a cancelled read leaves the stream usable",
                 "[streams][cancel]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(r.readline());
        co_await asyncio::sleep(0);
        r.feed_data("partial");  // wakes it; it goes back to waiting
        co_await asyncio::sleep(0);
        t.cancel();
        bool was_cancelled = co_await ends_cancelled(t);
        CHECK(was_cancelled);
        // Nothing taken and nobody waiting: a new read proceeds.
        CHECK(r.buffered() == "partial");
        r.set_exception(std::make_exception_ptr(tulip::RuntimeError("after cancel")));
        CHECK_THROWS_WITH(co_await r.read(1), "after cancel");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: a read cancelled while waiting, then another read gets the data",
                 "[streams][cancel]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(r.readexactly(4));
        co_await asyncio::sleep(0);
        t.cancel();
        bool was_cancelled = co_await ends_cancelled(t);
        CHECK(was_cancelled);
        auto second = asyncio::create_task(r.readexactly(4));
        co_await asyncio::sleep(0);
        r.feed_data("data");
        co_return co_await second;
    };
    CHECK(run(body()) == "data");
}

TEST_CASE_METHOD(LoopFixture, "streams: two coroutines waiting on one reader: the second is refused",
                 "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<> {
        auto first = asyncio::create_task(r.read(10));
        co_await asyncio::sleep(0);
        CHECK_THROWS_AS(co_await r.readline(), tulip::RuntimeError);
        CHECK_THROWS_WITH(co_await r.readuntil("x"),
                          "readuntil() called while another coroutine is already waiting for incoming data");
        CHECK_THROWS_WITH(co_await r.readexactly(3), Catch::Matchers::StartsWith("readexactly() called"));
        r.feed_data("ok");
        std::string got = co_await first;
        CHECK(got == "ok");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: anext() iterates lines until EOF (async for)", "[streams]") {
    StreamReader r;
    auto body = [&]() -> asyncio::Coro<std::vector<std::string>> {
        auto feeder = [&]() -> asyncio::Coro<> {
            for (std::string_view piece : {"line1\nli", "ne2\n", "last"}) {
                co_await asyncio::sleep(0);
                r.feed_data(piece);
            }
            r.feed_eof();
        };
        auto f = asyncio::create_task(feeder());
        std::vector<std::string> lines;
        while (auto line = co_await r.anext()) lines.push_back(*line);
        co_await f;
        co_return lines;
    };
    CHECK(run(body()) == std::vector<std::string>{"line1\n", "line2\n", "last"});
}

TEST_CASE_METHOD(LoopFixture, "streams: chopped input: every split of a stream reads the same", "[streams]") {
    // Reliability check 14: random split points, one chunk per loop iteration, against a reader
    // that mixes readline, readuntil and readexactly.
    std::string input;
    for (int i = 0; i < 40; ++i)
        input += "record " + std::to_string(i) + "\r\nHDR" + std::string(i % 7, 'p') + (i % 2 ? "||" : "|");
    auto consume = [](StreamReader r) -> asyncio::Coro<std::vector<std::string>> {
        // A braced list written inside the co_await expression trips GCC 12 ("array used as
        // initializer"): name the separators first.
        static constexpr std::string_view bars[] = {"||", "|"};
        std::vector<std::string> out;
        for (int i = 0; i < 40; ++i) {
            out.push_back(co_await r.readline());
            out.push_back(co_await r.readexactly(3));
            out.push_back(co_await r.readuntil(bars));
        }
        out.push_back(co_await r.read());
        co_return out;
    };
    StreamReader whole;
    whole.feed_data(input);
    whole.feed_eof();
    const auto expected = run(consume(whole));
    for (std::uint32_t seed = 0; seed < 200; ++seed) {
        std::mt19937 rng(seed);
        StreamReader r(64);
        auto body = [&]() -> asyncio::Coro<std::vector<std::string>> {
            auto reading = asyncio::create_task(consume(r));
            for (std::size_t pos = 0; pos < input.size();) {
                std::size_t n = std::uniform_int_distribution<std::size_t>(1, 1 + seed % 50)(rng);
                r.feed_data(std::string_view(input).substr(pos, n));
                pos += n;
                co_await asyncio::sleep(0);
            }
            r.feed_eof();
            co_return co_await reading;
        };
        INFO("seed " << seed);
        REQUIRE(run(body()) == expected);
    }
}

// --- reading flow control ---------------------------------------------------------------

TEST_CASE_METHOD(LoopFixture, "streams: the reader pauses the transport above 2 x limit, resumes at limit",
                 "[streams]") {
    auto s = connect_stream(10);
    s.transport->receive(std::string(20, 'a'));  // exactly 2 x limit: not above
    CHECK(s.transport->is_reading());
    s.transport->receive("b");
    CHECK_FALSE(s.transport->is_reading());
    CHECK(s.transport->pause_reading_calls == 1);
    s.transport->receive("c");  // a real transport would not, but it must not pause twice
    CHECK(s.transport->pause_reading_calls == 1);

    std::string part = run(s.reader.read(11));  // 11 left: still above the limit
    CHECK(part.size() == 11);
    CHECK_FALSE(s.transport->is_reading());
    std::string one = run(s.reader.read(1));  // 10 left: at the limit, resume
    CHECK(one == "a");
    CHECK(s.transport->is_reading());
    CHECK(s.transport->resume_reading_calls == 1);
    s.writer.close();
    run(s.writer.wait_closed());
}

TEST_CASE_METHOD(LoopFixture, "streams: an overlong readline resumes the transport it paused", "[streams]") {
    auto s = connect_stream(4);
    s.transport->receive("0123456789");
    CHECK_FALSE(s.transport->is_reading());
    CHECK_THROWS_AS(run(s.reader.readline()), tulip::ValueError);
    CHECK(s.reader.buffered().empty());
    CHECK(s.transport->is_reading());
    s.writer.close();
    run(s.writer.wait_closed());
}

// --- StreamReaderProtocol ---------------------------------------------------------------

TEST_CASE_METHOD(LoopFixture, "streams: the protocol feeds data and EOF, and keeps the transport open",
                 "[streams]") {
    auto s = connect_stream();
    s.transport->receive("hello ");
    s.transport->receive("world\n");
    s.transport->receive_eof();
    CHECK_FALSE(s.transport->is_closing());  // eof_received() returned true: half-open
    std::string line = run(s.reader.readline());
    CHECK(line == "hello world\n");
    CHECK(s.reader.at_eof());
    s.writer.write("still writable");
    CHECK(s.transport->written == "still writable");
    s.writer.close();
    run(s.writer.wait_closed());
}

TEST_CASE_METHOD(LoopFixture, "streams: connection_lost(null) ends the reader with EOF", "[streams]") {
    auto s = connect_stream();
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto t = asyncio::create_task(s.reader.read());
        co_await asyncio::sleep(0);
        s.transport->receive("tail");
        s.transport->lose(nullptr);
        co_return co_await t;
    };
    CHECK(run(body()) == "tail");
    CHECK(s.reader.at_eof());
    run(s.writer.wait_closed());
}

TEST_CASE_METHOD(LoopFixture, "streams: connection_lost(exc) fails the reader and wait_closed", "[streams]") {
    auto s = connect_stream();
    auto body = [&]() -> asyncio::Coro<> {
        auto reading = asyncio::create_task(s.reader.readline());
        auto closing = asyncio::create_task(s.writer.wait_closed());
        co_await asyncio::sleep(0);
        s.transport->lose(std::make_exception_ptr(tulip::ConnectionResetError(ECONNRESET, "recv")));
        CHECK_THROWS_AS(co_await reading, tulip::ConnectionResetError);
        CHECK_THROWS_AS(co_await closing, tulip::ConnectionResetError);
        // And later calls too.
        CHECK_THROWS_AS(co_await s.writer.wait_closed(), tulip::ConnectionResetError);
        CHECK_THROWS_AS(co_await s.reader.read(1), tulip::ConnectionResetError);
    };
    run(body());
}

// --- StreamWriter ---------------------------------------------------------------------------

TEST_CASE_METHOD(LoopFixture, "streams: StreamWriter passes writes and queries to the transport", "[streams]") {
    auto s = connect_stream();
    s.writer.write("one ");
    const std::string bytes = "two ";
    s.writer.write(std::as_bytes(std::span(bytes.data(), bytes.size())));
    s.writer.writelines({"three ", "four"});
    std::vector<std::string_view> more{" five", " six"};
    s.writer.writelines(more);
    CHECK(s.transport->written == "one two three four five six");
    CHECK(s.writer.can_write_eof());
    s.writer.write_eof();
    CHECK(s.transport->eof_written);
    CHECK(s.writer.transport() == s.transport);
    CHECK(s.writer.peername() == tulip::socket::Address::ipv4("127.0.0.1", 4242));
    CHECK(s.writer.sockname() == tulip::socket::Address::ipv4("127.0.0.1", 2424));
    auto peer = std::any_cast<tulip::socket::Address>(s.writer.get_extra_info("peername"));
    CHECK(peer.port() == 4242);
    CHECK_FALSE(s.writer.get_extra_info("nothing").has_value());
    CHECK(std::any_cast<int>(s.writer.get_extra_info("nothing", 7)) == 7);

    CHECK_FALSE(s.writer.is_closing());
    s.writer.close();
    CHECK(s.writer.is_closing());
    CHECK_THROWS_AS(s.writer.write("late"), tulip::RuntimeError);
    run(s.writer.wait_closed());
    CHECK(s.transport->lost);
}

TEST_CASE_METHOD(LoopFixture, "streams: drain returns at once while writing is not paused", "[streams]") {
    auto s = connect_stream();
    s.writer.write("x");
    run(s.writer.drain());
    s.writer.close();
    run(s.writer.wait_closed());
}

TEST_CASE_METHOD(LoopFixture, "streams: drain blocks until resume_writing", "[streams]") {
    auto s = connect_stream();
    auto body = [&]() -> asyncio::Coro<> {
        s.writer.write("big");
        s.transport->fill_write_buffer();
        CHECK(s.protocol->writing_paused());
        auto d1 = asyncio::create_task(s.writer.drain());
        auto d2 = asyncio::create_task(s.writer.drain());
        co_await turns(5);
        CHECK_FALSE(d1.done());
        CHECK_FALSE(d2.done());
        s.transport->drain_write_buffer();
        co_await d1;
        co_await d2;
        CHECK_FALSE(s.protocol->writing_paused());
        co_await s.writer.drain();  // not paused any more: at once
    };
    run(body());
    s.writer.close();
    run(s.writer.wait_closed());
}

TEST_CASE_METHOD(LoopFixture, "streams: connection_lost(exc) raises exc in pending and later drains",
                 "[streams]") {
    auto s = connect_stream();
    auto body = [&]() -> asyncio::Coro<> {
        s.transport->fill_write_buffer();
        auto pending = asyncio::create_task(s.writer.drain());
        co_await asyncio::sleep(0);
        s.transport->lose(std::make_exception_ptr(tulip::BrokenPipeError(EPIPE, "send")));
        CHECK_THROWS_AS(co_await pending, tulip::BrokenPipeError);
        CHECK_THROWS_AS(co_await s.writer.drain(), tulip::BrokenPipeError);
        CHECK_THROWS_AS(co_await s.writer.wait_closed(), tulip::BrokenPipeError);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: after a clean close, drain raises ConnectionResetError", "[streams]") {
    auto s = connect_stream();
    auto body = [&]() -> asyncio::Coro<> {
        s.transport->fill_write_buffer();
        auto pending = asyncio::create_task(s.writer.drain());
        co_await asyncio::sleep(0);
        s.writer.close();
        co_await s.writer.wait_closed();
        co_await pending;  // a clean loss releases the waiting drain (Python's set_result(None))
        bool raised = false;
        try {
            co_await s.writer.drain();
        } catch (const tulip::ConnectionResetError& e) {
            raised = true;
            CHECK_THAT(e.what(), Catch::Matchers::StartsWith("Connection lost"));
            CHECK(e.errno_value() == ECONNRESET);
        }
        CHECK(raised);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: drain on a closing transport yields so connection_lost can run",
                 "[streams]") {
    auto s = connect_stream();
    s.writer.close();
    // The close's connection_lost is still scheduled; drain lets it run, then sees the loss.
    CHECK_THROWS_AS(run(s.writer.drain()), tulip::ConnectionResetError);
    CHECK(s.transport->lost);
}

TEST_CASE_METHOD(LoopFixture, "streams: a cancelled drain leaves the writer usable", "[streams][cancel]") {
    auto s = connect_stream();
    auto body = [&]() -> asyncio::Coro<> {
        s.transport->fill_write_buffer();
        auto d = asyncio::create_task(s.writer.drain());
        co_await asyncio::sleep(0);
        d.cancel();
        bool was_cancelled = co_await ends_cancelled(d);
        CHECK(was_cancelled);
        auto again = asyncio::create_task(s.writer.drain());
        co_await turns(3);
        CHECK_FALSE(again.done());
        s.transport->drain_write_buffer();
        co_await again;
        s.writer.write("more");
        CHECK(s.transport->written == "more");
    };
    run(body());
    s.writer.close();
    run(s.writer.wait_closed());
}

TEST_CASE_METHOD(LoopFixture, "streams: wait_closed from several tasks, before and after the close",
                 "[streams]") {
    auto s = connect_stream();
    auto body = [&]() -> asyncio::Coro<> {
        auto w1 = asyncio::create_task(s.writer.wait_closed());
        auto w2 = asyncio::create_task(s.writer.wait_closed());
        co_await turns(3);
        CHECK_FALSE(w1.done());
        s.writer.close();
        co_await w1;
        co_await w2;
        co_await s.writer.wait_closed();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "streams: dropping the last writer closes the transport", "[streams]") {
    StreamReader reader;
    auto protocol = std::make_shared<StreamReaderProtocol>(reader);
    auto transport = FakeTransport::connect(protocol);
    {
        StreamWriter writer(transport, protocol, reader);
        StreamWriter copy = writer;
    }
    CHECK(transport->is_closing());
    std::string eof = run(reader.read());  // connection_lost(null) ran on the loop
    CHECK(eof.empty());
    CHECK(transport->lost);
}

TEST_CASE_METHOD(LoopFixture, "streams: a pending read survives its handles being dropped", "[streams]") {
    std::weak_ptr<FakeTransport> weak_transport;
    auto body = [&]() -> asyncio::Coro<std::string> {
        asyncio::Task<std::string> reading;
        {
            auto s = connect_stream();
            weak_transport = s.transport;
            reading = asyncio::create_task(s.reader.readexactly(5));
            s.transport->receive("ab");
        }  // every handle dropped: the writer's end closes the transport
        co_await asyncio::sleep(0);
        co_return co_await reading;
    };
    // The read ends with the EOF of the close, holding its partial data.
    bool raised = false;
    try {
        run(body());
    } catch (const IncompleteReadError& e) {
        raised = true;
        CHECK(e.partial == "ab");
    }
    CHECK(raised);
    CHECK(weak_transport.expired());  // nothing keeps anything alive afterwards
}

TEST_CASE_METHOD(LoopFixture, "streams: StreamWriter needs a transport and a protocol", "[streams]") {
    StreamReader reader;
    auto protocol = std::make_shared<StreamReaderProtocol>(reader);
    CHECK_THROWS_AS(StreamWriter(nullptr, protocol, reader), tulip::ValueError);
    auto transport = std::make_shared<FakeTransport>();
    CHECK_THROWS_AS(StreamWriter(transport, nullptr, std::nullopt), tulip::ValueError);
}

// --- client_connected_cb (the server side) -------------------------------------------------

TEST_CASE_METHOD(LoopFixture, "streams: client_connected_cb runs as a task with the reader and writer",
                 "[streams]") {
    std::shared_ptr<FakeTransport> transport;
    bool handler_done = false;
    auto body = [&]() -> asyncio::Coro<> {
        auto echo = [&](StreamReader reader, StreamWriter writer) -> asyncio::Coro<> {
            CHECK(writer.peername().has_value());
            while (auto line = co_await reader.anext()) {
                writer.write("echo: " + *line);
                co_await writer.drain();
            }
            writer.close();
            co_await writer.wait_closed();
            handler_done = true;
        };
        auto protocol = std::make_shared<StreamReaderProtocol>(StreamReader(), echo);
        transport = FakeTransport::connect(protocol);
        co_await asyncio::sleep(0);
        transport->receive("hi\n");
        transport->receive("there\n");
        transport->receive_eof();
        for (int i = 0; i < 100 && !handler_done; ++i) co_await asyncio::sleep(0);
    };
    run(body());
    CHECK(handler_done);
    CHECK(transport->written == "echo: hi\necho: there\n");
    CHECK(transport->lost);
}

TEST_CASE_METHOD(LoopFixture, "streams: a failing client_connected_cb is reported and its transport closed",
                 "[streams]") {
    std::shared_ptr<FakeTransport> transport;
    auto body = [&]() -> asyncio::Coro<> {
        auto failing = [](StreamReader, StreamWriter writer) -> asyncio::Coro<> {
            StreamWriter keep = writer;  // holds the connection open until it throws
            co_await asyncio::sleep(0);
            throw tulip::ValueError("handler failed");
        };
        auto protocol = std::make_shared<StreamReaderProtocol>(StreamReader(), failing);
        transport = FakeTransport::connect(protocol);
        for (int i = 0; i < 100 && !transport->lost; ++i) co_await asyncio::sleep(0);
    };
    run(body());
    CHECK(transport->lost);
    auto calls = take_handler_calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].message == "Unhandled exception in client_connected_cb");
    CHECK_THROWS_WITH(std::rethrow_exception(calls[0].exception), "handler failed");
}
