// asyncio::run (Python's asyncio.runners), and the loop's debug mode.
#include "tulip/asyncio/runners.hpp"

#include <spdlog/sinks/ringbuffer_sink.h>

#include <chrono>
#include <memory>
#include <thread>

#include "loop_fixture.hpp"
#include "tulip/log.hpp"

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;
using tulip::testing::LoopFixture;

namespace {

// Captures what tulip logs while it lives.
class LogCapture {
public:
    LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(128)) {
        tulip::logger().sinks().push_back(sink_);
    }
    ~LogCapture() {
        auto& sinks = tulip::logger().sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    std::vector<std::string> lines() const { return sink_->last_formatted(); }
    bool contains(const std::string& text) const {
        for (auto& l : lines())
            if (l.find(text) != std::string::npos) return true;
        return false;
    }

private:
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

asyncio::Coro<int> answer() {
    co_await asyncio::sleep(0);
    co_return 42;
}

}  // namespace

TEST_CASE("run: returns the coroutine's result and closes its loop", "[runners]") {
    asyncio::EventLoop* seen = nullptr;
    auto body = [&]() -> asyncio::Coro<int> {
        seen = &asyncio::get_running_loop();
        co_return co_await answer();
    };
    std::size_t fds = tulip::testing::open_fd_count();
    CHECK(asyncio::run(body()) == 42);
    CHECK(seen != nullptr);
    CHECK(tulip::testing::open_fd_count() == fds);
    CHECK_THROWS_WITH(asyncio::get_running_loop(), "no running event loop");
}

TEST_CASE("run: a move-only result is moved out", "[runners]") {
    auto body = []() -> asyncio::Coro<std::unique_ptr<int>> {
        co_await asyncio::sleep(0);
        co_return std::make_unique<int>(7);
    };
    std::unique_ptr<int> result = asyncio::run(body());
    REQUIRE(result != nullptr);
    CHECK(*result == 7);
}

TEST_CASE_METHOD(LoopFixture, "run_until_complete: move-only results from a coroutine and a future", "[runners]") {
    auto body = []() -> asyncio::Coro<std::unique_ptr<int>> {
        co_await asyncio::sleep(0);
        co_return std::make_unique<int>(8);
    };
    std::unique_ptr<int> from_coro = loop().run_until_complete(body());
    REQUIRE(from_coro != nullptr);
    CHECK(*from_coro == 8);
    asyncio::Future<std::unique_ptr<int>> future(loop().create_task(body()));
    std::unique_ptr<int> from_future = loop().run_until_complete(future);
    REQUIRE(from_future != nullptr);
    CHECK(*from_future == 8);
}

TEST_CASE("run: propagates the coroutine's exception", "[runners]") {
    auto body = []() -> asyncio::Coro<> {
        co_await asyncio::sleep(0);
        throw std::runtime_error("main failed");
    };
    CHECK_THROWS_WITH(asyncio::run(body()), "main failed");
}

TEST_CASE("run: cancels the tasks left behind and lets them clean up", "[runners]") {
    bool cleaned = false;
    auto leftover = [&]() -> asyncio::Coro<> {
        try {
            co_await asyncio::sleep(3600s);
        } catch (const asyncio::CancelledError&) {
            cleaned = true;
            throw;
        }
    };
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::create_task(leftover());
        co_await asyncio::sleep(0);
    };
    asyncio::run(body());
    CHECK(cleaned);
}

TEST_CASE("run: an error raised while a leftover task is cancelled is reported once", "[runners]") {
    LogCapture log;
    auto leftover = []() -> asyncio::Coro<> {
        try {
            co_await asyncio::sleep(3600s);
        } catch (const asyncio::CancelledError&) {
            throw std::runtime_error("cleanup failed");
        }
    };
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::create_task(leftover(), "leftover");
        co_await asyncio::sleep(0);
    };
    asyncio::run(body());
    int reports = 0;
    for (auto& line : log.lines())
        if (line.find("cleanup failed") != std::string::npos) ++reports;
    CHECK(reports == 1);
    CHECK(log.contains("unhandled exception during asyncio::run() shutdown"));
}

TEST_CASE("run: refuses to run inside a running loop", "[runners]") {
    auto inner = []() -> asyncio::Coro<> { co_return; };
    auto body = [&]() -> asyncio::Coro<> {
        CHECK_THROWS_WITH(asyncio::run(inner()), Catch::Contains("cannot be called from a running event loop"));
        co_return;
    };
    asyncio::run(body());
}

TEST_CASE("run: joins the default executor", "[runners][threads]") {
    std::atomic<bool> finished{false};
    auto body = [&]() -> asyncio::Coro<> {
        // Not awaited: run() must still wait for the job before closing the loop.
        (void)asyncio::get_running_loop().run_in_executor([&] {
            std::this_thread::sleep_for(20ms);  // work in the pool, not synchronisation
            finished = true;
        });
        co_return;
    };
    asyncio::run(body());
    CHECK(finished);
}

TEST_CASE_METHOD(LoopFixture, "debug: slow callbacks are logged", "[runners][debug]") {
    LogCapture log;
    loop().set_debug(true);
    loop().slow_callback_duration = 0.001;
    loop().call_soon([] {
        auto until = std::chrono::steady_clock::now() + 5ms;
        while (std::chrono::steady_clock::now() < until) {
        }
    });
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
    CHECK(log.contains("Executing callback took"));
}

TEST_CASE_METHOD(LoopFixture, "debug: the default exception handler logs through spdlog", "[runners][debug]") {
    LogCapture log;
    loop().set_exception_handler(nullptr);
    loop().call_soon([] { throw std::runtime_error("logged, not lost"); });
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
    CHECK(log.contains("Exception in callback"));
    CHECK(log.contains("logged, not lost"));
}

TEST_CASE("shuffle: a seeded loop runs every ready callback, in a seed-dependent order", "[runners][shuffle]") {
    auto order_for = [](std::uint64_t seed) {
        asyncio::EventLoop loop(asyncio::LoopOptions{{}, seed});
        std::vector<int> order;
        for (int i = 0; i < 20; ++i) loop.call_soon([&order, i] { order.push_back(i); });
        // The 21st entry of the first iteration schedules the stop for the second one, so the
        // shuffled set is the same in every run (a timer could join either iteration).
        loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
        loop.run_forever();
        return order;
    };
    auto a = order_for(1), b = order_for(1), c = order_for(2);
    CHECK(a.size() == 20);
    CHECK(a == b);  // deterministic per seed
    CHECK(a != c);
    auto sorted = a;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 20; ++i) CHECK(sorted[i] == i);
}
