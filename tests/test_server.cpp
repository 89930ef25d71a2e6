// Server and the loop's create_connection / create_server / Unix variants, on every backend;
// also what an echoed message and an idle connection cost (allocations, bytes).
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "loop_fixture.hpp"
#include "protocol_helpers.hpp"
#include "socket_helpers.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/asyncio/detail/connect_any.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Address;
using tulip::socket::Socket;
using tulip::testing::is_exception;
using tulip::testing::LoopFixture;
using tulip::testing::Recorder;

// Counting global allocator for the cost measurements below (the whole test binary uses it;
// counting is two relaxed atomic adds). The sanitizers bring their own operator new, so there
// the cost test does not count.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TULIP_TEST_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TULIP_TEST_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef TULIP_TEST_COUNTS_ALLOCATIONS
#define TULIP_TEST_COUNTS_ALLOCATIONS 1
#endif

namespace {
std::atomic<std::size_t> g_allocs{0};
std::atomic<std::ptrdiff_t> g_live_bytes{0};
}  // namespace

#if TULIP_TEST_COUNTS_ALLOCATIONS
void* operator new(std::size_t n) {
    void* p = std::malloc(n ? n : 1);
    if (!p) throw std::bad_alloc();
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    g_live_bytes.fetch_add(static_cast<std::ptrdiff_t>(::malloc_usable_size(p)), std::memory_order_relaxed);
    return p;
}
void operator delete(void* p) noexcept {
    if (!p) return;
    g_live_bytes.fetch_sub(static_cast<std::ptrdiff_t>(::malloc_usable_size(p)), std::memory_order_relaxed);
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
#endif

namespace {

class Echo : public asyncio::Protocol {
public:
    asyncio::Transport* transport = nullptr;
    void connection_made(asyncio::Transport& t) override { transport = &t; }
    void data_received(std::string_view d) override { transport->write(d); }
};

asyncio::Coro<std::shared_ptr<asyncio::Server>> echo_server(asyncio::EventLoop& loop) {
    co_return co_await loop.create_server([] { return std::make_shared<Echo>(); }, std::string("127.0.0.1"), 0);
}

int port_of(const asyncio::Server& s) { return s.sockets().at(0).getsockname().port(); }

// Heap allocations (both ends) over the last 1000 of 1100 ping-pong round trips of a 16-byte
// message between a protocol client and the echo server on `port`: the steady state.
asyncio::Coro<std::size_t> allocations_per_1000_round_trips(asyncio::EventLoop& loop, int port) {
    struct PingPong : asyncio::Protocol {
        asyncio::Transport* transport = nullptr;
        int left = 1100;
        std::size_t allocs_at_warm = 0;
        tulip::testing::Changes changes;
        void connection_made(asyncio::Transport& t) override { transport = &t; }
        void data_received(std::string_view d) override {
            if (--left == 1000) allocs_at_warm = g_allocs.load();
            if (left > 0) transport->write(d);
            else changes.notify();
        }
    };
    auto [t, p] = co_await loop.create_connection([] { return std::make_shared<PingPong>(); },
                                                  std::string("127.0.0.1"), port);
    t->write("0123456789abcdef");
    co_await p->changes.until([&] { return p->left == 0; });
    std::size_t allocs = g_allocs.load() - p->allocs_at_warm;
    t->close();
    co_return allocs;
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "server: echo round trip with create_server and create_connection", "[server]") {
    run([&]() -> asyncio::Coro<> {
        auto server = co_await echo_server(loop());
        CHECK(server->is_serving());
        CHECK(&server->get_loop() == &loop());
        REQUIRE(server->sockets().size() == 1);
        auto [t, p] = co_await loop().create_connection([] { return std::make_shared<Recorder>(); },
                                                        std::string("127.0.0.1"), port_of(*server));
        static_assert(std::is_same_v<decltype(p), std::shared_ptr<Recorder>>);
        CHECK(p->made == 1);
        CHECK(t->socket()->getsockopt(IPPROTO_TCP, TCP_NODELAY) != 0);
        t->write("hello, ");
        t->write("transports");
        co_await p->until([&] { return p->data == "hello, transports"; });
        co_await p->until([&] { return server->active_connections() == 1; });
        t->close();
        co_await p->until_lost();
        server->close();
        CHECK_FALSE(server->is_serving());
        CHECK(server->sockets().empty());
        co_await server->wait_closed();  // the server side closed on EOF
        CHECK(server->active_connections() == 0);
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: data_received closes the server while an accept is already queued",
                 "[server]") {
    // The connection's data arrives before the next client connects, so the epoll backend queues
    // the transport's event first and the listener's after it, in one iteration: closing the
    // server releases the listener's watch while it is still queued (ASan checks the lifetime).
    run([&]() -> asyncio::Coro<> {
        std::shared_ptr<asyncio::Server> server;
        std::shared_ptr<Recorder> first;
        int made = 0;
        auto factory = [&] {
            auto r = std::make_shared<Recorder>();
            if (!first) {
                first = r;
                r->on_data = [&](std::string_view) { server->close(); };
            }
            ++made;
            return r;
        };
        server = co_await loop().create_server(factory, std::string("127.0.0.1"), 0);
        Socket a = tulip::socket::create_connection("127.0.0.1", port_of(*server));
        while (!first || first->made == 0) co_await asyncio::sleep(0);
        a.sendall("x");
        Socket b = tulip::socket::create_connection("127.0.0.1", port_of(*server));
        co_await first->until([&] { return first->data == "x"; });
        CHECK_FALSE(server->is_serving());
        if (loop().backend_name() == "epoll") CHECK(made == 1);  // closed before it accepted b
        a.close();
        b.close();
        co_await server->wait_closed();
        CHECK(server->active_connections() == 0);
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: wait_closed waits for the connections; close is idempotent", "[server]") {
    run([&]() -> asyncio::Coro<> {
        auto server = co_await echo_server(loop());
        auto [t, p] = co_await loop().create_connection([] { return std::make_shared<Recorder>(); },
                                                        std::string("127.0.0.1"), port_of(*server));
        t->write("x");
        co_await p->until([&] { return p->data == "x"; });
        server->close();
        server->close();
        bool closed = false;
        auto wait_then_mark = [&]() -> asyncio::Coro<> {
            co_await server->wait_closed();
            closed = true;
        };
        auto waiter = loop().create_task(wait_then_mark());
        for (int i = 0; i < 10; ++i) co_await asyncio::sleep(0);
        CHECK_FALSE(closed);  // a connection is still open
        t->close();
        co_await asyncio::wait_for(waiter, 30.0);
        CHECK(closed);
        CHECK_THROWS_AS(server->start_serving(), tulip::RuntimeError);
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: start_serving=false, then serve_forever until cancelled", "[server]") {
    run([&]() -> asyncio::Coro<> {
        asyncio::ServerOptions options;
        options.start_serving = false;
        auto server = co_await loop().create_server([] { return std::make_shared<Echo>(); }, std::string("127.0.0.1"),
                                                    0, std::move(options));
        CHECK_FALSE(server->is_serving());
        auto forever = loop().create_task(server->serve_forever());
        co_await asyncio::sleep(0);
        CHECK(server->is_serving());
        auto [t, p] = co_await loop().create_connection([] { return std::make_shared<Recorder>(); },
                                                        std::string("127.0.0.1"), port_of(*server));
        t->write("y");
        co_await p->until([&] { return p->data == "y"; });
        t->close();
        co_await p->until_lost();
        forever.cancel();
        CHECK_THROWS_AS(co_await forever, asyncio::CancelledError);
        CHECK_FALSE(server->is_serving());
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: create_connection to a refused port names the error", "[server]") {
    run([&]() -> asyncio::Coro<> {
        Socket unused(AF_INET, SOCK_STREAM);
        unused.bind(Address::ipv4("127.0.0.1", 0));  // bound, not listening: refused
        int port = unused.getsockname().port();
        CHECK_THROWS_AS(co_await loop().create_connection([] { return std::make_shared<Recorder>(); },
                                                          std::string("127.0.0.1"), port),
                        tulip::ConnectionRefusedError);
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: create_connection falls through a refused address to a working one",
                 "[server]") {
    run([&]() -> asyncio::Coro<> {
        auto server = co_await echo_server(loop());
        Socket unused(AF_INET, SOCK_STREAM);
        unused.bind(Address::ipv4("127.0.0.1", 0));  // bound, not listening: refused
        auto refused = unused.getsockname();
        auto working = server->sockets().at(0).getsockname();
        std::vector<tulip::socket::AddrInfo> infos{{AF_INET, SOCK_STREAM, 0, "", refused},
                                                   {AF_INET, SOCK_STREAM, 0, "", working}};
        Socket sock = co_await asyncio::detail::connect_any(loop(), infos);
        CHECK(sock.getpeername() == working);
        CHECK_FALSE(sock.getblocking());
        // The same through create_connection(sock=...): the transport is on that connection.
        asyncio::ConnectionOptions options;
        options.sock = std::move(sock);
        auto [t, p] = co_await loop().create_connection([] { return std::make_shared<Recorder>(); }, std::nullopt, 0,
                                                        std::move(options));
        t->write("through");
        co_await p->until([&] { return p->data == "through"; });
        t->close();
        co_await p->until_lost();
        // All refused: ConnectionRefusedError, not a generic OSError.
        std::vector<tulip::socket::AddrInfo> both_refused{infos[0], infos[0]};
        CHECK_THROWS_AS(co_await asyncio::detail::connect_any(loop(), both_refused), tulip::ConnectionRefusedError);
        server->close();
        co_await server->wait_closed();
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: Unix and abstract Unix sockets", "[server]") {
    tulip::testing::TempDir dir;
    run([&]() -> asyncio::Coro<> {
        for (std::string path : {dir.file("echo.sock"), std::string("\0tulip-test-") + std::to_string(::getpid())}) {
            if (path[0] == 't') path[0] = '\0';
            auto server = co_await loop().create_unix_server([] { return std::make_shared<Echo>(); }, path);
            auto [t, p] = co_await loop().create_unix_connection([] { return std::make_shared<Recorder>(); }, path);
            t->write("over unix");
            co_await p->until([&] { return p->data == "over unix"; });
            CHECK(t->peername()->path() == path);
            t->close();
            co_await p->until_lost();
            server->close();
            co_await server->wait_closed();
        }
        // A stale socket file is replaced.
        {
            Socket stale(AF_UNIX, SOCK_STREAM);
            stale.bind(Address::unix_path(dir.file("stale.sock")));
        }
        auto server = co_await loop().create_unix_server([] { return std::make_shared<Echo>(); }, dir.file("stale.sock"));
        server->close();
        CHECK_THROWS_AS(co_await loop().create_unix_connection([] { return std::make_shared<Recorder>(); },
                                                               dir.file("missing.sock")),
                        tulip::FileNotFoundError);
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: accept out of fds reports, pauses, and keeps serving", "[server]") {
#if defined(__SANITIZE_ADDRESS__)
    // UBSan's vptr check probes memory through a pipe: with no fd left it reports a false
    // "invalid vptr" on the first new callback type it meets. Run this one in the plain builds.
    WARN("skipped under the sanitizers (they need fds of their own)");
    return;
#endif
    run([&]() -> asyncio::Coro<> {
        auto server = co_await echo_server(loop());
        int port = port_of(*server);
        Socket client(AF_INET, SOCK_STREAM);
        client.setblocking(false);
        // Lower the fd limit to the lowest free fd: accept() now fails with EMFILE.
        rlimit saved{};
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
        int lowest_free = ::dup(0);
        ::close(lowest_free);
        rlimit low = saved;
        low.rlim_cur = static_cast<rlim_t>(lowest_free);
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
        co_await loop().sock_connect(client, Address::ipv4("127.0.0.1", port));  // queued in the backlog
        std::vector<asyncio::ExceptionContext> calls;
        double give_up = loop().time() + 30;
        while (calls.empty() && loop().time() < give_up) {
            co_await asyncio::sleep(0);
            calls = take_handler_calls();
        }
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
        REQUIRE(calls.size() == 1);
        CHECK(calls[0].message == "socket.accept() out of system resource");
        CHECK(is_exception<tulip::OSError>(calls[0].exception));
        CHECK(server->is_serving());
        // After ACCEPT_RETRY_DELAY (1 s) the connection is accepted and echoes.
        co_await loop().sock_sendall(client, std::string_view("still serving"));
        std::string reply;
        while (reply.size() < 13) reply += co_await asyncio::wait_for(loop().sock_recv(client, 100), 30.0);
        CHECK(reply == "still serving");
        client.close();
        server->close();
        co_await server->wait_closed();
    }());
}

// FNV-1a, 64 bits: the 100 MiB transfer is checked by hash, so a lost, doubled or reordered chunk
// shows, not only a wrong count.
std::uint64_t fnv1a(std::uint64_t h, std::string_view data) {
    for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
    return h;
}
constexpr std::uint64_t kFnvBasis = 14695981039346656037ull;

TEST_CASE_METHOD(LoopFixture, "server: 100 MiB through a slow reader with the writer obeying pause_writing",
                 "[server]") {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    constexpr std::size_t kTotal = 16u << 20;
#else
    constexpr std::size_t kTotal = 100u << 20;
#endif
    struct SlowReader : asyncio::Protocol {
        asyncio::Transport* transport = nullptr;
        std::size_t received = 0;
        std::uint64_t hash = kFnvBasis;
        std::size_t since_pause = 0;
        int lost = 0;
        tulip::testing::Changes changes;
        void connection_made(asyncio::Transport& t) override { transport = &t; }
        void data_received(std::string_view d) override {
            received += d.size();
            hash = fnv1a(hash, d);
            since_pause += d.size();
            if (since_pause >= (1u << 20)) {  // a slow reader: pause a while every MiB
                since_pause = 0;
                transport->pause_reading();
                asyncio::get_running_loop().call_soon([this] {
                    if (lost == 0) transport->resume_reading();
                });
            }
        }
        bool eof_received() override {
            changes.notify();
            return false;
        }
        void connection_lost(std::exception_ptr) override {
            ++lost;
            changes.notify();
        }
    };
    auto reader = std::make_shared<SlowReader>();
    run([&]() -> asyncio::Coro<> {
        // Named, not a temporary inside the co_await: g++ 12 destroys such a capturing temporary twice.
        auto factory = [reader] { return reader; };
        auto server = co_await loop().create_server(factory, std::string("127.0.0.1"), 0);
        auto [t, p] = co_await loop().create_connection([] { return std::make_shared<Recorder>(); },
                                                        std::string("127.0.0.1"), port_of(*server));
        // 7 different chunks in turn (7 does not divide the chunk count's powers of two).
        std::vector<std::string> chunks;
        for (char c = 'a'; c < 'h'; ++c) {
            std::string chunk(1 << 16, c);
            for (std::size_t i = 0; i < chunk.size(); i += 97) chunk[i] = static_cast<char>(i / 97);
            chunks.push_back(std::move(chunk));
        }
        const std::string& chunk = chunks[0];
        std::uint64_t sent_hash = kFnvBasis;
        std::size_t sent = 0, max_buffered = 0, k = 0;
        while (sent < kTotal) {
            if (p->events.size() % 2 == 1) {  // paused: wait for resume_writing
                co_await p->until([&] { return p->events.size() % 2 == 0; });
                continue;
            }
            const std::string& next = chunks[k++ % chunks.size()];
            t->write(next);
            sent_hash = fnv1a(sent_hash, next);
            sent += next.size();
            max_buffered = std::max(max_buffered, t->get_write_buffer_size());
            if (sent % (1u << 22) == 0) co_await asyncio::sleep(0);
        }
        t->close();
        co_await reader->changes.until([&] { return reader->lost == 1; });
        CHECK(reader->received == kTotal);
        CHECK(reader->hash == sent_hash);
        CHECK(max_buffered <= 64 * 1024 + chunk.size());
        CHECK(p->events.size() >= 2);
        CHECK(p->events.find("PP") == std::string::npos);
        CHECK(p->events.find("RR") == std::string::npos);
        co_await p->until_lost();
        server->close();
        co_await server->wait_closed();
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: cost of an echoed message and of an idle connection", "[server][cost]") {
    if (!TULIP_TEST_COUNTS_ALLOCATIONS) {
        WARN("allocations are not counted in the sanitizer builds: skipped");
        return;
    }
    run([&]() -> asyncio::Coro<> {
        auto server = co_await echo_server(loop());
        std::size_t allocs = co_await allocations_per_1000_round_trips(loop(), port_of(*server));
        // What may remain is the waiting test's own future.
        WARN("allocations per echoed message (both ends): " << static_cast<double>(allocs) / 1000.0);
        CHECK(allocs <= 4);

        // Idle connections: user-space bytes per accepted connection, server side and client
        // side together (transport, fd watch, protocol, shared_ptr blocks).
        constexpr int kConns = 100;
        std::vector<Socket> clients;
        std::ptrdiff_t before = g_live_bytes.load();
        std::size_t active_before = server->active_connections();
        for (int i = 0; i < kConns; ++i) {
            Socket c(AF_INET, SOCK_STREAM);
            c.connect(Address::ipv4("127.0.0.1", static_cast<std::uint16_t>(port_of(*server))));
            clients.push_back(std::move(c));
        }
        std::ptrdiff_t clients_bytes = g_live_bytes.load() - before;
        while (server->active_connections() < active_before + kConns) co_await asyncio::sleep(0);
        std::ptrdiff_t per_conn = (g_live_bytes.load() - before - clients_bytes) / kConns;
        WARN("bytes per idle server connection: " << per_conn);
        CHECK(per_conn < 2048);
        clients.clear();
        server->close();
        co_await server->wait_closed();
    }());
}

// The streams API's steady state allocates nothing per echoed message either (issue 7), with the
// read_into/write/drain loop a streams echo server is written with.
TEST_CASE_METHOD(LoopFixture, "server: an echoed message costs no allocation on the streams API", "[server][cost]") {
    if (!TULIP_TEST_COUNTS_ALLOCATIONS) {
        WARN("allocations are not counted in the sanitizer builds: skipped");
        return;
    }
    auto handle = [](asyncio::StreamReader reader, asyncio::StreamWriter writer) -> asyncio::Coro<> {
        std::array<std::byte, 4096> buf{};
        for (;;) {
            std::size_t n = co_await reader.read_into(std::span<std::byte>(buf));
            if (n == 0) break;
            writer.write(std::span<const std::byte>(buf.data(), n));
            co_await writer.drain();
        }
        writer.close();
    };
    run([&]() -> asyncio::Coro<> {
        auto server = co_await asyncio::start_server(handle, std::string("127.0.0.1"), 0);
        std::size_t allocs = co_await allocations_per_1000_round_trips(loop(), port_of(*server));
        WARN("allocations per echoed message, streams server and protocol client: "
             << static_cast<double>(allocs) / 1000.0);
        CHECK(allocs <= 4);  // the waiting test's own future, as above
        server->close();
        co_await server->wait_closed();
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: a failing protocol factory is reported; one that closes the server is safe",
                 "[server]") {
    run([&]() -> asyncio::Coro<> {
        int calls = 0;
        std::shared_ptr<asyncio::Server> server;
        auto factory = [&]() -> std::shared_ptr<asyncio::Protocol> {
            if (++calls == 1) throw tulip::RuntimeError("no protocol today");
            server->close();  // from inside the accept loop
            server.reset();   // and the last user reference with it
            return std::make_shared<Echo>();
        };
        server = co_await loop().create_server(factory, std::string("127.0.0.1"), 0);
        int port = port_of(*server);
        auto connect = [&]() -> asyncio::Coro<Socket> {
            Socket c(AF_INET, SOCK_STREAM);
            c.setblocking(false);
            co_await loop().sock_connect(c, Address::ipv4("127.0.0.1", static_cast<std::uint16_t>(port)));
            co_return c;
        };
        Socket first = co_await connect();
        std::string eof = co_await asyncio::wait_for(loop().sock_recv(first, 10), 30.0);
        CHECK(eof.empty());  // closed by the server after the factory failed
        auto handler_calls = take_handler_calls();
        REQUIRE(handler_calls.size() == 1);
        CHECK(handler_calls[0].message == "Error on transport creation for incoming connection");
        Socket second = co_await connect();
        co_await loop().sock_sendall(second, std::string_view("echo"));
        std::string reply = co_await asyncio::wait_for(loop().sock_recv(second, 10), 30.0);
        CHECK(reply == "echo");
        CHECK(calls == 2);
    }());
}

TEST_CASE_METHOD(LoopFixture, "server: several hosts, every interface, local_addr, Server::Scope", "[server]") {
    run([&]() -> asyncio::Coro<> {
        auto echo = [] { return std::make_shared<Echo>(); };
        auto recorder = [] { return std::make_shared<Recorder>(); };
        {
            // No host: every interface (one socket per family this machine binds).
            auto server = co_await loop().create_server(echo, std::nullopt, 0);
            asyncio::Server::Scope scope(server);
            REQUIRE(!server->sockets().empty());
            bool has_any_v4 = false;
            for (const auto& s : server->sockets())
                has_any_v4 = has_any_v4 || s.getsockname() == Address::ipv4("0.0.0.0", s.getsockname().port());
            CHECK(has_any_v4);
        }  // the scope closed it
        {
            std::vector<std::string> hosts{"127.0.0.1", "localhost"};  // both are 127.0.0.1 here: bound once
            asyncio::ServerOptions options;
            options.reuse_port = true;
            auto server = co_await loop().create_server(echo, hosts, 0, std::move(options));
            asyncio::Server::Scope scope(server);
            std::size_t v4 = 0;
            for (const auto& s : server->sockets()) v4 += s.getsockname().host() == "127.0.0.1";
            CHECK(v4 == 1);
            asyncio::ConnectionOptions copts;
            copts.local_addr = Address::ipv4("127.0.0.1", 0);
            copts.family = AF_INET;
            int port = server->sockets().at(0).getsockname().port();
            auto [t, p] = co_await loop().create_connection(recorder, std::string("127.0.0.1"), port, std::move(copts));
            CHECK(t->sockname()->host() == "127.0.0.1");
            t->write("scoped");
            co_await p->until([&] { return p->data == "scoped"; });
            t->close();
            co_await p->until_lost();
        }
        // Bad arguments say what was wrong.
        asyncio::ServerOptions bad;
        bad.backlog = 0;
        CHECK_THROWS_WITH(co_await loop().create_server(echo, std::string("127.0.0.1"), 0, std::move(bad)),
                          "create_server: backlog must be positive");
        CHECK_THROWS_AS(co_await loop().create_connection(recorder, std::nullopt, 0), tulip::ValueError);
        auto [a, b] = tulip::socket::socketpair(AF_UNIX, SOCK_DGRAM);
        CHECK_THROWS_AS(co_await loop().connect_accepted_socket(recorder, std::move(a)), tulip::ValueError);
    }());
}

// Kept here, next to the counting allocator: what an echoed UDP datagram costs.
TEST_CASE_METHOD(LoopFixture, "datagram: cost of an echoed datagram", "[datagram][cost]") {
    if (!TULIP_TEST_COUNTS_ALLOCATIONS) {
        WARN("allocations are not counted in the sanitizer builds: skipped");
        return;
    }
    struct PingPong : asyncio::DatagramProtocol {
        asyncio::DatagramTransport* transport = nullptr;
        int left = 0;  // < 0: echo forever (the server side)
        int lost = 0;
        std::size_t allocs_at_warm = 0;
        tulip::testing::Changes changes;
        void connection_made(asyncio::DatagramTransport& t) override { transport = &t; }
        void connection_lost(std::exception_ptr) override {
            ++lost;
            changes.notify();
        }
        void datagram_received(std::string_view d, const Address& from) override {
            if (left < 0) {
                transport->sendto(d, from);
                return;
            }
            if (--left == 1000) allocs_at_warm = g_allocs.load();
            if (left > 0) transport->sendto(d);
            else changes.notify();
        }
    };
    run([&]() -> asyncio::Coro<> {
        auto factory = [] { return std::make_shared<PingPong>(); };
        asyncio::DatagramOptions so;
        so.local_addr = std::pair(std::string("127.0.0.1"), 0);
        auto [server, sp] = co_await loop().create_datagram_endpoint(factory, std::move(so));
        sp->left = -1;
        asyncio::DatagramOptions co;
        co.remote_addr = std::pair(std::string("127.0.0.1"), static_cast<int>(server->sockname()->port()));
        auto [client, cp] = co_await loop().create_datagram_endpoint(factory, std::move(co));
        cp->left = 1100;
        client->sendto("0123456789abcdef");
        co_await cp->changes.until([&] { return cp->left == 0; });
        std::size_t allocs = g_allocs.load() - cp->allocs_at_warm;
        WARN("allocations per echoed datagram (both ends): " << static_cast<double>(allocs) / 1000.0);
        CHECK(allocs <= 4);
        client->close();
        server->close();
        co_await cp->changes.until([&] { return cp->lost == 1; });
        co_await sp->changes.until([&] { return sp->lost == 1; });
    }());
}
