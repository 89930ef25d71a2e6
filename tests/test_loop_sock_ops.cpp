// EventLoop's sock_* methods on tulip::socket::Socket (Python's loop.sock_recv and friends),
// on every backend.
#include <string>

#include "loop_fixture.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Address;
using tulip::socket::Socket;
using tulip::testing::LoopFixture;

TEST_CASE_METHOD(LoopFixture, "loop sock_*: echo server and client over TCP loopback", "[loop_sock]") {
    Socket listener = tulip::socket::create_server("127.0.0.1", 0);
    listener.setblocking(false);
    Address where = listener.getsockname();
    auto server = [&]() -> asyncio::Coro<Address> {
        auto [conn, peer] = co_await loop().sock_accept(listener);
        CHECK_FALSE(conn.getblocking());  // Python's sock_accept makes it non-blocking
        for (;;) {
            std::string data = co_await loop().sock_recv(conn, 1024);
            if (data.empty()) break;
            co_await loop().sock_sendall(conn, data);
        }
        co_return peer;
    };
    auto client = [&]() -> asyncio::Coro<std::string> {
        Socket s(AF_INET, SOCK_STREAM);
        s.setblocking(false);
        co_await loop().sock_connect(s, where);
        co_await loop().sock_sendall(s, std::string_view("hello, tulip"));
        std::string reply;
        while (reply.size() < 12) reply += co_await loop().sock_recv(s, 1024);
        s.shutdown(SHUT_WR);
        std::string eof = co_await loop().sock_recv(s, 1024);
        CHECK(eof.empty());
        co_return reply;
    };
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto srv = asyncio::create_task(server());
        std::string reply = co_await client();
        Address peer = co_await srv;
        CHECK(peer.family() == AF_INET);
        co_return reply;
    };
    CHECK(run(body()) == "hello, tulip");
}

TEST_CASE_METHOD(LoopFixture, "loop sock_*: a blocking socket is refused with ValueError", "[loop_sock]") {
    auto [a, b] = tulip::socket::socketpair();
    auto body = [&]() -> asyncio::Coro<> { co_await loop().sock_recv(a, 10); };
    CHECK_THROWS_AS(run(body()), tulip::ValueError);
    CHECK_THROWS_WITH(run(body()), Catch::Matchers::Contains("must be non-blocking"));
}

TEST_CASE_METHOD(LoopFixture, "loop sock_*: connect to a closed port names the address", "[loop_sock]") {
    Address closed;
    {
        Socket gone = tulip::socket::create_server("127.0.0.1", 0);
        closed = gone.getsockname();
    }
    auto body = [&]() -> asyncio::Coro<> {
        Socket s(AF_INET, SOCK_STREAM);
        s.setblocking(false);
        co_await loop().sock_connect(s, closed);
    };
    CHECK_THROWS_AS(run(body()), tulip::ConnectionRefusedError);
    CHECK_THROWS_WITH(run(body()), Catch::Matchers::StartsWith("connect " + closed.to_string()));
}

TEST_CASE_METHOD(LoopFixture, "loop sock_*: UDP sendto and recvfrom", "[loop_sock]") {
    Socket server(AF_INET, SOCK_DGRAM);
    server.bind(Address::ipv4("127.0.0.1", 0));
    server.setblocking(false);
    Socket client(AF_INET, SOCK_DGRAM);
    client.bind(Address::ipv4("127.0.0.1", 0));
    client.setblocking(false);
    auto body = [&]() -> asyncio::Coro<> {
        auto receiving = asyncio::create_task(loop().sock_recvfrom(server, 100));
        co_await asyncio::sleep(0);
        std::size_t sent = co_await loop().sock_sendto(client, "datagram", server.getsockname());
        CHECK(sent == 8);
        auto [data, from] = co_await receiving;
        CHECK(data == "datagram");
        CHECK(from == client.getsockname());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "loop sock_*: a cancelled sock_accept leaves the listener usable", "[loop_sock][cancel]") {
    Socket listener = tulip::socket::create_server("127.0.0.1", 0);
    listener.setblocking(false);
    auto body = [&]() -> asyncio::Coro<> {
        auto waiting = asyncio::create_task(loop().sock_accept(listener));
        co_await asyncio::sleep(0);
        waiting.cancel();
        CHECK_THROWS_AS(co_await waiting, asyncio::CancelledError);
        Socket s(AF_INET, SOCK_STREAM);
        s.setblocking(false);
        auto accepting = asyncio::create_task(loop().sock_accept(listener));
        co_await loop().sock_connect(s, listener.getsockname());
        auto [conn, peer] = co_await accepting;
        CHECK(peer == s.getsockname());
    };
    run(body());
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
}

TEST_CASE_METHOD(LoopFixture, "loop getaddrinfo/getnameinfo: resolve without blocking the loop",
                 "[loop_sock][threads]") {
    auto body = [&]() -> asyncio::Coro<> {
        auto infos = co_await loop().getaddrinfo("127.0.0.1", 80, AF_INET, SOCK_STREAM);
        REQUIRE(infos.size() == 1);
        CHECK(infos[0].address == Address::ipv4("127.0.0.1", 80));
        auto [host, port] = co_await loop().getnameinfo(Address::ipv4("127.0.0.1", 8080),
                                                        NI_NUMERICHOST | NI_NUMERICSERV);
        CHECK(host == "127.0.0.1");
        CHECK(port == "8080");
        try {
            co_await loop().getaddrinfo("nohost.invalid", 80);
            FAIL("nohost.invalid resolved");
        } catch (const tulip::socket::gaierror& e) {
            CHECK_THAT(e.what(), Catch::Matchers::StartsWith("getaddrinfo nohost.invalid:80: "));
        }
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "loop getaddrinfo: cancelling the awaiting task raises at once",
                 "[loop_sock][threads][cancel]") {
    auto body = [&]() -> asyncio::Coro<> {
        auto lookup = asyncio::create_task(loop().getaddrinfo("localhost", 80));
        co_await asyncio::sleep(0);  // the lookup is on a worker now
        lookup.cancel();
        CHECK_THROWS_AS(co_await lookup, asyncio::CancelledError);
        // The loop still resolves afterwards.
        auto infos = co_await loop().getaddrinfo("127.0.0.1", 0, AF_INET, SOCK_DGRAM);
        CHECK(infos.size() == 1);
    };
    run(body());
}
