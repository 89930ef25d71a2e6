// The stream socket transport (Python's _SelectorSocketTransport), on every backend: echo,
// half-close, resets, abort, close flushing, pause/resume reading, water marks, a large transfer
// through a slow reader, protocol errors, and a loop closed with transports still open.
#include <sys/socket.h>

#include <array>
#include <memory>
#include <string>

#include "loop_fixture.hpp"
#include "protocol_helpers.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Socket;
using tulip::testing::is_exception;
using tulip::testing::LoopFixture;
using tulip::testing::Recorder;

namespace {

struct Pair {
    std::shared_ptr<asyncio::Transport> transport;
    std::shared_ptr<Recorder> protocol;
    Socket peer;  // the other end, a plain blocking socket the test drives
};

// A transport on one end of a socketpair (AF_UNIX) or of a TCP loopback connection.
asyncio::Coro<Pair> make_pair(asyncio::EventLoop& loop, bool tcp = false) {
    Socket ours, peer;
    if (tcp) {
        Socket listener = tulip::socket::create_server("127.0.0.1", 0);
        ours = tulip::socket::create_connection("127.0.0.1", listener.getsockname().port());
        peer = listener.accept().first;
    } else {
        std::tie(ours, peer) = tulip::socket::socketpair();
    }
    auto [t, p] = co_await loop.connect_accepted_socket([] { return std::make_shared<Recorder>(); }, std::move(ours));
    co_return Pair{t, p, std::move(peer)};
}

std::string read_all(Socket& s) {
    std::string all;
    for (;;) {
        std::string chunk = s.recv(1 << 16);
        if (chunk.empty()) return all;
        all += chunk;
    }
}

void reset(Socket& s) {
    s.setsockopt(SOL_SOCKET, SO_LINGER, ::linger{1, 0});
    s.close();
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "transport: connection_made first, data both ways, close", "[transports]") {
    run([&]() -> asyncio::Coro<> {
        Pair p = co_await make_pair(loop(), true);
        CHECK(p.protocol->made == 1);  // connect_accepted_socket returns after connection_made
        CHECK(p.protocol->transport == p.transport.get());
        CHECK(p.transport->get_protocol() == p.protocol);
        CHECK(p.transport->is_reading());
        CHECK(p.transport->get_write_buffer_limits() == std::pair<std::size_t, std::size_t>(16 * 1024, 64 * 1024));
        p.peer.sendall("ping");
        co_await p.protocol->until([&] { return p.protocol->data == "ping"; });
        p.transport->write("pong");
        p.transport->writelines({"a", "b"});
        auto peername = p.transport->peername();
        REQUIRE(peername);
        CHECK(*peername == p.peer.getsockname());
        CHECK(std::any_cast<tulip::socket::Address>(p.transport->get_extra_info("sockname")) == p.peer.getpeername());
        CHECK(std::any_cast<const Socket*>(p.transport->get_extra_info("socket")) == p.transport->socket());
        CHECK_FALSE(p.transport->get_extra_info("nope").has_value());
        p.transport->close();
        CHECK(p.transport->is_closing());
        p.transport->close();  // a second close does nothing
        co_await p.protocol->until_lost();
        CHECK(p.protocol->lost == 1);
        CHECK_FALSE(p.protocol->lost_exc);
        CHECK(p.transport->get_protocol() == nullptr);  // dropped after connection_lost
        CHECK(read_all(p.peer) == "pongab");
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: peer EOF closes by default; eof_received true keeps writing open",
                 "[transports]") {
    run([&]() -> asyncio::Coro<> {
        SECTION("default: close") {
            Pair p = co_await make_pair(loop());
            p.peer.sendall("last words");
            p.peer.shutdown(SHUT_WR);
            co_await p.protocol->until_lost();
            CHECK(p.protocol->data == "last words");
            CHECK(p.protocol->eofs == 1);
            CHECK_FALSE(p.protocol->lost_exc);
            CHECK(read_all(p.peer).empty());
        }
        SECTION("half-close: the transport still writes, then write_eof") {
            Pair p = co_await make_pair(loop(), true);
            p.protocol->keep_open_on_eof = true;
            p.peer.sendall("question");
            p.peer.shutdown(SHUT_WR);
            co_await p.protocol->until([&] { return p.protocol->eofs == 1; });
            CHECK_FALSE(p.transport->is_closing());
            p.transport->write("answer to " + p.protocol->data);
            CHECK(p.transport->can_write_eof());
            p.transport->write_eof();
            CHECK_THROWS_WITH(p.transport->write("more"), "Cannot call write() after write_eof()");
            CHECK(read_all(p.peer) == "answer to question");
            p.transport->close();
            co_await p.protocol->until_lost();
            CHECK(p.protocol->eofs == 1);
            CHECK(p.protocol->lost == 1);
        }
        SECTION("half-close the other way: write_eof, then the peer still sends") {
            Pair p = co_await make_pair(loop(), true);
            p.transport->write("request");
            p.transport->write_eof();
            CHECK(read_all(p.peer) == "request");  // the peer sees EOF after the data
            CHECK_FALSE(p.transport->is_closing());
            p.peer.sendall("response");
            co_await p.protocol->until([&] { return p.protocol->data == "response"; });
            p.peer.close();
            co_await p.protocol->until_lost();
            CHECK(p.protocol->eofs == 1);
            CHECK_FALSE(p.protocol->lost_exc);
        }
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: peer reset is reported once, as ConnectionResetError", "[transports]") {
    run([&]() -> asyncio::Coro<> {
        SECTION("while reading") {
            Pair p = co_await make_pair(loop(), true);
            reset(p.peer);
            co_await p.protocol->until_lost();
            CHECK(is_exception<tulip::ConnectionResetError>(p.protocol->lost_exc));
            co_await asyncio::sleep(0);
            CHECK(p.protocol->lost == 1);
        }
        SECTION("while writing") {
            Pair p = co_await make_pair(loop(), true);
            p.transport->pause_reading();  // only the write path sees the reset
            std::string chunk(1 << 20, 'x');
            while (p.transport->get_write_buffer_size() == 0) p.transport->write(chunk);
            reset(p.peer);
            co_await p.protocol->until_lost();
            CHECK(is_exception<tulip::ConnectionResetError>(p.protocol->lost_exc));
            CHECK(p.transport->get_write_buffer_size() == 0);
            p.transport->write("dropped after the connection was lost");  // no throw, as Python
            co_await asyncio::sleep(0);
            CHECK(p.protocol->lost == 1);
        }
        co_await asyncio::sleep(0);
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: abort drops buffered data; writes after close are refused",
                 "[transports]") {
    run([&]() -> asyncio::Coro<> {
        Pair p = co_await make_pair(loop(), true);
        std::string chunk(1 << 20, 'x');
        while (p.transport->get_write_buffer_size() == 0) p.transport->write(chunk);
        p.transport->abort();
        CHECK(p.transport->get_write_buffer_size() == 0);
        CHECK(p.transport->is_closing());
        CHECK_THROWS_AS(p.transport->write("x"), tulip::RuntimeError);
        co_await p.protocol->until_lost();
        CHECK(p.protocol->lost == 1);
        CHECK_FALSE(p.protocol->lost_exc);
        CHECK(p.transport->socket()->fileno() == -1);
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: write after close is refused with a clear error", "[transports]") {
    run([&]() -> asyncio::Coro<> {
        Pair p = co_await make_pair(loop());
        p.transport->close();
        CHECK_THROWS_WITH(p.transport->write("late"),
                          "Cannot call write() on a closing transport (close() or abort() was called)");
        co_await p.protocol->until_lost();
        CHECK_THROWS_AS(p.transport->write("later"), tulip::RuntimeError);
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: close() sends everything buffered first", "[transports]") {
    run([&]() -> asyncio::Coro<> {
        Pair p = co_await make_pair(loop(), true);
        std::string sent;
        for (int i = 0; p.transport->get_write_buffer_size() < (4u << 20); ++i) {
            std::string chunk(100'000 + i, static_cast<char>('a' + i % 26));
            p.transport->write(chunk);
            sent += chunk;
        }
        p.transport->close();
        // The peer reads on a thread of the default executor while the loop flushes.
        auto received = loop().run_in_executor([&] { return read_all(p.peer); });
        std::string got = co_await received;
        co_await p.protocol->until_lost();
        CHECK(got.size() == sent.size());
        CHECK(got == sent);
        CHECK_FALSE(p.protocol->lost_exc);
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: pause_reading stops data_received without losing data",
                 "[transports]") {
    run([&]() -> asyncio::Coro<> {
        Pair p = co_await make_pair(loop());
        p.transport->pause_reading();
        p.transport->pause_reading();  // idempotent
        CHECK_FALSE(p.transport->is_reading());
        p.peer.sendall("while paused");
        for (int i = 0; i < 20; ++i) co_await asyncio::sleep(0);  // iterations in which it could read
        CHECK(p.protocol->data.empty());
        p.transport->resume_reading();
        p.transport->resume_reading();
        CHECK(p.transport->is_reading());
        co_await p.protocol->until([&] { return p.protocol->data == "while paused"; });
        p.transport->close();
        co_await p.protocol->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: data_received that throws goes to the handler and closes",
                 "[transports]") {
    run([&]() -> asyncio::Coro<> {
        Pair p = co_await make_pair(loop());
        p.protocol->on_data = [](std::string_view) { throw tulip::ValueError("bad data"); };
        p.peer.sendall("boom");
        co_await p.protocol->until_lost();
        auto calls = take_handler_calls();
        REQUIRE(calls.size() == 1);
        CHECK(calls[0].message == "Fatal error: protocol.data_received() call failed.");
        CHECK(is_exception<tulip::ValueError>(calls[0].exception));
        CHECK(is_exception<tulip::ValueError>(p.protocol->lost_exc));
        CHECK(read_all(p.peer).empty());  // closed
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: aborting another transport whose events are already queued",
                 "[transports]") {
    // Both sockets become readable before the loop polls, so a readiness backend queues both
    // transports' events in one iteration; the first one run aborts the other, whose queued
    // event must then deliver nothing.
    run([&]() -> asyncio::Coro<> {
        Pair a = co_await make_pair(loop());
        Pair b = co_await make_pair(loop());
        a.protocol->on_data = [&](std::string_view) {
            b.transport->abort();
            a.transport->close();
        };
        b.protocol->on_data = [&](std::string_view) {
            a.transport->abort();
            b.transport->close();
        };
        a.peer.sendall("to a");
        b.peer.sendall("to b");
        co_await a.protocol->until_lost();
        co_await b.protocol->until_lost();
        CHECK(a.protocol->lost == 1);
        CHECK(b.protocol->lost == 1);
        CHECK(a.protocol->data.size() + b.protocol->data.size() >= 4);
        if (loop().backend_name() != "io_uring") {  // readiness: one dispatch ran, the other was dropped
            CHECK((a.protocol->data.empty() != b.protocol->data.empty()));
        }
        CHECK(take_handler_calls().empty());
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: water marks call pause_writing/resume_writing in turn", "[transports]") {
    run([&]() -> asyncio::Coro<> {
        Pair p = co_await make_pair(loop(), true);
        CHECK_THROWS_AS(p.transport->set_write_buffer_limits(10, 20), tulip::ValueError);
        p.transport->set_write_buffer_limits(4096);
        CHECK(p.transport->get_write_buffer_limits() == std::pair<std::size_t, std::size_t>(1024, 4096));
        std::string chunk(1 << 16, 'w');
        std::size_t written = 0;
        while (p.protocol->events.empty()) {
            p.transport->write(chunk);
            written += chunk.size();
        }
        CHECK(p.protocol->events == "P");
        CHECK(p.transport->get_write_buffer_size() > 4096);
        // The peer drains on an executor thread until EOF.
        auto received = loop().run_in_executor([&] { return read_all(p.peer).size(); });
        co_await p.protocol->until([&] { return p.protocol->events == "PR"; });
        CHECK(p.transport->get_write_buffer_size() <= 1024);
        while (p.protocol->events.size() < 3) {
            p.transport->write(chunk);
            written += chunk.size();
        }
        co_await p.protocol->until([&] { return p.protocol->events == "PRPR"; });
        p.transport->close();
        std::size_t total = co_await received;
        CHECK(total == written);
        co_await p.protocol->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: a loop closed with transports open leaves no fd and no operation",
                 "[transports]") {
    // The fixture's teardown closes the loop and checks fds and backend operations.
    run([&]() -> asyncio::Coro<> {
        Pair a = co_await make_pair(loop(), true);
        Pair b = co_await make_pair(loop());
        std::string chunk(1 << 20, 'x');
        while (b.transport->get_write_buffer_size() == 0) b.transport->write(chunk);  // a write watch too
        b.transport->pause_reading();
        CHECK(loop().stats().pending_ops >= 2);
    }());
}

namespace {
// What the protocols that receive into a buffer of their own record: the bytes, in order, and
// the loss of the connection.
template <std::size_t N>
struct OwnBufferRecord {
    std::array<std::byte, N> buf{};
    std::string got;
    int lost = 0;
    tulip::testing::Changes changes;
    void filled(std::size_t n) {
        got.append(reinterpret_cast<const char*>(buf.data()), n);
        changes.notify();
    }
    void ended() {
        ++lost;
        changes.notify();
    }
};
}  // namespace

TEST_CASE_METHOD(LoopFixture, "transport: BufferedProtocol reads straight into its own buffer", "[transports]") {
    struct Buffered : asyncio::BufferedProtocol, OwnBufferRecord<3> {
        std::span<std::byte> get_buffer(std::size_t) override { return buf; }
        void buffer_updated(std::size_t n) override { filled(n); }
        void connection_lost(std::exception_ptr) override { ended(); }
    };
    run([&]() -> asyncio::Coro<> {
        auto [ours, peer] = tulip::socket::socketpair();
        auto [t, p] = co_await loop().connect_accepted_socket([] { return std::make_shared<Buffered>(); },
                                                              std::move(ours));
        peer.sendall("abcdefgh");  // more than one buffer's worth
        co_await p->changes.until([&] { return p->got == "abcdefgh"; });
        peer.close();
        co_await p->changes.until([&] { return p->lost == 1; });
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: a DirectReceiver's offered buffer is received into directly",
                 "[transports]") {
    // Offers a 5-byte buffer every other time; the bytes come through direct_received() when
    // it offers one and through data_received() when not, in order either way. On a completion
    // backend too: a DirectReceiver's transport is served by readiness there.
    struct Direct : asyncio::Protocol, asyncio::detail::DirectReceiver, OwnBufferRecord<5> {
        int offers = 0;
        int direct = 0;
        std::span<std::byte> direct_buffer() noexcept override {
            return (offers++ % 2 == 0) ? std::span<std::byte>(buf) : std::span<std::byte>();
        }
        void direct_received(std::size_t n) override {
            ++direct;
            filled(n);
        }
        void data_received(std::string_view data) override {
            got += data;
            changes.notify();
        }
        void connection_lost(std::exception_ptr) override { ended(); }
    };
    run([&]() -> asyncio::Coro<> {
        auto [ours, peer] = tulip::socket::socketpair();
        auto [t, p] = co_await loop().connect_accepted_socket([] { return std::make_shared<Direct>(); },
                                                              std::move(ours));
        peer.sendall("abcdefgh");
        co_await p->changes.until([&] { return p->got.size() >= 8; });
        peer.sendall("ijklmnopqrstuvwxyz");
        co_await p->changes.until([&] { return p->got.size() >= 26; });
        CHECK(p->got == "abcdefghijklmnopqrstuvwxyz");
        CHECK(p->direct > 0);
        CHECK(p->direct < p->offers);  // the other half went through data_received
        peer.close();
        co_await p->changes.until([&] { return p->lost == 1; });
    }());
}
