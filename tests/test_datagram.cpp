// Datagram transports and loop.create_datagram_endpoint (Python's _SelectorDatagramTransport), on
// every backend: echo over UDP, connected endpoints, ICMP errors through error_received, bursts,
// the send queue (close flushes it, abort drops it, water marks), protocol errors, Unix datagram
// sockets, bad options, pause_reading/resume_reading, close and abort with operations in flight,
// and a loop closed with endpoints still open.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "protocol_helpers.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Address;
using tulip::socket::Socket;
using tulip::testing::Changes;
using tulip::testing::is_exception;
using tulip::testing::LoopFixture;
using tulip::testing::open_fd_count;

namespace {

class DgramRecorder : public asyncio::DatagramProtocol {
public:
    asyncio::DatagramTransport* transport = nullptr;
    std::vector<std::pair<std::string, Address>> got;
    std::vector<std::exception_ptr> errors;
    int made = 0;
    int lost = 0;
    std::exception_ptr lost_exc;
    std::string events;  // 'P' pause_writing, 'R' resume_writing
    bool echo = false;   // send every datagram back to where it came from
    bool throw_on_data = false;
    std::function<void(DgramRecorder&, std::string_view)> on_data;  // after recording
    Changes changes;

    void connection_made(asyncio::DatagramTransport& t) override {
        transport = &t;
        ++made;
        changes.notify();
    }
    void datagram_received(std::string_view data, const Address& addr) override {
        if (throw_on_data) throw std::runtime_error("boom in datagram_received");
        got.emplace_back(std::string(data), addr);
        if (echo) transport->sendto(data, addr);
        if (on_data) on_data(*this, data);
        changes.notify();
    }
    void error_received(std::exception_ptr exc) override {
        errors.push_back(exc);
        changes.notify();
    }
    void connection_lost(std::exception_ptr exc) override {
        ++lost;
        lost_exc = exc;
        changes.notify();
    }
    void pause_writing() override { events += 'P'; }
    void resume_writing() override { events += 'R'; }

    asyncio::Coro<void> until(std::function<bool()> pred) { return changes.until(std::move(pred)); }
    asyncio::Coro<void> until_lost() {
        return changes.until([this] { return lost > 0; });
    }
};

auto recorder() { return std::make_shared<DgramRecorder>(); }

asyncio::DatagramOptions local(std::string host = "127.0.0.1", int port = 0) {
    asyncio::DatagramOptions o;
    o.local_addr = std::pair(std::move(host), port);
    return o;
}

asyncio::DatagramOptions remote(const Address& to) {
    asyncio::DatagramOptions o;
    o.remote_addr = std::pair(to.host(), static_cast<int>(to.port()));
    return o;
}

// A receiver's socket bound on 127.0.0.1 with a 4 MiB SO_RCVBUF, room for a whole burst sent
// before it reads; `addr` is where it listens.
asyncio::DatagramOptions roomy_receiver(Address& addr) {
    Socket sock(AF_INET, SOCK_DGRAM);
    sock.setsockopt(SOL_SOCKET, SO_RCVBUF, 4 << 20);
    sock.bind(Address::ipv4("127.0.0.1", 0));
    addr = sock.getsockname();
    asyncio::DatagramOptions o;
    o.sock = std::move(sock);
    return o;
}

// A Unix datagram socketpair end wrapped in an endpoint, and the other end wrapped in another.
struct UnixPair {
    std::shared_ptr<asyncio::DatagramTransport> a, b;
    std::shared_ptr<DgramRecorder> pa, pb;
};

asyncio::Coro<UnixPair> make_unix_pair(asyncio::EventLoop& loop) {
    auto [x, y] = tulip::socket::socketpair(AF_UNIX, SOCK_DGRAM);
    asyncio::DatagramOptions ox, oy;
    ox.sock = std::move(x);
    oy.sock = std::move(y);
    auto [a, pa] = co_await loop.create_datagram_endpoint(recorder, std::move(ox));
    auto [b, pb] = co_await loop.create_datagram_endpoint(recorder, std::move(oy));
    co_return UnixPair{a, b, pa, pb};
}

// Sends numbered datagrams until the kernel refuses one (the Unix peer's queue is full): the
// rest is queued in the transport. Returns how many were sent or queued.
int fill_until_queued(asyncio::DatagramTransport& t, int extra) {
    int n = 0;
    while (t.get_write_buffer_size() == 0) t.sendto("d" + std::to_string(n++));
    for (int i = 0; i < extra; ++i) t.sendto("d" + std::to_string(n++));
    return n;
}

// A Unix datagram pair whose sending end `a` has a small send buffer and whose receiving end `b`
// does not read (reading paused), so that a few datagrams fill the kernel's queue.
asyncio::Coro<UnixPair> make_stalled_pair(asyncio::EventLoop& loop) {
    auto [x, y] = tulip::socket::socketpair(AF_UNIX, SOCK_DGRAM);
    x.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    asyncio::DatagramOptions ox, oy;
    ox.sock = std::move(x);
    oy.sock = std::move(y);
    auto [b, pb] = co_await loop.create_datagram_endpoint(recorder, std::move(oy));
    b->pause_reading();
    auto [a, pa] = co_await loop.create_datagram_endpoint(recorder, std::move(ox));
    co_return UnixPair{a, b, pa, pb};
}

// Numbered 1 KiB datagrams until the kernel refuses one, then `extra` more (all queued).
// Returns how many were sent or queued.
int fill_with_kib(asyncio::DatagramTransport& t, int extra) {
    auto datagram = [](int i) { return std::to_string(i) + ":" + std::string(1024, 'x'); };
    int n = 0;
    while (t.get_write_buffer_size() == 0) t.sendto(datagram(n++));
    for (int i = 0; i < extra; ++i) t.sendto(datagram(n++));
    return n;
}

// A few loop iterations: what the loop would deliver by then, it has delivered.
asyncio::Coro<void> iterations(int n) {
    for (int i = 0; i < n; ++i) co_await asyncio::sleep(0);
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "datagram: echo between two UDP endpoints", "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        auto [server, sp] = co_await loop().create_datagram_endpoint(recorder, local());
        sp->echo = true;
        CHECK(sp->made == 1);
        CHECK(server->get_protocol() == sp);
        Address server_addr = *server->sockname();
        CHECK(server_addr.port() != 0);
        CHECK_FALSE(server->peername());
        CHECK_FALSE(server->get_extra_info("peername").has_value());
        CHECK(std::any_cast<const Socket*>(server->get_extra_info("socket")) == server->socket());

        auto [client, cp] = co_await loop().create_datagram_endpoint(recorder, remote(server_addr));
        REQUIRE(client->peername());
        CHECK(*client->peername() == server_addr);
        CHECK(std::any_cast<Address>(client->get_extra_info("peername")) == server_addr);
        client->sendto("ping");
        client->sendto("pong", server_addr);  // the remote address itself is allowed
        co_await cp->until([&] { return cp->got.size() == 2; });
        CHECK(cp->got[0].first == "ping");
        CHECK(cp->got[0].second == server_addr);
        CHECK(cp->got[1].first == "pong");
        CHECK(sp->got[0].second == *client->sockname());
        CHECK(sp->errors.empty());
        CHECK(cp->errors.empty());

        client->close();
        server->close();
        CHECK(client->is_closing());
        co_await cp->until_lost();
        co_await sp->until_lost();
        CHECK(cp->lost == 1);
        CHECK_FALSE(cp->lost_exc);
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: an unconnected endpoint sends to any address it is given", "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        Socket a(AF_INET, SOCK_DGRAM), b(AF_INET, SOCK_DGRAM);
        a.bind(Address::ipv4("127.0.0.1", 0));
        b.bind(Address::ipv4("127.0.0.1", 0));
        a.settimeout(30);
        b.settimeout(30);
        auto [t, p] = co_await loop().create_datagram_endpoint(recorder, local());
        t->sendto("to a", a.getsockname());
        t->sendto("to b", b.getsockname());
        CHECK(a.recv(100) == "to a");
        CHECK(b.recv(100) == "to b");
        CHECK_THROWS_AS(t->sendto("nowhere"), tulip::ValueError);
        t->close();
        co_await p->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: a connected endpoint refuses another address", "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        Socket peer(AF_INET, SOCK_DGRAM);
        peer.bind(Address::ipv4("127.0.0.1", 0));
        peer.settimeout(30);
        auto [t, p] = co_await loop().create_datagram_endpoint(recorder, remote(peer.getsockname()));
        CHECK_THROWS_WITH(t->sendto("x", Address::ipv4("127.0.0.1", 9)),
                          Catch::Matchers::StartsWith("Invalid address: must be nullopt or 127.0.0.1:"));
        t->sendto("ok");
        CHECK(peer.recv(100) == "ok");
        // Datagrams from the peer reach the protocol with its address.
        peer.sendto("back", *t->sockname());
        co_await p->until([&] { return p->got.size() == 1; });
        CHECK(p->got[0] == std::pair(std::string("back"), peer.getsockname()));
        t->close();
        co_await p->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: ECONNREFUSED goes to error_received and the endpoint stays open",
                 "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        Address closed_port;
        {
            Socket s(AF_INET, SOCK_DGRAM);
            s.bind(Address::ipv4("127.0.0.1", 0));
            closed_port = s.getsockname();
        }
        auto [t, p] = co_await loop().create_datagram_endpoint(recorder, remote(closed_port));
        // The ICMP port unreachable comes back (at once on loopback) as a pending error on the
        // connected socket: the readiness event's recvfrom reports it.
        t->sendto("anyone?");
        co_await p->until([&] { return !p->errors.empty(); });
        CHECK(is_exception<tulip::ConnectionRefusedError>(p->errors[0]));
        CHECK_FALSE(t->is_closing());
        CHECK(p->lost == 0);

        // Someone listens there now: the same transport works both ways.
        Socket peer(AF_INET, SOCK_DGRAM);
        peer.bind(closed_port);
        peer.settimeout(30);
        t->sendto("hello");
        CHECK(peer.recv(100) == "hello");
        peer.sendto("hi", *t->sockname());
        co_await p->until([&] { return p->got.size() == 1; });
        CHECK(p->got[0].first == "hi");
        t->close();
        co_await p->until_lost();
        CHECK_FALSE(p->lost_exc);
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: a burst arrives whole and in order", "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        constexpr int kCount = 500;
        Address raddr;
        auto [r, rp] = co_await loop().create_datagram_endpoint(recorder, roomy_receiver(raddr));
        auto [s, sp] = co_await loop().create_datagram_endpoint(recorder, remote(raddr));
        for (int i = 0; i < kCount; ++i) s->sendto("datagram " + std::to_string(i) + std::string(i % 97, '.'));
        co_await rp->until([&] { return rp->got.size() == kCount; });
        for (int i = 0; i < kCount; ++i)
            REQUIRE(rp->got[i].first == "datagram " + std::to_string(i) + std::string(i % 97, '.'));
        CHECK(rp->errors.empty());
        CHECK(sp->errors.empty());
        s->close();
        r->close();
        co_await sp->until_lost();
        co_await rp->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: refused datagrams are queued whole, sent in order; close flushes",
                 "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        UnixPair u = co_await make_unix_pair(loop());
        u.a->set_write_buffer_limits(64);
        CHECK(u.a->get_write_buffer_limits() == std::pair<std::size_t, std::size_t>(16, 64));
        int n = fill_until_queued(*u.a, 40);  // well above the high-water mark
        CHECK(u.a->get_write_buffer_size() > 64);
        CHECK(u.pa->events == "P");
        u.a->close();
        CHECK_THROWS_AS(u.a->sendto("late"), tulip::RuntimeError);
        co_await u.pa->until_lost();  // only once everything went out
        CHECK_FALSE(u.pa->lost_exc);
        CHECK(u.pa->events == "PR");
        co_await u.pb->until([&] { return static_cast<int>(u.pb->got.size()) == n; });
        for (int i = 0; i < n; ++i) REQUIRE(u.pb->got[i].first == "d" + std::to_string(i));
        u.b->close();
        co_await u.pb->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: abort drops the queue and connection_lost comes once", "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        UnixPair u = co_await make_unix_pair(loop());
        int n = fill_until_queued(*u.a, 5);
        u.a->abort();
        CHECK(u.a->get_write_buffer_size() == 0);
        CHECK(u.a->is_closing());
        u.a->abort();
        u.a->close();
        CHECK_THROWS_AS(u.a->sendto("late"), tulip::RuntimeError);
        co_await u.pa->until_lost();
        CHECK_FALSE(u.pa->lost_exc);
        // Only what the kernel had taken arrives.
        co_await u.pb->until([&] { return static_cast<int>(u.pb->got.size()) == n - 6; });
        asyncio::Future<void> tick = loop().create_future<void>();
        loop().call_soon([&] { tick.set_result(); });
        co_await tick;
        CHECK(u.pa->lost == 1);
        u.b->close();
        co_await u.pb->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: an exception in datagram_received goes to the handler and closes",
                 "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        UnixPair u = co_await make_unix_pair(loop());
        u.pb->throw_on_data = true;
        u.a->sendto("x");
        co_await u.pb->until_lost();
        CHECK(is_exception<std::runtime_error>(u.pb->lost_exc));
        u.a->close();
        co_await u.pa->until_lost();
    }());
    auto calls = take_handler_calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].message == "Fatal error: protocol.datagram_received() call failed.");
}

TEST_CASE_METHOD(LoopFixture, "datagram: Unix datagram endpoints by path", "[datagram]") {
    std::string dir = "/tmp/tulip-dgram-" + std::to_string(::getpid());
    std::string server_path = dir + "-server.sock";
    std::string client_path = dir + "-client.sock";
    run([&]() -> asyncio::Coro<> {
        asyncio::DatagramOptions so;
        so.local_path = server_path;
        auto [server, sp] = co_await loop().create_datagram_endpoint(recorder, std::move(so));
        sp->echo = true;
        asyncio::DatagramOptions co;
        co.local_path = client_path;  // a named client, so that the echo can come back
        co.remote_path = server_path;
        auto [client, cp] = co_await loop().create_datagram_endpoint(recorder, std::move(co));
        CHECK(*client->peername() == Address::unix_path(server_path));
        client->sendto("over unix");
        co_await cp->until([&] { return cp->got.size() == 1; });
        CHECK(cp->got[0] == std::pair(std::string("over unix"), Address::unix_path(server_path)));
        CHECK(sp->got[0].second == Address::unix_path(client_path));
        client->close();
        server->close();
        co_await cp->until_lost();
        co_await sp->until_lost();
    }());
    // A stale socket file left behind is removed on the next bind.
    run([&]() -> asyncio::Coro<> {
        asyncio::DatagramOptions so;
        so.local_path = server_path;
        auto [server, sp] = co_await loop().create_datagram_endpoint(recorder, std::move(so));
        server->close();
        co_await sp->until_lost();
    }());
    ::unlink(server_path.c_str());
    ::unlink(client_path.c_str());
}

TEST_CASE_METHOD(LoopFixture, "datagram: bad options are refused with a clear error", "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        std::exception_ptr no_family, stream_sock, sock_and_addr;
        try {
            co_await loop().create_datagram_endpoint(recorder, asyncio::DatagramOptions{});
        } catch (...) {
            no_family = std::current_exception();
        }
        CHECK(is_exception<tulip::ValueError>(no_family));
        try {
            asyncio::DatagramOptions o;
            o.sock = Socket(AF_INET, SOCK_STREAM);
            co_await loop().create_datagram_endpoint(recorder, std::move(o));
        } catch (...) {
            stream_sock = std::current_exception();
        }
        CHECK(is_exception<tulip::ValueError>(stream_sock));
        try {
            asyncio::DatagramOptions o = local();
            o.sock = Socket(AF_INET, SOCK_DGRAM);
            co_await loop().create_datagram_endpoint(recorder, std::move(o));
        } catch (...) {
            sock_and_addr = std::current_exception();
        }
        CHECK(is_exception<tulip::ValueError>(sock_and_addr));
        // Only a family: an unbound, unconnected endpoint.
        asyncio::DatagramOptions fam;
        fam.family = AF_INET;
        auto [t, p] = co_await loop().create_datagram_endpoint(recorder, std::move(fam));
        CHECK_FALSE(t->peername());
        t->close();
        co_await p->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: a loop closed with endpoints open leaves no fd and no operation",
                 "[datagram]") {
    // The fixture's teardown closes the loop and checks fds and backend operations.
    run([&]() -> asyncio::Coro<> {
        auto [t, p] = co_await loop().create_datagram_endpoint(recorder, local());
        UnixPair u = co_await make_unix_pair(loop());
        fill_until_queued(*u.a, 3);  // a write watch too
        CHECK(loop().stats().pending_ops >= 2);
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: reuse_port and allow_broadcast set their socket options", "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        asyncio::DatagramOptions o1 = local();
        o1.reuse_port = true;
        auto [a, pa] = co_await loop().create_datagram_endpoint(recorder, std::move(o1));
        int port = a->sockname()->port();
        asyncio::DatagramOptions o2 = local("127.0.0.1", port);
        o2.reuse_port = true;
        auto [b, pb] = co_await loop().create_datagram_endpoint(recorder, std::move(o2));
        CHECK(b->sockname()->port() == port);
        CHECK(b->socket()->getsockopt(SOL_SOCKET, SO_REUSEPORT) == 1);
        std::exception_ptr in_use;
        try {
            co_await loop().create_datagram_endpoint(recorder, local("127.0.0.1", port));
        } catch (...) {
            in_use = std::current_exception();
        }
        CHECK(is_exception<tulip::OSError>(in_use));

        // A broadcast endpoint keeps remote_addr as its default destination without connecting.
        Socket peer(AF_INET, SOCK_DGRAM);
        peer.bind(Address::ipv4("127.0.0.1", 0));
        peer.settimeout(30);
        asyncio::DatagramOptions o3 = remote(peer.getsockname());
        o3.allow_broadcast = true;
        auto [c, pc] = co_await loop().create_datagram_endpoint(recorder, std::move(o3));
        CHECK(c->socket()->getsockopt(SOL_SOCKET, SO_BROADCAST) == 1);
        CHECK_FALSE(c->peername());
        c->sendto("default destination");
        CHECK(peer.recv(100) == "default destination");
        for (auto* t : {a.get(), b.get(), c.get()}) t->close();
        co_await pa->until_lost();
        co_await pb->until_lost();
        co_await pc->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: datagrams that arrive while reading is paused come in order on resume",
                 "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        constexpr int kBurst = 100;
        Address raddr;
        auto [r, rp] = co_await loop().create_datagram_endpoint(recorder, roomy_receiver(raddr));
        // A blocking peer: each datagram is in r's socket when sendto() returns.
        Socket peer(AF_INET, SOCK_DGRAM);
        peer.bind(Address::ipv4("127.0.0.1", 0));
        Address paddr = peer.getsockname();

        // Paused while the receive is armed, with the burst already in the socket (on io_uring
        // the cancellation is still in flight when the loop next waits).
        peer.sendto("start", raddr);
        co_await rp->until([&] { return rp->got.size() == 1; });
        for (int i = 0; i < kBurst; ++i) peer.sendto("a" + std::to_string(i), raddr);
        CHECK(r->is_reading());
        r->pause_reading();
        r->pause_reading();  // idempotent
        CHECK_FALSE(r->is_reading());
        co_await iterations(20);
        CHECK(rp->got.size() == 1);
        r->resume_reading();
        r->resume_reading();
        CHECK(r->is_reading());
        co_await rp->until([&] { return rp->got.size() == 1 + kBurst; });
        for (int i = 0; i < kBurst; ++i) {
            REQUIRE(rp->got[1 + i].first == "a" + std::to_string(i));
            REQUIRE(rp->got[1 + i].second == paddr);
        }

        // Paused by a callback queued before the wait that brings the first datagram: the
        // callback runs before that datagram is handed over (on io_uring the RECVMSG has
        // completed with it: the endpoint holds it until resume).
        std::size_t before = rp->got.size();
        for (int i = 0; i < kBurst; ++i) peer.sendto("c" + std::to_string(i), raddr);
        loop().call_soon([&] { r->pause_reading(); });
        co_await iterations(20);
        CHECK(rp->got.size() == before);
        r->resume_reading();
        co_await rp->until([&] { return rp->got.size() == before + kBurst; });
        for (int i = 0; i < kBurst; ++i) REQUIRE(rp->got[before + i].first == "c" + std::to_string(i));

        // Paused from datagram_received with more datagrams already in the socket: none of them
        // is delivered until resume (the readiness path reads several per event).
        rp->on_data = [](DgramRecorder& p, std::string_view data) {
            if (data == "pause") p.transport->pause_reading();
        };
        peer.sendto("pause", raddr);
        for (int i = 0; i < kBurst; ++i) peer.sendto("b" + std::to_string(i), raddr);
        before = rp->got.size();
        co_await rp->until([&] { return rp->got.size() >= before + 1; });
        co_await iterations(20);
        CHECK(rp->got.size() == before + 1);
        CHECK_FALSE(r->is_reading());
        r->resume_reading();
        co_await rp->until([&] { return rp->got.size() == before + 1 + kBurst; });
        for (int i = 0; i < kBurst; ++i) REQUIRE(rp->got[before + 1 + i].first == "b" + std::to_string(i));
        CHECK(rp->errors.empty());
        r->close();
        CHECK_FALSE(r->is_reading());
        co_await rp->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: close() with a full send buffer sends every queued datagram first",
                 "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        UnixPair u = co_await make_stalled_pair(loop());
        u.a->set_write_buffer_limits(8 * 1024);
        int n = fill_with_kib(*u.a, 20);
        std::size_t queued = u.a->get_write_buffer_size();
        CHECK(queued >= 20 * 1024);
        CHECK(u.pa->events == "P");
        u.a->close();
        CHECK_THROWS_AS(u.a->sendto("late"), tulip::RuntimeError);
        co_await iterations(20);  // the peer does not read: nothing can go
        CHECK(u.pa->lost == 0);
        CHECK(u.a->get_write_buffer_size() == queued);
        u.b->resume_reading();
        co_await u.pa->until_lost();  // only once everything went out
        CHECK_FALSE(u.pa->lost_exc);
        CHECK(u.pa->errors.empty());
        CHECK(u.pa->events == "PR");
        CHECK(u.a->get_write_buffer_size() == 0);
        co_await u.pb->until([&] { return static_cast<int>(u.pb->got.size()) == n; });
        for (int i = 0; i < n; ++i) REQUIRE(u.pb->got[i].first.starts_with(std::to_string(i) + ":"));
        u.b->close();
        co_await u.pb->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "datagram: abort with a send and a receive in flight leaves no fd and the loop running",
                 "[datagram]") {
    run([&]() -> asyncio::Coro<> {
        std::size_t fds_before = open_fd_count();
        std::size_t ops_before = loop().stats().pending_ops;
        UnixPair u = co_await make_stalled_pair(loop());
        int n = fill_with_kib(*u.a, 5);
        int taken = n - 6;  // what the kernel took before refusing
        u.a->abort();
        CHECK(u.a->get_write_buffer_size() == 0);
        CHECK_FALSE(u.a->is_reading());
        co_await u.pa->until_lost();
        CHECK(u.pa->lost == 1);
        CHECK_FALSE(u.pa->lost_exc);
        CHECK(u.pa->errors.empty());
        // Only what the kernel had taken arrives: nothing of the dropped queue.
        u.b->resume_reading();
        co_await u.pb->until([&] { return static_cast<int>(u.pb->got.size()) == taken; });
        co_await iterations(20);
        CHECK(static_cast<int>(u.pb->got.size()) == taken);
        u.b->close();
        co_await u.pb->until_lost();
        // Both endpoints' operations are released (a cancellation completes within a few
        // iterations) and both fds closed.
        for (int i = 0; i < 1000 && loop().stats().pending_ops > ops_before; ++i) co_await asyncio::sleep(0);
        CHECK(loop().stats().pending_ops == ops_before);
        CHECK(open_fd_count() == fds_before);
        // The loop goes on.
        UnixPair v = co_await make_unix_pair(loop());
        v.a->sendto("still running");
        co_await v.pb->until([&] { return v.pb->got.size() == 1; });
        CHECK(v.pb->got[0].first == "still running");
        v.a->close();
        v.b->close();
        co_await v.pa->until_lost();
        co_await v.pb->until_lost();
    }());
}

namespace {

// The bench's echo server: every datagram back to its sender.
class EchoDatagrams : public asyncio::DatagramProtocol {
public:
    void connection_made(asyncio::DatagramTransport& t) override { transport_ = &t; }
    void datagram_received(std::string_view data, const Address& addr) override { transport_->sendto(data, addr); }

private:
    asyncio::DatagramTransport* transport_ = nullptr;
};

// The bench's client: keeps `window` datagrams in flight until `total` echoes came back.
class PingDatagrams : public asyncio::DatagramProtocol {
public:
    PingDatagrams(int total, int window, std::size_t size) : total_(total), window_(window), msg_(size, 'p') {}
    void connection_made(asyncio::DatagramTransport& t) override {
        transport_ = &t;
        for (int i = 0; i < window_ && sent_ < total_; ++i, ++sent_) transport_->sendto(msg_);
    }
    void datagram_received(std::string_view, const Address&) override {
        if (++echoed == total_) changes.notify();
        if (sent_ < total_) {
            ++sent_;
            transport_->sendto(msg_);
        }
    }
    int echoed = 0;
    Changes changes;

private:
    asyncio::DatagramTransport* transport_ = nullptr;
    int total_, window_, sent_ = 0;
    std::string msg_;
};

int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    return v ? std::atoi(v) : fallback;
}

}  // namespace

// UDP echo over loopback through two endpoints of one loop: datagrams per second, and, under
// `strace -c -f` with TULIP_DGRAM_MESSAGES=0 subtracted, syscalls per datagram.
// TULIP_DGRAM_WINDOW datagrams are kept in flight (loopback UDP drops none at that depth).
TEST_CASE_METHOD(LoopFixture, "datagram: UDP echo throughput", "[.][datagram_bench]") {
    const int total = env_int("TULIP_DGRAM_MESSAGES", 200000);
    const int window = env_int("TULIP_DGRAM_WINDOW", 16);
    const auto size = static_cast<std::size_t>(env_int("TULIP_DGRAM_SIZE", 64));
    run([&]() -> asyncio::Coro<> {
        auto [server, sp] = co_await loop().create_datagram_endpoint(
            [] { return std::make_shared<EchoDatagrams>(); }, local());
        Address saddr = server->sockname().value();
        auto client_proto = std::make_shared<PingDatagrams>(total, window, size);
        auto start = std::chrono::steady_clock::now();
        auto [client, cp] = co_await loop().create_datagram_endpoint([&] { return client_proto; }, remote(saddr));
        if (total > 0) co_await client_proto->changes.until([&] { return client_proto->echoed == total; });
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("datagram echo on %s: %d x %zu B, window %d: %.3f s, %.0f round trips/s\n",
                    std::string(loop().backend_name()).c_str(), total, size, window, secs, total / secs);
        client->close();
        server->close();
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
    }());
}
