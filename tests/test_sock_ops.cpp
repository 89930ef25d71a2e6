// The loop's socket operations on raw non-blocking fds (detail::sock_*), on every backend.
// EventLoop's Socket-typed sock_* methods are thin wrappers over these.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "socket_helpers.hpp"
#include "tulip/asyncio/detail/sock_ops.hpp"

namespace asyncio = tulip::asyncio;
namespace detail = tulip::asyncio::detail;
using tulip::testing::LoopFixture;
using Fd = tulip::testing::OwnedFd;
using tulip::testing::SocketPair;

namespace {

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

// A listening TCP socket on 127.0.0.1 and an ephemeral port.
struct Listener {
    Fd fd{::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    sockaddr_in addr = loopback(0);
    Listener() {
        REQUIRE(fd.get() >= 0);
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        REQUIRE(::listen(fd.get(), 16) == 0);
    }
};

Fd tcp_socket() {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    REQUIRE(s.get() >= 0);
    return s;
}

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

}  // namespace

TEST_CASE_METHOD(LoopFixture, "sock_ops: recv waits for data that another task sends", "[sock_ops]") {
    SocketPair p;
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto reader = asyncio::create_task(detail::sock_recv(loop(), p.a.get(), 100));
        co_await asyncio::sleep(0);
        CHECK_FALSE(reader.done());  // nothing to read yet: it waits
        co_await detail::sock_sendall(loop(), p.b.get(), bytes("hello"));
        co_return co_await reader;
    };
    CHECK(run(body()) == "hello");
}

TEST_CASE_METHOD(LoopFixture, "sock_ops: recv returns empty at end of stream", "[sock_ops]") {
    SocketPair p;
    REQUIRE(::shutdown(p.b.get(), SHUT_WR) == 0);
    auto body = [&]() -> asyncio::Coro<std::string> { co_return co_await detail::sock_recv(loop(), p.a.get(), 10); };
    CHECK(run(body()).empty());
}

TEST_CASE_METHOD(LoopFixture, "sock_ops: sendall of 8 MiB to a slow reader arrives whole and in order",
                 "[sock_ops]") {
    SocketPair p;
    std::string data(8 << 20, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
    auto reader = [&]() -> asyncio::Coro<std::string> {
        std::string got;
        for (;;) {
            std::string chunk = co_await detail::sock_recv(loop(), p.a.get(), 65536);
            if (chunk.empty()) co_return got;
            got += chunk;
            if (got.size() % (1 << 20) < 65536) co_await asyncio::sleep(0);  // let the writer block
        }
    };
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto r = asyncio::create_task(reader());
        co_await detail::sock_sendall(loop(), p.b.get(), bytes(data));
        REQUIRE(::shutdown(p.b.get(), SHUT_WR) == 0);
        co_return co_await r;
    };
    std::string got = run(body());
    CHECK(got.size() == data.size());
    CHECK(got == data);
}

TEST_CASE_METHOD(LoopFixture, "sock_ops: a cancelled recv consumes nothing and leaves nothing registered",
                 "[sock_ops][cancel]") {
    SocketPair p;
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto reader = asyncio::create_task(detail::sock_recv(loop(), p.a.get(), 100));
        co_await asyncio::sleep(0);
        CHECK(loop().stats().pending_ops >= 1);
        reader.cancel("no longer needed");
        try {
            co_await reader;
            FAIL("the recv was not cancelled");
        } catch (const asyncio::CancelledError& e) {
            CHECK(e.message() == "no longer needed");
        }
        // The data sent afterwards is all there for the next reader.
        REQUIRE(::send(p.b.get(), "after", 5, 0) == 5);
        co_return co_await detail::sock_recv(loop(), p.a.get(), 100);
    };
    CHECK(run(body()) == "after");
    // A completion backend confirms the cancellation on a later wait.
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
    CHECK(loop().stats().pending_ops == 0);
}

TEST_CASE_METHOD(LoopFixture, "sock_ops: cancel a waiting recv, then close its fd", "[sock_ops][cancel]") {
    SocketPair p;
    auto body = [&]() -> asyncio::Coro<> {
        auto reader = asyncio::create_task(detail::sock_recv(loop(), p.a.get(), 100));
        co_await asyncio::sleep(0);
        reader.cancel();
        p.a.close();
        CHECK_THROWS_AS(co_await reader, asyncio::CancelledError);
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "sock_ops: connect, accept and echo over TCP loopback", "[sock_ops]") {
    Listener listener;
    auto server = [&]() -> asyncio::Coro<std::string> {
        sockaddr_storage peer{};
        socklen_t peer_len = 0;
        Fd conn(co_await detail::sock_accept(loop(), listener.fd.get(), peer, peer_len));
        CHECK(peer.ss_family == AF_INET);
        CHECK((::fcntl(conn.get(), F_GETFL) & O_NONBLOCK) != 0);
        CHECK((::fcntl(conn.get(), F_GETFD) & FD_CLOEXEC) != 0);
        std::string line = co_await detail::sock_recv(loop(), conn.get(), 100);
        co_await detail::sock_sendall(loop(), conn.get(), bytes("echo: " + line));
        co_return line;
    };
    auto client = [&]() -> asyncio::Coro<std::string> {
        Fd s = tcp_socket();
        co_await detail::sock_connect(loop(), s.get(), reinterpret_cast<sockaddr*>(&listener.addr), sizeof listener.addr,
                                      "connect");
        co_await detail::sock_sendall(loop(), s.get(), bytes("ping"));
        co_return co_await detail::sock_recv(loop(), s.get(), 100);
    };
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto srv = asyncio::create_task(server());
        std::string reply = co_await client();
        std::string heard = co_await srv;
        CHECK(heard == "ping");
        co_return reply;
    };
    CHECK(run(body()) == "echo: ping");
}

TEST_CASE_METHOD(LoopFixture, "sock_ops: a refused connect raises ConnectionRefusedError naming the call",
                 "[sock_ops]") {
    sockaddr_in closed_port{};
    {
        Listener gone;  // a port that was just free: bind it, close it, connect to it
        closed_port = gone.addr;
    }
    auto body = [&]() -> asyncio::Coro<> {
        Fd s = tcp_socket();
        co_await detail::sock_connect(loop(), s.get(), reinterpret_cast<sockaddr*>(&closed_port), sizeof closed_port,
                                      "connect 127.0.0.1:" + std::to_string(ntohs(closed_port.sin_port)));
    };
    try {
        run(body());
        FAIL("connect succeeded");
    } catch (const tulip::ConnectionRefusedError& e) {
        CHECK(std::string(e.what()).find("connect 127.0.0.1:" + std::to_string(ntohs(closed_port.sin_port))) == 0);
        CHECK(e.errno_value() == ECONNREFUSED);
    }
}

TEST_CASE_METHOD(LoopFixture, "sock_ops: a peer reset raises ConnectionResetError and the loop carries on",
                 "[sock_ops]") {
    Listener listener;
    auto body = [&]() -> asyncio::Coro<> {
        Fd client = tcp_socket();
        auto accepting = [&]() -> asyncio::Coro<int> {
            sockaddr_storage peer{};
            socklen_t len = 0;
            co_return co_await detail::sock_accept(loop(), listener.fd.get(), peer, len);
        };
        auto acc = asyncio::create_task(accepting());
        co_await detail::sock_connect(loop(), client.get(), reinterpret_cast<sockaddr*>(&listener.addr),
                                      sizeof listener.addr, "connect");
        Fd conn(co_await acc);
        auto reader = asyncio::create_task(detail::sock_recv(loop(), client.get(), 100));
        co_await asyncio::sleep(0);
        linger hard{1, 0};  // close with RST
        REQUIRE(::setsockopt(conn.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard) == 0);
        conn.close();
        CHECK_THROWS_AS(co_await reader, tulip::ConnectionResetError);
        // The loop is still fine.
        co_await asyncio::sleep(0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "sock_ops: UDP sendto and recvfrom_into keep datagram boundaries", "[sock_ops]") {
    Fd server(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    Fd client(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in addr = loopback(0);
    REQUIRE(::bind(server.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(server.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    auto body = [&]() -> asyncio::Coro<std::vector<std::string>> {
        std::vector<std::string> got;
        auto receive = [&]() -> asyncio::Coro<> {
            for (int i = 0; i < 3; ++i) {
                std::vector<std::byte> buf(64);
                sockaddr_storage from{};
                socklen_t from_len = 0;
                std::size_t n = co_await detail::sock_recvfrom_into(loop(), server.get(), buf, from, from_len);
                CHECK(from.ss_family == AF_INET);
                got.emplace_back(reinterpret_cast<const char*>(buf.data()), n);
            }
        };
        auto r = asyncio::create_task(receive());
        co_await asyncio::sleep(0);
        for (std::string_view d : {"one", "two!", "three"}) {
            // Never CHECK(co_await ...): Catch2 may evaluate the expression twice.
            std::size_t sent = co_await detail::sock_sendto(loop(), client.get(), bytes(d),
                                                            reinterpret_cast<sockaddr*>(&addr), sizeof addr);
            CHECK(sent == d.size());
        }
        co_await r;
        co_return got;
    };
    CHECK(run(body()) == std::vector<std::string>{"one", "two!", "three"});
}

TEST_CASE_METHOD(LoopFixture, "sock_ops: a bad fd raises OSError EBADF, nothing registered", "[sock_ops]") {
    auto body = [&]() -> asyncio::Coro<> { co_await detail::sock_recv(loop(), 1'000'000, 10); };
    try {
        run(body());
        FAIL("recv on a bad fd succeeded");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == EBADF);
        CHECK(std::string(e.what()).find("recv") == 0);
    }
}

TEST_CASE("sock_ops: a loop closed while a task waits in recv releases its operation", "[sock_ops]") {
    auto fds_before = tulip::testing::open_fd_count();
    {
        SocketPair p;
        asyncio::EventLoop loop;
        auto task = loop.create_task(detail::sock_recv(loop, p.a.get(), 10));
        loop.run_until_complete([]() -> asyncio::Coro<> {
            co_await asyncio::sleep(0);
            co_await asyncio::sleep(0);
        }());
        CHECK(loop.stats().pending_ops == 1);
        loop.set_exception_handler([](asyncio::EventLoop&, const asyncio::ExceptionContext&) {});
        loop.close();  // the task is destroyed pending; its operation goes with it
        CHECK(loop.stats().pending_ops == 0);
    }
    CHECK(tulip::testing::open_fd_count() == fds_before);
}
