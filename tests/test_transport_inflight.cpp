// Stream transports with I/O in flight, on every backend. On io_uring these are the cases a
// completion backend makes hard (issue 6): a close() while sends are still with the kernel must
// deliver every byte, and reading paused while buffers are already arriving must hand them all
// over, in order, once it resumes.
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "protocol_helpers.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Socket;
using tulip::testing::LoopFixture;
using tulip::testing::Recorder;

namespace {

struct Opened {
    std::shared_ptr<asyncio::Transport> transport;
    std::shared_ptr<Recorder> protocol;
    Socket peer;  // the other end, non-blocking
};

// A transport on one end of a socketpair.
asyncio::Coro<Opened> open_pair(asyncio::EventLoop& loop) {
    auto [ours, peer] = tulip::socket::socketpair();
    peer.setblocking(false);
    auto [t, p] = co_await loop.connect_accepted_socket([] { return std::make_shared<Recorder>(); }, std::move(ours));
    co_return Opened{t, p, std::move(peer)};
}

// Reads everything until EOF through the loop, from a non-blocking socket.
asyncio::Coro<std::string> read_to_eof(Socket& s) {
    std::string all;
    std::vector<std::byte> buf(1 << 16);
    for (;;) {
        std::size_t n = co_await asyncio::get_running_loop().sock_recv_into(s, std::span<std::byte>(buf));
        if (n == 0) co_return all;
        all.append(reinterpret_cast<const char*>(buf.data()), n);
    }
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "transport: close() with sends in flight delivers every byte, then EOF",
                 "[transports][inflight]") {
    run([&]() -> asyncio::Coro<> {
        Opened opened = co_await open_pair(loop());
        auto& [t, p, peer] = opened;
        // Far more than the socket buffers hold: most of it is queued or with the kernel when
        // close() comes, and the peer has not read anything yet.
        std::string sent;
        for (std::uint32_t i = 0; i < 48; ++i) {
            std::string piece = tulip::testing::patterned_bytes(64 * 1024 + i * 97, i);
            t->write(piece);
            sent += piece;
        }
        CHECK(t->get_write_buffer_size() > 0);
        t->close();
        CHECK(t->is_closing());
        std::string got = co_await read_to_eof(peer);
        CHECK(got.size() == sent.size());
        CHECK(got == sent);
        co_await p->until_lost();
        CHECK(p->lost == 1);
        CHECK_FALSE(p->lost_exc);
        CHECK(t->get_write_buffer_size() == 0);
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: reading paused while data arrives loses and reorders nothing",
                 "[transports][inflight]") {
    run([&]() -> asyncio::Coro<> {
        Opened opened = co_await open_pair(loop());
        auto& [t, p, peer] = opened;
        // Pause after each delivery; the test resumes after every round, while more is in the
        // socket (and, on io_uring, possibly already in provided buffers).
        asyncio::Transport* transport = t.get();
        p->on_data = [transport](std::string_view) { transport->pause_reading(); };
        std::string sent = tulip::testing::patterned_bytes(3 * 1024 * 1024 + 12345, 7);
        auto send_all = [&]() -> asyncio::Coro<> {
            co_await loop().sock_sendall(peer, std::string_view(sent));
            peer.shutdown(SHUT_WR);
        };
        auto sender = asyncio::create_task(send_all());
        std::size_t rounds = 0;
        while (p->eofs == 0) {
            co_await p->until([&] { return !t->is_reading() || p->eofs > 0; });
            if (p->eofs > 0) break;
            ++rounds;
            co_await asyncio::sleep(0);
            t->resume_reading();
        }
        co_await sender;
        CHECK(rounds > 1);
        CHECK(p->data.size() == sent.size());
        CHECK(p->data == sent);
        co_await p->until_lost();  // eof_received returned false: the transport closed itself
        CHECK_FALSE(p->lost_exc);
    }());
}

TEST_CASE_METHOD(LoopFixture, "transport: abort() inside data_received stops delivery at once, with more data pending",
                 "[transports][inflight]") {
    run([&]() -> asyncio::Coro<> {
        auto [ours, peer] = tulip::socket::socketpair();
        // Several deliveries' worth is waiting before reading starts (on io_uring: several
        // provided buffers completing in one batch): as much as the socket takes.
        peer.setblocking(false);
        const std::string chunk = tulip::testing::patterned_bytes(64 * 1024, 3);
        std::size_t queued = 0;
        while (::send(peer.fileno(), chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) queued += chunk.size();
        REQUIRE(queued >= 64 * 1024);
        auto [t, p] = co_await loop().connect_accepted_socket([] { return std::make_shared<Recorder>(); },
                                                              std::move(ours));
        int calls = 0;
        asyncio::Transport* transport = t.get();
        p->on_data = [&calls, transport](std::string_view) {
            ++calls;
            transport->abort();
        };
        co_await p->until_lost();
        CHECK(calls == 1);
        CHECK(p->lost == 1);
        CHECK_FALSE(p->lost_exc);
        CHECK(t->socket()->fileno() == -1);
        co_await asyncio::sleep(0);
        CHECK(calls == 1);  // nothing delivered after the abort, even what was already queued
    }());
}
