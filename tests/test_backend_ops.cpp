// The backend contract's socket operations, driven through Backend::wait() directly, on the
// backend TULIP_BACKEND names (the suite runs once per backend).
#include <catch2/catch.hpp>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <thread>

#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "../src/backend/io_uring_probe.hpp"
#include "support/backend_helpers.hpp"
#include "support/socket_helpers.hpp"

using namespace tulip::testing;
using namespace tulip::testing::backend_ops;
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
    BackendFd a(*b, x), c(*b, y);
    for (int round = 0; round < 3; ++round) echo_both_ways(*b, a.get(), c.get());
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: connect, accept and echo over TCP loopback", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    BackendFd listener(*b, tcp_listener());
    BackendFd client(*b, new_socket(SOCK_STREAM));

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
    BackendFd server(*b, acc.last());
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
    BackendFd a(*b, x), c(*b, y);

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
    BackendFd u1(*b, new_socket(SOCK_DGRAM)), u2(*b, new_socket(SOCK_DGRAM));
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
    BackendFd listener(*b, tcp_listener());
    Probe acc(*b);
    acc.kind = OpKind::accept;
    acc.fd = listener.get();
    acc.flags = be::kMultishot;
    b->submit(acc);
    b->wait(0);  // armed before the clients come

    constexpr int kClients = 8;
    std::vector<BackendFd> clients;
    sockaddr_in to = local_address(listener.get());
    for (int i = 0; i < kClients; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
        clients.emplace_back(*b, fd);
    }
    drive(*b, [&] { return acc.results.size() >= kClients; }, "the connections");
    REQUIRE(acc.results.size() == kClients);
    std::vector<BackendFd> accepted;
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
    BackendFd client(*b, new_socket(SOCK_STREAM));
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

TEST_CASE("backend ops: a multishot recv reads into provided buffers until EOF", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    b->set_buffer_pool(8, 64);
    CHECK(b->provided_buffer_size() == 64);
    CHECK_THROWS_AS(b->set_buffer_pool(8, 64), tulip::RuntimeError);
    auto [x, y] = unix_stream_pair();
    BackendFd a(*b, x), c(*b, y);
    Probe rx(*b);
    prepare_multishot_recv(rx, c.get());
    b->submit(rx);
    b->wait(0);
    CHECK(rx.results.empty());  // nothing to read: no buffer taken

    std::string expected;
    for (int i = 0; i < 20; ++i) {
        std::string chunk = "message " + std::to_string(i) + std::string(static_cast<std::size_t>(i) * 10, '.');
        expected += chunk;
        send_all(*b, a.get(), chunk);
    }
    drive(*b, [&] { return rx.data.size() == expected.size(); }, "the bytes");
    CHECK(rx.data == expected);
    CHECK(rx.finals == 0);
    for (bool more : rx.mores) CHECK(more);

    ::shutdown(a.get(), SHUT_WR);
    drive(*b, [&] { return rx.finals == 1; }, "end of stream");
    CHECK(rx.last() == 0);
    CHECK_FALSE(rx.mores.back());
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: bad operations are refused with a clear error", "[backend_ops]") {
    auto b = backend_under_test();
    Probe p(*b);
    p.kind = OpKind::recv;
    p.fd = -1;
    CHECK_THROWS_AS(b->submit(p), tulip::OSError);
    auto [x, y] = unix_stream_pair();
    BackendFd a(*b, x), c(*b, y);
    p.fd = a.get();
    p.flags = be::kMultishot;  // a multishot recv needs provided buffers
    CHECK_THROWS_AS(b->submit(p), tulip::ValueError);
    p.kind = OpKind::send;
    CHECK_THROWS_AS(b->submit(p), tulip::ValueError);
    CHECK_THROWS_AS(b->set_buffer_pool(3, 64), tulip::ValueError);
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: a recv cancelled in flight, then its fd closed, completes no more", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    auto multishot = GENERATE(false, true);
    auto [x, y] = unix_stream_pair();
    BackendFd a(*b, x), c(*b, y);
    Probe rx(*b);
    char buf[16];
    if (multishot)
        prepare_multishot_recv(rx, c.get());
    else
        prepare_recv(rx, c.get(), buf, sizeof buf);
    b->submit(rx);
    b->wait(0);
    b->wait(0);
    bool released = b->cancel(rx);
    if (released) {
        CHECK(rx.results.empty());
    } else {
        drive(*b, [&] { return rx.finals == 1; }, "the final completion");
        CHECK(rx.results == std::vector<int>{-ECANCELED});
    }
    CHECK(b->pending_ops() == 0);
    std::size_t seen = rx.results.size();
    c.reset();
    ::send(a.get(), "late", 4, MSG_NOSIGNAL);
    for (int i = 0; i < 5; ++i) b->wait(1'000'000);
    CHECK(rx.results.size() == seen);
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: bytes that arrive while a recv is being cancelled are never lost", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    auto multishot = GENERATE(false, true);
    auto [x, y] = unix_stream_pair();
    BackendFd a(*b, x), c(*b, y);
    for (int round = 0; round < 20; ++round) {
        Probe rx(*b);
        char buf[64];
        if (multishot)
            prepare_multishot_recv(rx, c.get());
        else
            prepare_recv(rx, c.get(), buf, sizeof buf);
        b->submit(rx);
        b->wait(0);
        REQUIRE(::send(a.get(), "hello", 5, MSG_NOSIGNAL) == 5);
        if (round % 2) b->wait(0);  // sometimes the bytes reach the backend first
        bool released = b->cancel(rx);
        drive(*b, [&] { return released || rx.finals == 1; }, "the final completion");
        // Delivered by the operation, or still in the socket: exactly once either way.
        std::string got = multishot ? rx.data : std::string();
        for (int r : rx.results) {
            if (r > 0 && !multishot) got.append(buf, static_cast<std::size_t>(r));
            if (r < 0) CHECK(r == -ECANCELED);
        }
        got += drain_now(c.get());
        CHECK(got == "hello");
        REQUIRE(b->pending_ops() == 0);
    }
}

namespace {

// A recv whose first completion cancels its partner: when both complete in one batch, the
// partner's cancel() comes while its real completion is already on the way.
struct CancellingRecv : Probe {
    using Probe::Probe;
    CancellingRecv* partner = nullptr;
    bool cancel_called = false, cancel_released = false;

    static void on_done(Operation& op, int r) noexcept {
        auto& self = static_cast<CancellingRecv&>(op);
        Probe::on_complete(op, r);
        CancellingRecv& other = *self.partner;
        if (!self.cancel_called && other.results.empty() && !other.cancel_called) {
            other.cancel_called = true;
            other.cancel_released = self.owner->cancel(other);
        }
    }
};

}  // namespace

TEST_CASE("backend ops: a recv cancelled while its completion is on the way delivers it or leaves the bytes",
          "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    auto [x1, y1] = unix_stream_pair();
    auto [x2, y2] = unix_stream_pair();
    BackendFd a1(*b, x1), c1(*b, y1), a2(*b, x2), c2(*b, y2);
    int late_deliveries = 0;
    for (int round = 0; round < 20; ++round) {
        CancellingRecv r1(*b), r2(*b);
        char buf1[16], buf2[16];
        prepare_recv(r1, c1.get(), buf1, sizeof buf1);
        prepare_recv(r2, c2.get(), buf2, sizeof buf2);
        r1.complete = r2.complete = &CancellingRecv::on_done;
        r1.partner = &r2;
        r2.partner = &r1;
        b->submit(r1);
        b->submit(r2);
        b->wait(0);
        REQUIRE(::send(a1.get(), "one", 3, MSG_NOSIGNAL) == 3);
        REQUIRE(::send(a2.get(), "two", 3, MSG_NOSIGNAL) == 3);
        drive(*b, [&] {
            auto settled = [](CancellingRecv& r) { return r.finals == 1 || (r.cancel_called && r.cancel_released); };
            return settled(r1) && settled(r2);
        }, "both recvs");
        for (auto* r : {&r1, &r2}) {
            const char* expected = r == &r1 ? "one" : "two";
            std::string got;
            if (!r->results.empty() && r->last() > 0) got.assign(r == &r1 ? buf1 : buf2, 3);
            if (!r->results.empty() && r->last() < 0) CHECK(r->last() == -ECANCELED);
            CHECK(r->results.size() <= 1);
            got += drain_now(r == &r1 ? c1.get() : c2.get());
            CHECK(got == expected);
            if (r->cancel_called && !r->cancel_released && r->last() > 0) ++late_deliveries;
        }
        REQUIRE(b->pending_ops() == 0);
    }
    // io_uring hits the case: the partner's completion was in the same batch, after the cancel.
    if (b->name() == "io_uring") CHECK(late_deliveries > 0);
}

TEST_CASE("backend ops: a peer reset ends an armed recv with -ECONNRESET", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    auto multishot = GENERATE(false, true);
    BackendFd listener(*b, tcp_listener());
    auto [cl, sv] = tcp_pair(listener.get());
    BackendFd client(*b, cl), server(*b, sv);
    Probe rx(*b);
    char buf[64];
    if (multishot)
        prepare_multishot_recv(rx, server.get());
    else
        prepare_recv(rx, server.get(), buf, sizeof buf);
    b->submit(rx);
    b->wait(0);
    linger hard{1, 0};
    REQUIRE(::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard) == 0);
    client.reset();  // RST
    drive(*b, [&] { return rx.finals == 1; }, "the reset");
    CHECK(rx.results == std::vector<int>{-ECONNRESET});
    CHECK_FALSE(rx.mores.back());
    // Sending to the reset peer fails with an error, not SIGPIPE.
    std::string text = "after reset";
    iovec iov{text.data(), text.size()};
    Probe tx(*b);
    prepare_send(tx, server.get(), &iov, 1);
    b->submit(tx);
    drive(*b, [&] { return tx.finals == 1; }, "the send");
    CHECK((tx.last() == -EPIPE || tx.last() == -ECONNRESET));
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: a provided-buffer pool running dry makes reads wait, dropping nothing", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    constexpr std::uint32_t kBuffers = 16;
    b->set_buffer_pool(kBuffers, 256);
    // As many connections as RLIMIT_NOFILE allows, up to 1000; select stops at FD_SETSIZE.
    rlimit lim{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
    std::size_t n = std::min<std::size_t>(1000, (lim.rlim_cur - 64) / 2);
    if (b->name() == "select") n = std::min<std::size_t>(n, 400);
    INFO(n << " connections on " << b->name());

    std::vector<BackendFd> writers, readers;
    std::vector<std::unique_ptr<Probe>> probes;
    std::vector<std::string> expected(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto [w, r] = unix_stream_pair();
        writers.emplace_back(*b, w);
        readers.emplace_back(*b, r);
        for (int part = 0; part < 3; ++part) {
            std::string chunk = "<" + std::to_string(i) + "." + std::to_string(part) + ">" +
                                std::string(200 + static_cast<std::size_t>(part) * 150, static_cast<char>('a' + i % 26));
            REQUIRE(::send(w, chunk.data(), chunk.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(chunk.size()));
            expected[i] += chunk;
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        probes.push_back(std::make_unique<Probe>(*b));
        Probe& p = *probes.back();
        p.keep_buffers = true;
        prepare_multishot_recv(p, readers[i].get());
        b->submit(p);
    }
    std::size_t max_held = 0, done = 0;
    drive(*b, [&] {
        // Distinct buffers: a backend may hand out one buffer in slices to several connections.
        std::vector<bool> held_ids(kBuffers);
        for (auto& p : probes)
            for (auto& slice : p->held) held_ids[slice.id] = true;
        max_held = std::max(max_held, static_cast<std::size_t>(std::count(held_ids.begin(), held_ids.end(), true)));
        // The consumer lags: it returns buffers only after each wait().
        for (auto& p : probes) p->give_back_held();
        done = 0;
        for (std::size_t i = 0; i < n; ++i) done += probes[i]->data.size() == expected[i].size();
        return done == n;
    }, "every connection's bytes");
    CHECK(max_held == kBuffers);  // the pool did run dry
    for (std::size_t i = 0; i < n; ++i) {
        REQUIRE(probes[i]->data == expected[i]);
        CHECK(probes[i]->finals == 0);
    }
    std::size_t waiting = 0;
    for (auto& p : probes) waiting += b->cancel(*p) ? 0 : 1;
    drive(*b, [&] {
        std::size_t finals = 0;
        for (auto& p : probes) finals += static_cast<std::size_t>(p->finals);
        return finals == waiting;
    }, "the cancellations");
    for (auto& p : probes) p->give_back_held();
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("backend ops: destroying the backend completes the operations it holds", "[backend_ops]") {
    NoFdLeak no_leak;
    auto b = backend_under_test();
    auto [x, y] = unix_stream_pair();
    auto [p2, q2] = unix_stream_pair();
    int listener = tcp_listener();
    Probe rx(*b), ms(*b), acc(*b), cancelled(*b);
    char buf[16], buf2[16];
    prepare_recv(rx, x, buf, sizeof buf);
    prepare_multishot_recv(ms, y);
    acc.kind = OpKind::accept;
    acc.fd = listener;
    acc.flags = be::kMultishot;
    prepare_recv(cancelled, p2, buf2, sizeof buf2);
    for (Probe* p : {&rx, &ms, &acc, &cancelled}) b->submit(*p);
    b->wait(0);
    bool released = b->cancel(cancelled);
    b.reset();
    for (Probe* p : {&rx, &ms, &acc}) {
        CHECK(p->finals == 1);
        CHECK(p->results == std::vector<int>{-ECANCELED});
    }
    CHECK(cancelled.finals == (released ? 0 : 1));
    for (int fd : {x, y, p2, q2, listener}) ::close(fd);
}

namespace {

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr std::uint32_t kAuditArch = 0;
#endif

// Makes io_uring_setup fail with ENOSYS in the calling thread only (seccomp filters are
// per-thread), as a seccomp policy or an old kernel would. False when seccomp is unavailable.
bool refuse_io_uring_in_this_thread() {
    if (kAuditArch == 0) return false;
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

}  // namespace

TEST_CASE("backend ops: io_uring refused by the kernel falls back to epoll", "[backend_ops]") {
    NoFdLeak no_leak;
    bool filtered = false, refused = false;
    std::string why, fallback, echoed;
    std::thread t([&] {
        filtered = refuse_io_uring_in_this_thread();
        if (!filtered) return;
        refused = be::make_io_uring_backend(why) == nullptr;
        auto b = make_backend("io_uring");
        fallback = std::string(b->name());
        // The fallback runs the operations as well.
        auto [x, y] = unix_stream_pair();
        ::send(x, "ok", 2, MSG_NOSIGNAL);
        char buf[8];
        Probe rx(*b);
        prepare_recv(rx, y, buf, sizeof buf);
        b->submit(rx);
        while (rx.finals == 0) b->wait(50'000'000);
        if (rx.last() > 0) echoed.assign(buf, static_cast<std::size_t>(rx.last()));
        b->forget(x);
        b->forget(y);
        ::close(x);
        ::close(y);
    });
    t.join();
    if (!filtered) {
        WARN("seccomp is not available here; the io_uring fallback is not tested");
        return;
    }
    CHECK(refused);
    CHECK(why.find("io_uring_setup") != std::string::npos);
    CHECK(fallback == "epoll");
    CHECK(echoed == "ok");
}

TEST_CASE("backend ops: the automatic choice is io_uring where the kernel has its features, else epoll",
          "[backend_ops]") {
    std::string why;
    const bool usable = be::io_uring_usable(why);
    std::optional<std::string> saved;
    if (const char* env = std::getenv("TULIP_BACKEND")) saved = env;
    ::unsetenv("TULIP_BACKEND");
    auto automatic = make_backend("");
    if (saved) ::setenv("TULIP_BACKEND", saved->c_str(), 1);
    if (usable) {
        CHECK(why.empty());
        CHECK(automatic->name() == "io_uring");
    } else {
        // A kernel without provided buffer rings or multishot recv: the reason names what is missing.
        WARN("io_uring is not usable here: " << why);
        CHECK_FALSE(why.empty());
        CHECK(automatic->name() == "epoll");
    }
}

// Not a check: a tiny ping-pong echo over the operations, for counting syscalls per message
// (`strace -c -f` with TULIP_ECHO_MESSAGES=0 and =N; see docs/backends.md). The server reads
// with a one-shot recv into its own buffer, or with a multishot recv into provided buffers
// (TULIP_ECHO_MULTISHOT=1), and echoes each read with one send, as a transport would.
TEST_CASE("backend ops: echo for counting syscalls", "[.][backend_ops_bench]") {
    const char* env = std::getenv("TULIP_ECHO_MESSAGES");
    const int messages = env ? std::atoi(env) : 10000;
    const char* ms_env = std::getenv("TULIP_ECHO_MULTISHOT");
    const bool multishot = ms_env && *ms_env == '1';
    auto b = backend_under_test();
    BackendFd listener(*b, tcp_listener());
    auto [cl, sv] = tcp_pair(listener.get());
    BackendFd client(*b, cl), server(*b, sv);

    std::string msg(32, 'm');
    char client_buf[64], server_buf[64], echo_buf[64];
    iovec client_iov{msg.data(), msg.size()};
    iovec echo_iov{echo_buf, 0};
    Probe c_tx(*b), c_rx(*b), s_rx(*b), s_tx(*b);
    prepare_send(c_tx, client.get(), &client_iov, 1);
    prepare_recv(c_rx, client.get(), client_buf, sizeof client_buf);
    if (multishot)
        prepare_multishot_recv(s_rx, server.get());
    else
        prepare_recv(s_rx, server.get(), server_buf, sizeof server_buf);
    s_rx.keep_buffers = true;

    int done = 0;
    std::size_t s_rx_seen = 0;
    if (messages > 0) {
        b->submit(s_rx);
        b->submit(c_tx);
        b->submit(c_rx);
    }
    while (done < messages) {
        b->wait(-1);
        if (s_rx.results.size() > s_rx_seen) {  // the server read something: echo it
            s_rx_seen = s_rx.results.size();
            int n = s_rx.last();
            REQUIRE(n > 0);
            if (multishot) {
                auto [id, offset, bytes] = s_rx.held.back();
                std::memcpy(echo_buf, b->provided_buffer(id) + offset, static_cast<std::size_t>(bytes));
                b->give_back(id);
                s_rx.held.clear();
            } else {
                std::memcpy(echo_buf, server_buf, static_cast<std::size_t>(n));
                b->submit(s_rx);
            }
            echo_iov.iov_len = static_cast<std::size_t>(n);
            prepare_send(s_tx, server.get(), &echo_iov, 1);
            b->submit(s_tx);
        }
        if (c_rx.finals > 0) {  // the client got its echo: next message
            c_rx.finals = 0;
            REQUIRE(c_rx.last() == static_cast<int>(msg.size()));
            if (++done < messages) {
                b->submit(c_tx);
                b->submit(c_rx);
            }
        }
    }
    if (messages > 0) {
        bool released = b->cancel(s_rx);
        while (!released && s_rx.finals == 0) b->wait(1'000'000);
        while (b->pending_ops() > 0) b->wait(1'000'000);
    }
    CHECK(done == messages);
}
