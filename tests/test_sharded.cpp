// run_sharded: one loop per thread running main(shard), servers sharing a port through
// SO_REUSEPORT, the first error stopping the other shards, stop signals, bad arguments.
// Tagged [threads] so that the ThreadSanitizer build runs them.
#include "tulip/asyncio/sharded.hpp"

#include <signal.h>
#include <unistd.h>

#include <spdlog/sinks/ringbuffer_sink.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "loop_fixture.hpp"
#include "socket_helpers.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/log.hpp"

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;
using tulip::testing::LoopFixture;
using tulip::testing::NoFdLeak;

namespace {

// Shards arrive; a waiter waits (on a worker thread, through to_thread) until enough have. The
// generous timeout only turns a hang into a failure.
class Gate {
public:
    void arrive() {
        std::lock_guard lock(mutex_);
        ++arrived_;
        cv_.notify_all();
    }
    bool wait_for(int count) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 30s, [&] { return arrived_ >= count; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int arrived_ = 0;
};

// Waits for the gate without blocking the shard's loop; throws if it never opens.
asyncio::Coro<> wait_at(Gate& gate, int count) {
    auto wait = [&gate, count] { return gate.wait_for(count); };
    bool opened = co_await asyncio::to_thread(wait);
    if (!opened) throw std::runtime_error("the other shards did not arrive");
}

// Sleeps until cancelled, counting the cancellation.
asyncio::Coro<> sleep_until_cancelled(std::atomic<int>& cancelled) {
    try {
        co_await asyncio::sleep(3600s);
    } catch (const asyncio::CancelledError&) {
        ++cancelled;
        throw;
    }
}

// Captures what tulip logs while it lives.
class LogCapture {
public:
    LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64)) {
        tulip::logger().sinks().push_back(sink_);
    }
    ~LogCapture() {
        auto& sinks = tulip::logger().sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    bool contains(const std::string& text) const {
        for (auto& line : sink_->last_formatted())
            if (line.find(text) != std::string::npos) return true;
        return false;
    }

private:
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

// Replies "<shard>:" and then echoes: the client learns which shard accepted it.
class TaggedEcho final : public asyncio::Protocol {
public:
    explicit TaggedEcho(int shard) : shard_(shard) {}
    void connection_made(asyncio::Transport& transport) override {
        transport_ = &transport;
        transport.write(std::to_string(shard_) + ":");
    }
    void data_received(std::string_view data) override { transport_->write(data); }

private:
    int shard_;
    asyncio::Transport* transport_ = nullptr;
};

// Where another shard can reach a shard: its loop and the future that ends its main. Set and
// cleared by the shard itself; the others use it under the mutex, through call_soon_threadsafe.
struct Mailbox {
    std::mutex mutex;
    asyncio::EventLoop* loop = nullptr;
    asyncio::Future<>* quit = nullptr;

    void post_quit() {
        std::lock_guard lock(mutex);
        if (!loop) return;
        auto* q = quit;
        loop->call_soon_threadsafe([q] {
            if (!q->done()) q->set_result();
        });
    }
};

}  // namespace

TEST_CASE("run_sharded: main runs once per shard, each on its own thread and loop", "[sharded][threads]") {
    NoFdLeak no_leak;
    constexpr int n = 3;
    std::mutex mutex;
    std::map<int, std::thread::id> threads;
    std::set<const asyncio::EventLoop*> loops;
    std::set<std::string> backends;
    std::vector<int> counts;
    auto main = [&](int shard, int count) -> asyncio::Coro<> {
        co_await asyncio::sleep(0);
        auto& loop = asyncio::get_running_loop();
        std::lock_guard lock(mutex);
        threads[shard] = std::this_thread::get_id();
        loops.insert(&loop);
        backends.insert(std::string(loop.backend_name()));
        counts.push_back(count);
    };
    asyncio::run_sharded(n, main);

    REQUIRE(threads.size() == n);
    std::set<std::thread::id> distinct;
    for (auto& [shard, id] : threads) {
        CHECK((shard >= 0 && shard < n));
        CHECK(id != std::this_thread::get_id());
        distinct.insert(id);
    }
    CHECK(distinct.size() == n);
    CHECK(loops.size() == n);
    CHECK(counts == std::vector<int>(n, n));
    // Each loop chose its backend as a new loop here does (TULIP_BACKEND, then the best).
    asyncio::EventLoop probe;
    CHECK(backends == std::set<std::string>{std::string(probe.backend_name())});
    probe.close();
    CHECK_THROWS_WITH(asyncio::get_running_loop(), "no running event loop");
}

TEST_CASE("run_sharded: the default number of shards is the hardware's", "[sharded][threads]") {
    std::atomic<int> seen_count{0};
    std::atomic<int> calls{0};
    asyncio::run_sharded([&](int, int count) -> asyncio::Coro<> {
        seen_count = count;
        ++calls;
        co_return;
    });
    int expected = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    CHECK(seen_count == expected);
    CHECK(calls == expected);
}

TEST_CASE("run_sharded: shards share a port with reuse_port and every one of them echoes",
          "[sharded][threads]") {
    NoFdLeak no_leak;
    constexpr int n = 2;
    constexpr int connections = 64;
    Gate listening;
    std::promise<int> port_promise;
    std::shared_future<int> port_future = port_promise.get_future().share();
    std::vector<Mailbox> mailboxes(n);
    std::vector<std::string> replies;  // shard 0's only
    std::map<int, int> served;         // shard -> connections, shard 0's only

    // Shard 0 is also the client: once every shard listens it connects many times, then tells
    // the other shards to quit.
    auto client = [&](int port) -> asyncio::Coro<> {
        for (int i = 0; i < connections; ++i) {
            auto [reader, writer] = co_await asyncio::open_connection(std::string("127.0.0.1"), port);
            std::string message = "ping " + std::to_string(i) + "\n";
            writer.write(message);
            std::string reply = co_await reader.readline();
            writer.close();
            co_await writer.wait_closed();
            auto colon = reply.find(':');
            if (colon == std::string::npos || reply.substr(colon + 1) != message)
                throw std::runtime_error("bad reply '" + reply + "' to '" + message + "'");
            ++served[std::stoi(reply.substr(0, colon))];
        }
        for (int i = 1; i < n; ++i) mailboxes[i].post_quit();
    };

    auto main = [&](int shard) -> asyncio::Coro<> {
        auto& loop = asyncio::get_running_loop();
        auto quit = loop.create_future<void>();
        Mailbox& box = mailboxes[shard];
        {
            std::lock_guard lock(box.mutex);
            box.loop = &loop;
            box.quit = &quit;
        }
        struct Clear {
            Mailbox& box;
            ~Clear() {
                std::lock_guard lock(box.mutex);
                box.loop = nullptr;
                box.quit = nullptr;
            }
        } clear{box};

        // Shard 0 takes a free port; the others join it there.
        int port = 0;
        if (shard != 0) {
            auto get_port = [port_future] {
                return port_future.wait_for(30s) == std::future_status::ready ? port_future.get() : -1;
            };
            port = co_await asyncio::to_thread(get_port);
            if (port < 0) throw std::runtime_error("shard 0 did not listen");
        }
        auto factory = [shard] { return std::make_shared<TaggedEcho>(shard); };
        asyncio::ServerOptions options;
        options.reuse_port = true;
        auto server = co_await loop.create_server(factory, std::string("127.0.0.1"), port, std::move(options));
        if (shard == 0) {
            port = server->sockets().at(0).getsockname().port();
            port_promise.set_value(port);
        }
        listening.arrive();
        if (shard == 0) {
            co_await wait_at(listening, n);
            co_await client(port);
        } else {
            co_await quit;
        }
        server->close();
        co_await server->wait_closed();
    };
    asyncio::run_sharded(n, main);

    int total = 0;
    for (auto& [shard, count] : served) {
        CHECK((shard >= 0 && shard < n));
        total += count;
    }
    CHECK(total == connections);
    // The kernel spreads connections over the listeners by a hash of their addresses; with 64
    // connections from 64 source ports, one shard getting them all has a chance of 2^-63.
    CHECK(served.size() == n);
}

TEST_CASE("run_sharded: the first shard's exception cancels the others and is rethrown",
          "[sharded][threads]") {
    NoFdLeak no_leak;
    constexpr int n = 4;
    Gate started;
    std::atomic<int> entered{0};
    std::atomic<int> cancelled{0};

    SECTION("after the others have started") {
        auto main = [&](int shard) -> asyncio::Coro<> {
            ++entered;
            if (shard == 0) {
                co_await wait_at(started, n - 1);
                throw std::runtime_error("shard 0 failed");
            }
            started.arrive();
            co_await sleep_until_cancelled(cancelled);
        };
        CHECK_THROWS_WITH(asyncio::run_sharded(n, main), "shard 0 failed");
        CHECK(entered == n);
        CHECK(cancelled == n - 1);
    }

    SECTION("at once: a shard that had not started does not call main") {
        auto main = [&](int shard) -> asyncio::Coro<> {
            ++entered;
            if (shard == n - 1) throw std::runtime_error("the last shard failed");
            co_await sleep_until_cancelled(cancelled);
        };
        CHECK_THROWS_WITH(asyncio::run_sharded(n, main), "the last shard failed");
        CHECK(entered >= 1);
        CHECK(cancelled == entered - 1);
    }

    SECTION("main itself throws instead of returning a coroutine") {
        auto main = [&](int shard) -> asyncio::Coro<> {
            if (shard == 1) throw std::logic_error("no coroutine for shard 1");
            return sleep_until_cancelled(cancelled);
        };
        CHECK_THROWS_WITH(asyncio::run_sharded(n, main), "no coroutine for shard 1");
    }

    SECTION("a later error is logged, the first one rethrown") {
        LogCapture log;
        auto main = [&](int shard) -> asyncio::Coro<> {
            if (shard == 0) {
                co_await wait_at(started, n - 1);
                throw std::runtime_error("first failure");
            }
            started.arrive();
            try {
                co_await asyncio::sleep(3600s);
            } catch (const asyncio::CancelledError&) {
                ++cancelled;
            }
            if (shard == 1) throw std::runtime_error("failure while stopping");
        };
        CHECK_THROWS_WITH(asyncio::run_sharded(n, main), "first failure");
        CHECK(cancelled == n - 1);
        CHECK(log.contains("failure while stopping"));
        CHECK(log.contains("run_sharded: shard 1 failed"));
    }
}

TEST_CASE("run_sharded: a shard that finishes early does not stop the others", "[sharded][threads]") {
    constexpr int n = 3;
    Gate done;
    std::atomic<int> finished{0};
    auto main = [&](int shard) -> asyncio::Coro<> {
        if (shard != 0) co_await wait_at(done, 1);  // shard 0 has returned by then
        ++finished;
        if (shard == 0) done.arrive();
    };
    asyncio::run_sharded(n, main);
    CHECK(finished == n);
}

// Tagged [tsan-defers-signals]: under ThreadSanitizer a signal that lands on a thread blocked in
// io_uring_enter (a raw syscall TSan does not intercept) is held until that thread wakes, which a
// sleeping shard never does. The plain and ASan builds run it on every backend.
TEST_CASE("run_sharded: a stop signal cancels every shard and it returns normally",
          "[sharded][threads][tsan-defers-signals]") {
    NoFdLeak no_leak;
    struct sigaction before {};
    REQUIRE(::sigaction(SIGUSR1, nullptr, &before) == 0);
    constexpr int n = 2;
    Gate started;
    std::atomic<int> cancelled{0};
    asyncio::ShardedOptions options;
    options.stop_signals = {SIGUSR1};
    auto main = [&](int shard) -> asyncio::Coro<> {
        started.arrive();
        if (shard == 0) {
            co_await wait_at(started, n);
            // Catch2's assertions are not thread-safe: a failure here is an exception.
            if (::kill(::getpid(), SIGUSR1) != 0) throw std::runtime_error("kill failed");
        }
        co_await sleep_until_cancelled(cancelled);
    };
    asyncio::run_sharded(n, main, options);
    CHECK(cancelled == n);
    struct sigaction after {};
    REQUIRE(::sigaction(SIGUSR1, nullptr, &after) == 0);
    CHECK(after.sa_handler == before.sa_handler);
}

TEST_CASE("run_sharded: a bad number of shards is a ValueError, a running loop a RuntimeError", "[sharded]") {
    bool called = false;
    auto main = [&](int) -> asyncio::Coro<> {
        called = true;
        co_return;
    };
    CHECK_THROWS_MATCHES(asyncio::run_sharded(0, main), tulip::ValueError,
                         Catch::Message("run_sharded: the number of shards must be at least 1, got 0"));
    CHECK_THROWS_AS(asyncio::run_sharded(-3, main), tulip::ValueError);
    CHECK_THROWS_WITH(asyncio::detail::run_sharded(2, {}, {}), "run_sharded: main is empty");
    CHECK_FALSE(called);

    LoopFixture fixture;
    auto nested = [&]() -> asyncio::Coro<> {
        CHECK_THROWS_MATCHES(asyncio::run_sharded(1, main), tulip::RuntimeError,
                             Catch::Message("asyncio::run_sharded() cannot be called from a running event loop"));
        co_return;
    };
    fixture.run(nested());
    CHECK_FALSE(called);
}
