// Reliability check 12, slowloris: a peer that sends one byte every 100 ms and never a newline
// must not hold a streams server hostage. The server's per-line read timeout
// (wait_for(readline(), 1 s)) raises TimeoutError, the read is cancelled cleanly and the
// connection and its buffer are freed, while an echo client on the same server keeps getting its
// echoes. Latency under a slowloris (the check's p99 figure) is measured in bench/, not here:
// tests make no timing assertions. Every backend.
#include <memory>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using asyncio::StreamReader;
using asyncio::StreamWriter;
using tulip::socket::Address;
using tulip::socket::Socket;
using tulip::testing::LoopFixture;
using tulip::testing::open_fd_count;

namespace {

constexpr double line_timeout = 1.0;  // the server's per-line read timeout
constexpr double drip_interval = 0.1;
// Round trips the echo client must complete while the slowloris connection is open (about one
// second): at most one per 100 ms even on a loaded machine; a server blocked by the slow peer
// completes none.
constexpr int min_round_trips = 10;

// What the server saw on one connection.
struct Connection {
    bool timed_out = false;
    std::string buffered_at_timeout;  // the partial line the cancelled readline left behind
    std::weak_ptr<asyncio::Transport> transport;
    bool handler_done = false;
};

// The server's handler: echo line by line, each line read with a timeout; at the timeout (or
// EOF) close the connection.
asyncio::Coro<> echo_with_timeout(std::vector<std::shared_ptr<Connection>>& seen, StreamReader reader,
                                  StreamWriter writer) {
    auto conn = std::make_shared<Connection>();
    conn->transport = writer.transport();
    seen.push_back(conn);
    try {
        for (;;) {
            std::string line = co_await asyncio::wait_for(reader.readline(), line_timeout);
            if (line.empty()) break;  // EOF
            writer.write(line);
            co_await writer.drain();
        }
    } catch (const asyncio::TimeoutError&) {
        conn->timed_out = true;
        conn->buffered_at_timeout = std::string(reader.buffered());
    }
    writer.close();
    co_await writer.wait_closed();
    conn->handler_done = true;
}

// The slow peer: one byte every drip_interval, driven by the loop's timers, until stopped or the
// server's close makes a send fail.
asyncio::Coro<> drip(Socket& sock, const bool& stop, int& sent) {
    auto& loop = asyncio::get_running_loop();
    while (!stop) {
        try {
            co_await loop.sock_sendall(sock, std::string_view("x"));
        } catch (const tulip::OSError&) {
            co_return;  // reset by the server's close
        }
        ++sent;
        co_await asyncio::sleep(drip_interval);
    }
}

// (Never CHECK(co_await ...): Catch2 repeats the expression in a `false && ...` that g++ 12
// still evaluates, so the await would run twice.)

// The well-behaved client: one round trip after another until stopped, counting them in `done`.
asyncio::Coro<> echo_client(StreamReader reader, StreamWriter writer, const bool& stop, int& done) {
    while (!stop) {
        std::string line = "ping " + std::to_string(done) + "\n";
        writer.write(line);
        co_await writer.drain();
        std::string echo = co_await reader.readline();
        if (echo != line) {
            CHECK(echo == line);
            break;
        }
        ++done;
    }
    writer.write_eof();
    std::string rest = co_await reader.read();  // the server closes after our EOF
    CHECK(rest.empty());
    writer.close();
    co_await writer.wait_closed();
}

// Waits (by loop iterations, not time) for the handler of `conn` to finish and its transport to
// be released.
asyncio::Coro<bool> released(const Connection& conn) {
    for (int i = 0; i < 1000 && !(conn.handler_done && conn.transport.expired()); ++i) co_await asyncio::sleep(0);
    co_return conn.handler_done && conn.transport.expired();
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "slowloris: a dripping peer times out and is closed while echoes go on",
                 "[slowloris]") {
    run([&]() -> asyncio::Coro<> {
        std::vector<std::shared_ptr<Connection>> seen;
        auto handler = [&seen](StreamReader r, StreamWriter w) { return echo_with_timeout(seen, r, w); };
        auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
        Address address = server->sockets().at(0).getsockname();

        // The echo client's first round trip, so that the server has accepted it before the fd
        // count is taken.
        auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", address.port());
        writer.write("hello\n");
        std::string hello = co_await reader.readline();
        CHECK(hello == "hello\n");
        std::size_t fds_before_slow = open_fd_count();
        bool stop_echo = false;
        int trips = 0;
        auto echoes = loop().create_task(echo_client(reader, writer, stop_echo, trips));

        Socket slow(AF_INET, SOCK_STREAM);
        slow.setblocking(false);
        co_await loop().sock_connect(slow, address);
        const int trips_at_slow_start = trips;
        bool stop_drip = false;
        int dripped = 0;
        auto dripping = loop().create_task(drip(slow, stop_drip, dripped));

        // The server closes the slow connection at its timeout: EOF, or a reset if a byte was in
        // flight when it closed. The generous bound only catches a hang.
        std::string got = "unset";
        try {
            got = co_await asyncio::wait_for(loop().sock_recv(slow, 16), 30.0);
        } catch (const tulip::ConnectionResetError&) {
            got.clear();
        }
        CHECK(got.empty());
        const int trips_while_slow = trips - trips_at_slow_start;
        stop_drip = true;
        co_await dripping;
        slow.close();

        // The server side: exactly one connection timed out, holding the partial line, and its
        // transport (with the reader's buffer) is gone.
        REQUIRE(seen.size() == 2);
        auto slow_conn = seen[0]->timed_out ? seen[0] : seen[1];
        CHECK(slow_conn->timed_out);
        CHECK_FALSE((seen[0]->timed_out && seen[1]->timed_out));
        CHECK(dripped >= 1);
        CHECK_FALSE(slow_conn->buffered_at_timeout.empty());
        CHECK(slow_conn->buffered_at_timeout.find('\n') == std::string::npos);
        CHECK(slow_conn->buffered_at_timeout.size() <= static_cast<std::size_t>(dripped));
        const bool freed = co_await released(*slow_conn);
        CHECK(freed);
        CHECK(server->active_connections() == 1);
        CHECK(open_fd_count() == fds_before_slow);

        // The echo client kept going through the whole slow period.
        CHECK_FALSE(echoes.done());
        CHECK(trips_while_slow >= min_round_trips);
        stop_echo = true;
        co_await echoes;
        server->close();
        co_await server->wait_closed();
    }());
}
