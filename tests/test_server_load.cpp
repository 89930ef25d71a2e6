// Servers under load, on every backend: many concurrent connections at once (issue 5's 1,000
// connections; reliability check 25's accept storm, in small), each checked byte for byte.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "protocol_helpers.hpp"
#include "tulip/asyncio.hpp"

namespace asyncio = tulip::asyncio;
using tulip::testing::LoopFixture;

namespace {

// How many connections this process can hold: both ends are ours, so two fds each, plus
// headroom. The soft limit is raised to the hard one first; select stops at FD_SETSIZE.
std::size_t connections_possible(std::size_t wanted, std::string_view backend) {
    ::rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
        ::getrlimit(RLIMIT_NOFILE, &lim);
    }
    std::size_t by_limit = lim.rlim_cur > 200 ? (static_cast<std::size_t>(lim.rlim_cur) - 100) / 2 : 0;
    if (backend == "select") by_limit = std::min<std::size_t>(by_limit, 400);  // FD_SETSIZE 1024
    return std::min(wanted, by_limit);
}

asyncio::Coro<bool> echo_one(int port, std::size_t index) {
    std::string sent = tulip::testing::patterned_bytes(4096 + index % 977, static_cast<std::uint32_t>(index));
    auto [reader, writer] = co_await asyncio::open_connection(std::string("127.0.0.1"), port);
    writer.write(sent);
    co_await writer.drain();
    writer.write_eof();
    std::string got = co_await reader.read(-1);  // until the server closes
    writer.close();
    co_await writer.wait_closed();
    co_return got == sent;
}

}  // namespace

// Runs n clients at once against one echo server; returns how many got their own bytes back.
static asyncio::Coro<std::size_t> echo_load(asyncio::EventLoop& loop, std::size_t n) {
    auto factory = [] { return std::make_shared<tulip::testing::EchoBack>(); };
    asyncio::ServerOptions options;
    options.backlog = 1024;  // all of them connect at once: an accept storm in small
    auto server = co_await loop.create_server(factory, std::string("127.0.0.1"), 0, std::move(options));
    int port = server->sockets().at(0).getsockname().port();
    std::vector<asyncio::Task<bool>> clients;
    clients.reserve(n);
    for (std::size_t i = 0; i < n; ++i) clients.push_back(asyncio::create_task(echo_one(port, i)));
    std::size_t good = 0;
    for (auto& c : clients) good += (co_await c) ? 1 : 0;
    server->close();
    co_await server->wait_closed();
    co_return good;
}

TEST_CASE_METHOD(LoopFixture, "server: 1,000 concurrent connections each echo their own bytes", "[server][load]") {
    const std::size_t n = connections_possible(1000, loop().backend_name());
    if (n < 1000) WARN("running " << n << " connections on " << loop().backend_name() << " (fd limits)");
    REQUIRE(n >= 100);
    CHECK(run(echo_load(loop(), n)) == n);
}

namespace {

// A loop whose completion backend lends its connections only 16 read buffers of 4 KiB.
class SmallReadPoolFixture : public LoopFixture {
public:
    SmallReadPoolFixture() : LoopFixture(options()) {}

private:
    static asyncio::LoopOptions options() {
        asyncio::LoopOptions o;
        o.read_buffer_pool = asyncio::ReadBufferPool{16, 4096};
        return o;
    }
};

}  // namespace

// On io_uring the pool runs dry again and again: reads must wait for buffers and then go on,
// with nothing dropped or reordered (issue 6). The readiness backends ignore the pool.
TEST_CASE_METHOD(SmallReadPoolFixture, "server: 1,000 busy connections share 16 read buffers", "[server][load]") {
    const std::size_t n = connections_possible(1000, loop().backend_name());
    REQUIRE(n >= 100);
    CHECK(run(echo_load(loop(), n)) == n);
}
