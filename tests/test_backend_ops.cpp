// The backend contract's socket operations, driven through Backend::wait() directly, on the
// backend TULIP_BACKEND names (the suite runs once per backend).
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/uio.h>

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "support/backend_helpers.hpp"
#include "support/socket_helpers.hpp"

using namespace tulip::testing;
using tulip::asyncio::detail::Backend;
using tulip::asyncio::detail::make_backend;
using tulip::asyncio::detail::OpKind;
namespace be = tulip::asyncio::detail;

namespace {

std::unique_ptr<Backend> backend_under_test() { return make_backend(""); }

// Sends all of `text` with send operations, resubmitting after partial sends.
void send_all(Backend& b, int fd, const std::string& text) {
    Probe p(b);
    std::size_t sent = 0;
    while (sent < text.size()) {
        iovec iov{const_cast<char*>(text.data()) + sent, text.size() - sent};
        prepare_send(p, fd, &iov, 1);
        std::size_t before = p.results.size();
        b.submit(p);
        drive(b, [&] { return p.results.size() > before; }, "a send");
        REQUIRE(p.last() > 0);
        sent += static_cast<std::size_t>(p.last());
    }
}

// Receives exactly n bytes with recv operations.
std::string recv_exactly(Backend& b, int fd, std::size_t n) {
    Probe p(b);
    std::string out;
    char buf[65536];
    while (out.size() < n) {
        prepare_recv(p, fd, buf, std::min(sizeof buf, n - out.size()));
        std::size_t before = p.results.size();
        b.submit(p);
        drive(b, [&] { return p.results.size() > before; }, "a recv");
        REQUIRE(p.last() > 0);
        out.append(buf, static_cast<std::size_t>(p.last()));
    }
    return out;
}

void echo_both_ways(Backend& b, int x, int y) {
    send_all(b, x, "ping");
    CHECK(recv_exactly(b, y, 4) == "ping");
    send_all(b, y, "pong!");
    CHECK(recv_exactly(b, x, 5) == "pong!");
}

}  // namespace

TEST_CASE("backend ops: recv and send echo over a socketpair", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    auto [x, y] = unix_stream_pair();
    OwnedFd a(*b, x), c(*b, y);
    for (int round = 0; round < 3; ++round) echo_both_ways(*b, a.get(), c.get());
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: connect, accept and echo over TCP loopback", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    OwnedFd listener(*b, tcp_listener());
    OwnedFd client(*b, new_socket(SOCK_STREAM));

    sockaddr_in to = local_address(listener.get());
    Probe conn(*b);
    conn.kind = OpKind::connect;
    conn.fd = client.get();
    conn.addr = reinterpret_cast<sockaddr*>(&to);
    conn.addrlen = sizeof to;

    sockaddr_in peer{};
    Probe acc(*b);
    acc.kind = OpKind::accept;
    acc.fd = listener.get();
    acc.addr = reinterpret_cast<sockaddr*>(&peer);
    acc.addrlen = sizeof peer;

    b->submit(conn);
    b->submit(acc);
    drive(*b, [&] { return conn.finals == 1 && acc.finals == 1; }, "connect and accept");
    REQUIRE(conn.last() == 0);
    REQUIRE(acc.last() >= 0);
    OwnedFd server(*b, acc.last());
    CHECK(acc.addrlen == sizeof(sockaddr_in));
    CHECK(peer.sin_port == local_address(client.get()).sin_port);
    CHECK((::fcntl(server.get(), F_GETFL) & O_NONBLOCK) != 0);
    CHECK((::fcntl(server.get(), F_GETFD) & FD_CLOEXEC) != 0);

    echo_both_ways(*b, client.get(), server.get());
    // A larger transfer crosses several reads and partial writes.
    std::string big(1 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    std::string got;
    Probe tx(*b), rx(*b);
    std::size_t sent = 0;
    char buf[16384];
    bool tx_busy = false, rx_busy = false;
    iovec iov{};
    drive(*b, [&] {
        if (tx_busy && tx.finals > 0) {
            tx_busy = false;
            REQUIRE(tx.last() > 0);
            sent += static_cast<std::size_t>(tx.last());
            tx.finals = 0;
        }
        if (rx_busy && rx.finals > 0) {
            rx_busy = false;
            REQUIRE(rx.last() > 0);
            got.append(buf, static_cast<std::size_t>(rx.last()));
            rx.finals = 0;
        }
        if (!tx_busy && sent < big.size()) {
            iov = {big.data() + sent, big.size() - sent};
            prepare_send(tx, client.get(), &iov, 1);
            b->submit(tx);
            tx_busy = true;
        }
        if (!rx_busy && got.size() < big.size()) {
            prepare_recv(rx, server.get(), buf, sizeof buf);
            b->submit(rx);
            rx_busy = true;
        }
        return got.size() == big.size() && !tx_busy && !rx_busy;
    }, "1 MiB over TCP");
    CHECK(got == big);
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: a vectored send of many buffers arrives whole and in order", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    auto [x, y] = unix_stream_pair();
    OwnedFd a(*b, x), c(*b, y);

    std::vector<std::string> parts;
    std::string expected;
    for (int i = 0; i < 200; ++i) {
        parts.push_back(std::to_string(i) + std::string(static_cast<std::size_t>(i % 7) * 100, 'x') + ";");
        expected += parts.back();
    }
    std::vector<iovec> iov;
    for (auto& s : parts) iov.push_back({s.data(), s.size()});

    Probe tx(*b);
    Probe rx(*b);
    std::string got;
    char buf[4096];
    std::size_t first = 0;  // iovecs fully sent
    bool tx_busy = false, rx_busy = false;
    int sends = 0;
    drive(*b, [&] {
        if (tx_busy && tx.finals > 0) {
            tx_busy = false;
            tx.finals = 0;
            REQUIRE(tx.last() > 0);
            // Skip what went out; a partial send leaves the rest for the next one.
            auto n = static_cast<std::size_t>(tx.last());
            while (n > 0) {
                std::size_t take = std::min(n, iov[first].iov_len);
                iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + take;
                iov[first].iov_len -= take;
                n -= take;
                if (iov[first].iov_len == 0) ++first;
            }
        }
        if (rx_busy && rx.finals > 0) {
            rx_busy = false;
            rx.finals = 0;
            REQUIRE(rx.last() > 0);
            got.append(buf, static_cast<std::size_t>(rx.last()));
        }
        if (!tx_busy && first < iov.size()) {
            prepare_send(tx, a.get(), iov.data() + first, iov.size() - first);
            b->submit(tx);
            tx_busy = true;
            ++sends;
        }
        if (!rx_busy && got.size() < expected.size()) {
            prepare_recv(rx, c.get(), buf, sizeof buf);
            b->submit(rx);
            rx_busy = true;
        }
        return got.size() == expected.size() && !tx_busy && !rx_busy;
    }, "the vectored send");
    CHECK(got == expected);
    CHECK(sends <= 4);  // 60 KiB in 200 buffers: one sendmsg each time, not one per buffer
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: recvmsg and sendmsg carry datagrams and their addresses", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    OwnedFd u1(*b, new_socket(SOCK_DGRAM)), u2(*b, new_socket(SOCK_DGRAM));
    sockaddr_in any = loopback();
    REQUIRE(::bind(u1.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) == 0);
    REQUIRE(::bind(u2.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) == 0);
    sockaddr_in to = local_address(u2.get());

    char in[64];
    iovec in_iov{in, sizeof in};
    sockaddr_in from{};
    Probe rx(*b);
    rx.kind = OpKind::recvmsg;
    rx.fd = u2.get();
    rx.msg.msg_iov = &in_iov;
    rx.msg.msg_iovlen = 1;
    rx.msg.msg_name = &from;
    rx.msg.msg_namelen = sizeof from;
    b->submit(rx);

    for (const char* text : {"first", "second datagram"}) {
        std::string out = text;
        iovec out_iov{out.data(), out.size()};
        Probe tx(*b);
        tx.kind = OpKind::sendmsg;
        tx.fd = u1.get();
        tx.msg.msg_iov = &out_iov;
        tx.msg.msg_iovlen = 1;
        tx.msg.msg_name = &to;
        tx.msg.msg_namelen = sizeof to;
        b->submit(tx);
        drive(*b, [&] { return tx.finals == 1 && rx.finals == 1; }, "a datagram");
        CHECK(tx.last() == static_cast<int>(out.size()));
        REQUIRE(rx.last() == static_cast<int>(out.size()));
        CHECK(std::string(in, out.size()) == out);
        CHECK(rx.msg.msg_namelen == sizeof(sockaddr_in));
        CHECK(from.sin_port == local_address(u1.get()).sin_port);
        rx.finals = 0;
        rx.msg.msg_namelen = sizeof from;
        b->submit(rx);
    }
    bool released = b->cancel(rx);
    drive(*b, [&] { return released || rx.finals == 1; }, "the cancelled recvmsg");
    if (!released) CHECK(rx.last() == -ECANCELED);
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: a multishot accept returns every new connection", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    OwnedFd listener(*b, tcp_listener());
    Probe acc(*b);
    acc.kind = OpKind::accept;
    acc.fd = listener.get();
    acc.flags = be::kMultishot;
    b->submit(acc);
    b->wait(0);  // armed before the clients come

    constexpr int kClients = 8;
    std::vector<OwnedFd> clients;
    sockaddr_in to = local_address(listener.get());
    for (int i = 0; i < kClients; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
        clients.emplace_back(*b, fd);
    }
    drive(*b, [&] { return acc.results.size() >= kClients; }, "the connections");
    REQUIRE(acc.results.size() == kClients);
    std::vector<OwnedFd> accepted;
    for (std::size_t i = 0; i < acc.results.size(); ++i) {
        REQUIRE(acc.results[i] >= 0);
        CHECK(acc.mores[i]);  // still accepting
        accepted.emplace_back(*b, acc.results[i]);
    }
    CHECK(acc.finals == 0);
    CHECK(b->pending_ops() == 1);
    // Each accepted fd is a working connection: the client's bytes arrive on one of them.
    send_all(*b, clients[3].get(), "hello");
    bool found = false;
    for (auto& s : accepted) {
        std::string got = drain_now(s.get());
        if (got.empty()) {
            pollfd p{s.get(), POLLIN, 0};
            if (::poll(&p, 1, 0) == 1) got = drain_now(s.get());
        }
        found = found || got == "hello";
    }
    if (!found) {  // the bytes may still be on their way through loopback
        for (auto& s : accepted) {
            pollfd p{s.get(), POLLIN, 0};
            if (::poll(&p, 1, 1000) == 1 && drain_now(s.get()) == "hello") found = true;
        }
    }
    CHECK(found);

    bool released = b->cancel(acc);
    drive(*b, [&] { return released || acc.finals == 1; }, "the cancelled accept");
    if (!released) CHECK(acc.last() == -ECANCELED);
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: connect to a closed port completes with -ECONNREFUSED", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    RefusingPort refusing;
    sockaddr_storage to{};
    socklen_t to_len = refusing.address().to_sockaddr(to);
    OwnedFd client(*b, new_socket(SOCK_STREAM));
    Probe conn(*b);
    conn.kind = OpKind::connect;
    conn.fd = client.get();
    conn.addr = reinterpret_cast<sockaddr*>(&to);
    conn.addrlen = to_len;
    b->submit(conn);
    drive(*b, [&] { return conn.finals == 1; }, "the refused connect");
    CHECK(conn.results == std::vector<int>{-ECONNREFUSED});
    CHECK(b->pending_ops() == 0);
}
