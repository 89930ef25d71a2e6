// Reliability check 25, accept storm: a burst of connects far beyond a create_server's backlog
// of 128. Each connect is either accepted (and then echoes its byte) or cleanly refused or reset;
// none hangs or times out; the server keeps serving and its fd count returns to the baseline.
// The clients are non-blocking sockets on the same loop (sock_connect), many in flight at once.
// On Linux's defaults (tcp_abort_on_overflow = 0) the SYNs that find the accept queue full are
// dropped and retransmitted a second later, so in practice every connect is accepted: the storm
// shows up as ListenOverflows in /proc/net/netstat and a run of a second or more. Every backend.
#include <sys/resource.h>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "loop_fixture.hpp"
#include "protocol_helpers.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Address;
using tulip::socket::Socket;
using tulip::testing::LoopFixture;
using tulip::testing::open_fd_count;

namespace {

constexpr std::size_t connects = 10000;
constexpr int backlog = 128;
// Connects in flight at once: several times the backlog, so the accept queue overflows. Two fds
// each (both ends are ours); select only sees fds below FD_SETSIZE (1024).
constexpr std::size_t in_flight = 512;
constexpr std::size_t in_flight_select = 384;
// Only to turn a hang into a failure: the storm takes a few seconds.
constexpr double storm_bound = 120.0;

// Raises the soft RLIMIT_NOFILE to the hard limit for the test, and restores it.
class RaisedFdLimit {
public:
    RaisedFdLimit() {
        ::getrlimit(RLIMIT_NOFILE, &saved_);
        ::rlimit raised = saved_;
        raised.rlim_cur = raised.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &raised);
    }
    ~RaisedFdLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
    RaisedFdLimit(const RaisedFdLimit&) = delete;
    RaisedFdLimit& operator=(const RaisedFdLimit&) = delete;

    static std::size_t current() {
        ::rlimit now{};
        ::getrlimit(RLIMIT_NOFILE, &now);
        return static_cast<std::size_t>(now.rlim_cur);
    }

private:
    ::rlimit saved_{};
};

struct Tally {
    std::size_t accepted = 0;  // connected and echoed its byte
    std::size_t refused = 0;   // ECONNREFUSED or ECONNRESET: the clean ways to be turned away
    std::vector<std::string> bad;  // anything else: a wrong echo, an early EOF, another error
};

// One client: connect, send a byte, read it back, close.
asyncio::Coro<> one_client(const Address& address, std::size_t index, Tally& tally) {
    auto& loop = asyncio::get_running_loop();
    const std::string byte(1, static_cast<char>('a' + index % 26));
    try {
        Socket sock(AF_INET, SOCK_STREAM);
        sock.setblocking(false);
        co_await loop.sock_connect(sock, address);
        co_await loop.sock_sendall(sock, byte);
        std::string echo = co_await loop.sock_recv(sock, 1);
        if (echo == byte) {
            ++tally.accepted;
        } else {
            tally.bad.push_back("connect " + std::to_string(index) + ": echo '" + echo + "'");
        }
    } catch (const tulip::OSError& e) {
        if (e.errno_value() == ECONNREFUSED || e.errno_value() == ECONNRESET) {
            ++tally.refused;
        } else {
            tally.bad.push_back("connect " + std::to_string(index) + ": " + e.what());
        }
    }
}

// One of the in-flight slots: clients one after another until all `connects` are started.
asyncio::Coro<> slot(const Address& address, std::size_t& next, Tally& tally) {
    while (next < connects) {
        const std::size_t index = next++;
        co_await one_client(address, index, tally);
    }
}

asyncio::Coro<> storm(const Address& address, std::size_t width, Tally& tally) {
    std::size_t next = 0;
    std::vector<asyncio::Task<void>> slots;
    for (std::size_t i = 0; i < width; ++i) slots.push_back(asyncio::create_task(slot(address, next, tally)));
    for (auto& s : slots) co_await s;
}

// Until the server has seen every client's close (each needs a loop iteration or so).
asyncio::Coro<> all_gone(const asyncio::Server& server) {
    while (server.active_connections() > 0) co_await asyncio::sleep(0);
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "accept storm: 10k connects against backlog 128 are accepted or refused cleanly",
                 "[accept-storm]") {
    RaisedFdLimit limit;
    const bool select = loop().backend_name() == "select";
    const std::size_t width = select ? in_flight_select : in_flight;
    REQUIRE(RaisedFdLimit::current() > 2 * width + 100);
    Tally tally;
    run([&]() -> asyncio::Coro<> {
        auto factory = [] { return std::make_shared<tulip::testing::EchoBack>(); };
        asyncio::ServerOptions options;
        options.backlog = backlog;
        auto server = co_await loop().create_server(factory, std::string("127.0.0.1"), 0, std::move(options));
        const Address address = server->sockets().at(0).getsockname();
        const std::size_t baseline = open_fd_count();

        co_await asyncio::wait_for(storm(address, width, tally), storm_bound);
        co_await asyncio::wait_for(all_gone(*server), storm_bound);
        CHECK(open_fd_count() == baseline);

        // Still serving: one more client gets its echo.
        CHECK(server->is_serving());
        Tally after;
        co_await one_client(address, 0, after);
        CHECK(after.accepted == 1);
        server->close();
        co_await server->wait_closed();
    }());
    INFO("first bad: " << (tally.bad.empty() ? std::string("none") : tally.bad.front()));
    CHECK(tally.bad.empty());
    CHECK(tally.accepted + tally.refused == connects);
    CHECK(tally.accepted > 0);
}
