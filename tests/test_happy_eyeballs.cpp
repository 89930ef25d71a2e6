// create_connection's happy eyeballs (RFC 8305): the address interleaving and the staggered race
// of detail::staggered_connect, and the options through create_connection, on every backend.
#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "protocol_helpers.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/asyncio/detail/connect_any.hpp"
#include "tulip/asyncio/detail/staggered_connect.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Address;
using tulip::socket::AddrInfo;
using tulip::socket::Socket;
using tulip::testing::LoopFixture;
using tulip::testing::Recorder;

namespace {

AddrInfo v4(int port) { return {AF_INET, SOCK_STREAM, 0, "", Address::ipv4("127.0.0.1", port)}; }
AddrInfo v6(int port) { return {AF_INET6, SOCK_STREAM, 0, "", Address::ipv6("::1", port)}; }

std::vector<std::string> describe(const std::vector<AddrInfo>& infos) {
    std::vector<std::string> out;
    for (const auto& info : infos) out.push_back(info.address.to_string());
    return out;
}

// A port that refuses connections: bound, not listening, for as long as it lives.
struct RefusedPort {
    Socket sock{AF_INET, SOCK_STREAM};
    RefusedPort() { sock.bind(Address::ipv4("127.0.0.1", 0)); }
    AddrInfo info() const { return v4(sock.getsockname().port()); }
};

// A listening socket nobody accepts from: connects complete in the kernel's backlog.
struct Listening {
    Socket sock = tulip::socket::create_server("127.0.0.1", 0);
    AddrInfo info() const { return v4(sock.getsockname().port()); }
};

}  // namespace

TEST_CASE("happy eyeballs: interleave_addrinfos alternates families, first family first", "[eyeballs]") {
    using asyncio::detail::interleave_addrinfos;
    std::vector<AddrInfo> infos{v6(1), v6(2), v6(3), v4(4), v4(5)};
    CHECK(describe(interleave_addrinfos(infos)) == describe({v6(1), v4(4), v6(2), v4(5), v6(3)}));
    // interleave=2: one more of the first family before alternating (CPython's first_address_family_count).
    CHECK(describe(interleave_addrinfos(infos, 2)) == describe({v6(1), v6(2), v4(4), v6(3), v4(5)}));
    // More than the first family holds: all of it, then the rest.
    CHECK(describe(interleave_addrinfos(infos, 9)) == describe({v6(1), v6(2), v6(3), v4(4), v4(5)}));
    // The first family is the first address's, wherever the others appear.
    std::vector<AddrInfo> mixed{v4(1), v4(2), v6(3), v4(4), v6(5)};
    CHECK(describe(interleave_addrinfos(mixed)) == describe({v4(1), v6(3), v4(2), v6(5), v4(4)}));
    CHECK(interleave_addrinfos({}).empty());
    CHECK(describe(interleave_addrinfos({v4(1), v4(2)})) == describe({v4(1), v4(2)}));
    CHECK_THROWS_AS(interleave_addrinfos(infos, 0), tulip::ValueError);
}

TEST_CASE_METHOD(LoopFixture, "happy eyeballs: a refused address starts the next at once", "[eyeballs]") {
    run([&]() -> asyncio::Coro<> {
        RefusedPort refused;
        Listening listening;
        // The delay is far longer than the test's timeout: only the failure can start attempt 2.
        std::vector<AddrInfo> infos{refused.info(), listening.info()};
        Socket sock = co_await asyncio::detail::staggered_connect(loop(), infos, 3600);
        CHECK(sock.getpeername() == listening.sock.getsockname());
        CHECK_FALSE(sock.getblocking());
    }());
}

TEST_CASE_METHOD(LoopFixture, "happy eyeballs: with no delay every attempt races, one wins, the others are closed",
                 "[eyeballs]") {
    run([&]() -> asyncio::Coro<> {
        Listening a, b, c;
        std::vector<AddrInfo> infos{a.info(), b.info(), c.info()};
        Socket sock = co_await asyncio::detail::staggered_connect(loop(), infos, 0);
        Address peer = sock.getpeername();
        CHECK((peer == a.sock.getsockname() || peer == b.sock.getsockname() || peer == c.sock.getsockname()));
        // The losers' sockets are gone (the fixture checks that no fd is left); the winner works.
        co_await loop().sock_sendall(sock, std::string_view("x"));
    }());
}

TEST_CASE_METHOD(LoopFixture, "happy eyeballs: all attempts failing raise the combined error", "[eyeballs]") {
    run([&]() -> asyncio::Coro<> {
        RefusedPort one;
        // All refused alike: ConnectionRefusedError, as connect_any.
        std::vector<AddrInfo> both{one.info(), one.info()};
        std::vector<AddrInfo> single{one.info()};
        std::vector<AddrInfo> none;
        CHECK_THROWS_AS(co_await asyncio::detail::staggered_connect(loop(), both, 3600), tulip::ConnectionRefusedError);
        CHECK_THROWS_AS(co_await asyncio::detail::staggered_connect(loop(), single, 0), tulip::ConnectionRefusedError);
        // Different errors: one OSError naming every address.
        AddrInfo bad_family{AF_INET6, SOCK_STREAM, 0, "", Address::ipv4("127.0.0.1", 1)};
        std::vector<AddrInfo> mixed{one.info(), bad_family};
        std::string message;
        try {
            co_await asyncio::detail::staggered_connect(loop(), mixed, 3600);
        } catch (const tulip::OSError& e) {
            message = e.what();
        }
        CHECK(message.find("Multiple exceptions: ") == 0);
        CHECK(message.find(one.info().address.to_string()) != std::string::npos);
        CHECK(message.find("Success") == std::string::npos);
        CHECK_THROWS_AS(co_await asyncio::detail::staggered_connect(loop(), none, 1), tulip::ValueError);
        CHECK_THROWS_AS(co_await asyncio::detail::staggered_connect(loop(), single, -1), tulip::ValueError);
    }());
}

namespace {

// What an awaited connect raised, as errno, dynamic type and message.
struct Raised {
    int errno_value = -1;
    bool refused = false;
    std::string message;
};

template <class Connect>
asyncio::Coro<Raised> raised_by(Connect connect) {
    Raised out;
    try {
        co_await connect();
    } catch (const tulip::OSError& e) {
        out.errno_value = e.errno_value();
        out.refused = dynamic_cast<const tulip::ConnectionRefusedError*>(&e) != nullptr;
        out.message = e.what();
    }
    co_return out;
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "connect errors: different refused addresses give ECONNREFUSED, never errno 0",
                 "[eyeballs]") {
    run([&]() -> asyncio::Coro<> {
        // Two refused ports: the messages differ (each names its address), the errno does not.
        RefusedPort one, two;
        std::vector<AddrInfo> refused{one.info(), two.info()};
        auto sequential = [&]() -> asyncio::Coro<Socket> { return asyncio::detail::connect_any(loop(), refused); };
        auto staggered = [&]() -> asyncio::Coro<Socket> {
            return asyncio::detail::staggered_connect(loop(), refused, 3600);
        };
        std::vector<Raised> results;
        results.push_back(co_await raised_by(sequential));
        results.push_back(co_await raised_by(staggered));
        for (const Raised& r : results) {
            CHECK(r.errno_value == ECONNREFUSED);
            CHECK(r.refused);
            CHECK(r.message.find(one.info().address.to_string()) != std::string::npos);
            CHECK(r.message.find(two.info().address.to_string()) != std::string::npos);
            CHECK(r.message.find("Success") == std::string::npos);
        }
        // Different errnos: errno 0 (Python's None), every error listed, still no "Success".
        AddrInfo bad_family{AF_INET6, SOCK_STREAM, 0, "", Address::ipv4("127.0.0.1", 1)};
        std::vector<AddrInfo> mixed{one.info(), bad_family};
        auto mixed_connect = [&]() -> asyncio::Coro<Socket> { return asyncio::detail::connect_any(loop(), mixed); };
        Raised r = co_await raised_by(mixed_connect);
        CHECK(r.errno_value == 0);
        CHECK_FALSE(r.refused);
        CHECK(r.message.find("Multiple exceptions: ") == 0);
        CHECK(r.message.find("Connection refused") != std::string::npos);
        CHECK(r.message.find("Success") == std::string::npos);
    }());
}

TEST_CASE_METHOD(LoopFixture, "happy eyeballs: cancelling the race cancels every attempt", "[eyeballs]") {
    run([&]() -> asyncio::Coro<> {
        Listening a, b;
        std::vector<AddrInfo> infos{a.info(), b.info()};
        auto race = loop().create_task(asyncio::detail::staggered_connect(loop(), infos, 0));
        // One iteration: the race has started its attempts and waits for them.
        co_await asyncio::sleep(0);
        REQUIRE_FALSE(race.done());
        race.cancel();
        CHECK_THROWS_AS(co_await race, asyncio::CancelledError);
        // The fixture checks at teardown that no fd, backend op, timer or task is left.
    }());
}

TEST_CASE_METHOD(LoopFixture, "happy eyeballs: create_connection with happy_eyeballs_delay", "[eyeballs]") {
    run([&]() -> asyncio::Coro<> {
        Listening listening;
        asyncio::ConnectionOptions options;
        options.happy_eyeballs_delay = 0.25;
        auto [t, p] = co_await loop().create_connection([] { return std::make_shared<Recorder>(); },
                                                        std::string("127.0.0.1"),
                                                        listening.sock.getsockname().port(), std::move(options));
        CHECK(t->peername() == listening.sock.getsockname());
        t->close();
        co_await p->until_lost();
        asyncio::ConnectionOptions bad;
        bad.happy_eyeballs_delay = 0.25;
        bad.interleave = 0;
        CHECK_THROWS_AS(co_await loop().create_connection([] { return std::make_shared<Recorder>(); },
                                                          std::string("127.0.0.1"),
                                                          listening.sock.getsockname().port(), std::move(bad)),
                        tulip::ValueError);
    }());
}
