// EventLoop: scheduling rules, timers, readers/writers, threads and closing (after CPython's
// test_base_events and test_events).
#include "tulip/asyncio/events.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "../src/backend/io_uring_probe.hpp"
#include "loop_fixture.hpp"
#include "socket_helpers.hpp"

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;
using tulip::testing::LoopFixture;

TEST_CASE_METHOD(LoopFixture, "loop: call_soon runs callbacks in FIFO order", "[events]") {
    std::vector<int> order;
    for (int i = 0; i < 10; ++i) loop().call_soon([&order, i] { order.push_back(i); });
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE_METHOD(LoopFixture, "loop: call_soon with arguments", "[events]") {
    int sum = 0;
    loop().call_soon([&](int a, int b) { sum = a + b; }, 2, 3);
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
    CHECK(sum == 5);
}

TEST_CASE_METHOD(LoopFixture, "loop: what a callback schedules runs in the next iteration", "[events]") {
    // stop() in the first iteration: the callback scheduled by `first` must not run yet.
    std::vector<std::string> order;
    loop().call_soon([&] {
        order.push_back("first");
        loop().call_soon([&] { order.push_back("scheduled-by-first"); });
    });
    loop().call_soon([&] {
        order.push_back("second");
        loop().stop();
    });
    loop().run_forever();
    CHECK(order == std::vector<std::string>{"first", "second"});
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
    CHECK(order == std::vector<std::string>{"first", "second", "scheduled-by-first"});
}

TEST_CASE_METHOD(LoopFixture, "loop: a cancelled handle does not run", "[events]") {
    bool ran = false;
    auto h = loop().call_soon([&] { ran = true; });
    h.cancel();
    CHECK(h.cancelled());
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
    CHECK_FALSE(ran);
}

TEST_CASE_METHOD(LoopFixture, "loop: a throwing callback goes to the exception handler and the loop goes on",
                 "[events]") {
    bool after = false;
    loop().call_soon([] { throw std::runtime_error("callback failed"); });
    loop().call_soon([&] {
        after = true;
        loop().stop();
    });
    loop().run_forever();
    CHECK(after);
    auto calls = take_handler_calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].message.rfind("Exception in callback", 0) == 0);
    CHECK(calls[0].handle.has_value());
    CHECK(tulip::testing::describe(calls[0]).find("callback failed") != std::string::npos);
}

TEST_CASE_METHOD(LoopFixture, "loop: a throwing exception handler falls back to the default one", "[events]") {
    int handler_calls = 0;
    loop().set_exception_handler([&](asyncio::EventLoop&, const asyncio::ExceptionContext&) {
        ++handler_calls;
        throw std::runtime_error("handler broke");
    });
    loop().call_soon([] { throw std::runtime_error("x"); });
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();  // must not throw
    CHECK(handler_calls == 1);
}

TEST_CASE_METHOD(LoopFixture, "loop: timers fire in time order and never early", "[events][timers]") {
    std::vector<int> order;
    std::vector<double> lateness;
    double start = loop().time();
    auto record = [&](int id, double delay) {
        lateness.push_back(loop().time() - (start + delay));
        order.push_back(id);
    };
    loop().call_later(0.03, record, 3, 0.03);
    loop().call_later(0.01, record, 1, 0.01);
    loop().call_later(20ms, record, 2, 0.02);
    loop().call_at(start + 0.04, [&] {
        record(4, 0.04);
        loop().stop();
    });
    loop().run_forever();
    CHECK(order == std::vector<int>{1, 2, 3, 4});
    for (double late : lateness) CHECK(late >= 0.0);
}

TEST_CASE_METHOD(LoopFixture, "loop: timers with the same deadline keep call order", "[events][timers]") {
    std::vector<int> order;
    double when = loop().time() + 0.005;
    for (int i = 0; i < 5; ++i) loop().call_at(when, [&order, i] { order.push_back(i); });
    loop().call_at(when + 0.001, [&] { loop().stop(); });
    loop().run_forever();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE_METHOD(LoopFixture, "loop: TimerHandle.when and cancel", "[events][timers]") {
    bool ran = false;
    double before = loop().time();
    auto h = loop().call_later(0.001, [&] { ran = true; });
    CHECK(h.when() >= before + 0.001);
    h.cancel();
    loop().call_later(0.005, [&] { loop().stop(); });
    loop().run_forever();
    CHECK_FALSE(ran);
    CHECK(loop().stats().timers == 0);
}

TEST_CASE_METHOD(LoopFixture, "loop: a huge delay does not overflow", "[events][timers]") {
    bool ran = false;
    auto h1 = loop().call_later(1e300, [&] { ran = true; });
    auto h2 = loop().call_later(std::chrono::hours(24 * 365 * 1000), [&] { ran = true; });
    loop().call_later(0.001, [&] { loop().stop(); });
    loop().run_forever();
    CHECK_FALSE(ran);
    CHECK(h1.when() > loop().time() + 1e6);
    h1.cancel();
    h2.cancel();
}

TEST_CASE_METHOD(LoopFixture, "loop: a million timers fire in order and can be cancelled", "[events][timers]") {
    constexpr int n = 1'000'000;
    std::vector<asyncio::TimerHandle> handles;
    handles.reserve(n);
    std::int64_t fired = 0;
    double last_when = 0;
    bool in_order = true;
    double base = loop().time();
    for (int i = 0; i < n; ++i) {
        // Deadlines spread over 50 ms, scheduled out of order.
        double when = base + 0.001 + static_cast<double>((std::int64_t{i} * 7919) % n) * (0.05 / n);
        handles.push_back(loop().call_at(when, [&, when] {
            in_order = in_order && when >= last_when;
            last_when = when;
            ++fired;
        }));
    }
    // Cancel every other one.
    for (int i = 0; i < n; i += 2) handles[i].cancel();
    loop().call_at(base + 0.2, [&] { loop().stop(); });
    loop().run_forever();
    CHECK(fired == n / 2);
    CHECK(in_order);
    CHECK(loop().stats().timers == 0);
}

TEST_CASE_METHOD(LoopFixture, "loop: sleep(1e-10) takes few iterations", "[events][timers]") {
    // test_timeout_rounding: a tiny timeout must not spin the loop.
    int iterations = 0;
    std::function<void()> count = [&] {
        ++iterations;
        if (iterations < 1000) loop().call_soon(count);
    };
    auto body = [&]() -> asyncio::Coro<> {
        loop().call_soon(count);
        int before = iterations;
        co_await asyncio::sleep(1e-10);
        co_await asyncio::sleep(1e-10);
        CHECK(iterations - before <= 20);
        iterations = 1000;  // stop counting
    };
    run(body());
    // Let the last scheduled count() run out.
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
}

TEST_CASE_METHOD(LoopFixture, "loop: ready callbacks cannot starve timers", "[events][fairness]") {
    // An always-ready callback chain must not keep a due timer from firing.
    bool timer_fired = false;
    int spins = 0;
    std::function<void()> spin = [&] {
        ++spins;
        if (!timer_fired) loop().call_soon(spin);
    };
    loop().call_soon(spin);
    loop().call_later(0.01, [&] {
        timer_fired = true;
        loop().stop();
    });
    loop().run_forever();
    CHECK(timer_fired);
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
}

TEST_CASE_METHOD(LoopFixture, "loop: time() is monotonic seconds", "[events]") {
    double a = loop().time();
    double b = loop().time();
    CHECK(b >= a);
    CHECK(a > 0);
}

TEST_CASE_METHOD(LoopFixture, "loop: run_until_complete and run_forever refuse to nest", "[events]") {
    auto body = [&]() -> asyncio::Coro<> {
        CHECK(loop().is_running());
        CHECK_THROWS_WITH(loop().run_forever(), "This event loop is already running");
        co_return;
    };
    run(body());
    CHECK_FALSE(loop().is_running());
}

TEST_CASE_METHOD(LoopFixture, "loop: get_running_loop and get_event_loop", "[events]") {
    CHECK_THROWS_WITH(asyncio::get_running_loop(), "no running event loop");
    CHECK(&asyncio::get_event_loop() == &loop());
    auto body = [&]() -> asyncio::Coro<> {
        CHECK(&asyncio::get_running_loop() == &loop());
        co_return;
    };
    run(body());
}

TEST_CASE("loop: a closed loop refuses work with a clear error", "[events]") {
    asyncio::EventLoop loop;
    loop.close();
    CHECK(loop.is_closed());
    CHECK_THROWS_WITH(loop.call_soon([] {}), "Event loop is closed");
    CHECK_THROWS_WITH(loop.call_later(1.0, [] {}), "Event loop is closed");
    CHECK_THROWS_WITH(loop.call_soon_threadsafe([] {}), "Event loop is closed");
    CHECK_THROWS_WITH(loop.run_forever(), "Event loop is closed");
    CHECK_THROWS_WITH(loop.add_reader(0, [] {}), "Event loop is closed");
    CHECK_FALSE(loop.remove_reader(0));
    CHECK_FALSE(loop.remove_writer(0));
    loop.close();  // a second close is harmless
}

TEST_CASE_METHOD(LoopFixture, "loop: close drops scheduled callbacks and timers", "[events]") {
    loop().call_soon([] {});
    loop().call_later(10.0, [] {});
    CHECK(loop().stats().ready == 1);
    CHECK(loop().stats().timers == 1);
    loop().close();
    CHECK(loop().stats().ready == 0);
    CHECK(loop().stats().timers == 0);
}

TEST_CASE_METHOD(LoopFixture, "loop: call_soon_threadsafe from many threads under load", "[events][threads]") {
    constexpr int threads = 4, per_thread = 10'000;
    std::atomic<int> started{0};
    int received = 0;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&] {
            ++started;
            for (int i = 0; i < per_thread; ++i)
                loop().call_soon_threadsafe([&] {
                    if (++received == threads * per_thread) loop().stop();
                });
        });
    }
    loop().run_forever();
    for (auto& t : pool) t.join();
    CHECK(received == threads * per_thread);
}

TEST_CASE_METHOD(LoopFixture, "loop: Handles of call_soon_threadsafe dropped on either thread, last or not",
                 "[events][threads]") {
    // The node's count is atomic only for these nodes: the other thread keeps Handles to them,
    // dropping some before the loop runs the callback and some after, so that the last reference
    // goes on either side.
    constexpr int count = 20'000;
    std::atomic<int> ran{0};
    std::vector<asyncio::Handle> kept;
    kept.reserve(count);
    std::thread other([&] {
        for (int i = 0; i < count; ++i) {
            auto h = loop().call_soon_threadsafe([&] { ran.fetch_add(1, std::memory_order_relaxed); });
            if (i % 2 == 0) kept.push_back(std::move(h));
        }
        while (ran.load() < count) std::this_thread::yield();
        kept.clear();  // after the loop ran (and released) them: the last reference is here
        loop().call_soon_threadsafe([&] { loop().stop(); });
    });
    loop().run_forever();
    other.join();
    CHECK(ran.load() == count);
}

TEST_CASE_METHOD(LoopFixture, "loop: call_soon_threadsafe wakes a loop blocked with no timers", "[events][threads]") {
    std::thread other([&] { loop().call_soon_threadsafe([&] { loop().stop(); }); });
    loop().run_forever();  // would block forever without the wake-up
    other.join();
}

TEST_CASE_METHOD(LoopFixture, "loop: run_in_executor returns the result and the exception", "[events][threads]") {
    auto body = [&]() -> asyncio::Coro<int> {
        auto main_thread = std::this_thread::get_id();
        int v = co_await loop().run_in_executor([main_thread] {
            CHECK(std::this_thread::get_id() != main_thread);
            return 41;
        });
        try {
            co_await loop().run_in_executor([]() -> int { throw std::runtime_error("in thread"); });
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "in thread");
            ++v;
        }
        co_await loop().run_in_executor([] {});
        co_return v;
    };
    CHECK(run(body()) == 42);
}

using tulip::testing::Pipe;

TEST_CASE_METHOD(LoopFixture, "loop: add_reader fires while readable, remove_reader stops it", "[events][io]") {
    Pipe p;
    std::string got;
    loop().add_reader(p.r.get(), [&] {
        char buf[16];
        ssize_t n = ::read(p.r.get(), buf, sizeof buf);
        if (n > 0) got.append(buf, n);
        if (got == "hello") {
            CHECK(loop().remove_reader(p.r.get()));
            loop().stop();
        }
    });
    CHECK(loop().stats().io_watchers == 1);
    loop().call_soon([&] { REQUIRE(::write(p.w.get(), "hel", 3) == 3); });
    loop().call_later(0.01, [&] { REQUIRE(::write(p.w.get(), "lo", 2) == 2); });
    loop().run_forever();
    CHECK(got == "hello");
    CHECK_FALSE(loop().remove_reader(p.r.get()));
    CHECK(loop().stats().io_watchers == 0);
    // A completion backend confirms the cancellation on its next wait: one iteration.
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
    CHECK(loop().stats().pending_ops == 0);
}

TEST_CASE_METHOD(LoopFixture, "loop: add_reader and call_soon take named (lvalue) callables", "[events][io]") {
    Pipe p;
    int reads = 0;
    auto on_readable = [&] {
        char byte;
        if (::read(p.r.get(), &byte, 1) == 1) ++reads;
        CHECK(loop().remove_reader(p.r.get()));
        loop().stop();
    };
    auto write_one = [&] { REQUIRE(::write(p.w.get(), "x", 1) == 1); };
    loop().add_reader(p.r.get(), on_readable);  // copied: the named lambda stays usable
    loop().call_soon(write_one);
    loop().run_forever();
    CHECK(reads == 1);
    loop().call_soon([&] { loop().stop(); });
    loop().run_forever();
}

TEST_CASE_METHOD(LoopFixture, "loop: add_reader is level-triggered like Python's", "[events][io]") {
    Pipe p;
    int calls = 0;
    REQUIRE(::write(p.w.get(), "x", 1) == 1);
    loop().add_reader(p.r.get(), [&] {
        if (++calls == 3) {
            loop().remove_reader(p.r.get());
            loop().stop();
        }
    });
    loop().run_forever();
    CHECK(calls == 3);  // called again each iteration while the byte stays unread
}

TEST_CASE_METHOD(LoopFixture, "loop: add_writer fires when writable; a second add replaces the first",
                 "[events][io]") {
    Pipe p;
    int first = 0, second = 0;
    loop().add_writer(p.w.get(), [&] { ++first; });
    loop().add_writer(p.w.get(), [&] {
        ++second;
        loop().remove_writer(p.w.get());
        loop().stop();
    });
    loop().run_forever();
    CHECK(first == 0);
    CHECK(second == 1);
}

TEST_CASE_METHOD(LoopFixture, "loop: reader and writer on one fd are independent", "[events][io]") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    // A socketpair end is both readable and writable; use a pipe pair through dup to get one fd
    // that is readable (the read end) and check writer removal does not disturb the reader.
    Pipe p;
    bool read_seen = false;
    loop().add_reader(p.r.get(), [&] {
        read_seen = true;
        loop().remove_reader(p.r.get());
        loop().stop();
    });
    loop().add_writer(p.w.get(), [&] {
        loop().remove_writer(p.w.get());
        REQUIRE(::write(p.w.get(), "z", 1) == 1);
    });
    loop().run_forever();
    CHECK(read_seen);
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE_METHOD(LoopFixture, "loop: remove_reader before the callback runs cancels it", "[events][io]") {
    Pipe p;
    int calls = 0;
    REQUIRE(::write(p.w.get(), "x", 1) == 1);
    loop().add_reader(p.r.get(), [&] { ++calls; });
    // The first callback of the iteration removes the reader, whose event is in the same batch.
    loop().call_soon([&] { loop().call_soon([&] { loop().remove_reader(p.r.get()); }); });
    loop().call_later(0.01, [&] { loop().stop(); });
    loop().run_forever();
    CHECK(calls <= 1);
    CHECK(loop().stats().io_watchers == 0);
}

TEST_CASE_METHOD(LoopFixture, "loop: add_reader on a bad fd is an OSError", "[events][io]") {
    CHECK_THROWS_AS(loop().add_reader(-1, [] {}), tulip::OSError);
    CHECK(loop().stats().io_watchers == 0);
}

TEST_CASE_METHOD(LoopFixture, "loop: backend_name says which backend runs", "[events]") {
    const char* env = std::getenv("TULIP_BACKEND");
    std::string why;
    std::string expected = env && *env ? env : tulip::asyncio::detail::io_uring_usable(why) ? "io_uring" : "epoll";
    CHECK(loop().backend_name() == expected);
}

TEST_CASE_METHOD(LoopFixture, "loop: add_reader on an fd past FD_SETSIZE", "[events][io]") {
    // The select backend cannot watch it and must say so; the others must watch it.
    Pipe p;
    int high = ::fcntl(p.r.get(), F_DUPFD_CLOEXEC, 1500);
    REQUIRE(high >= 1500);
    if (loop().backend_name() == "select") {
        CHECK_THROWS_WITH(loop().add_reader(high, [] {}), Catch::Contains("out of range (FD_SETSIZE"));
    } else {
        bool seen = false;
        REQUIRE(::write(p.w.get(), "x", 1) == 1);
        loop().add_reader(high, [&] {
            seen = true;
            loop().remove_reader(high);
            loop().stop();
        });
        loop().run_forever();
        CHECK(seen);
    }
    CHECK(loop().stats().io_watchers == 0);
    ::close(high);
}

TEST_CASE_METHOD(LoopFixture, "loop: an fd closed while watched does not break the loop", "[events][io]") {
    // The user closes a watched fd without remove_reader first (a bug, but a common one): the loop
    // must keep running, and remove_reader afterwards must clean up.
    auto* p = new Pipe;
    int r = p->r.get();
    loop().add_reader(r, [] {});
    p->w.close();
    p->r.close();
    delete p;
    int ticks = 0;
    loop().call_soon([&] { ++ticks; });
    loop().call_later(0.005, [&] {
        ++ticks;
        loop().stop();
    });
    loop().run_forever();
    CHECK(ticks == 2);
    CHECK(loop().remove_reader(r));
    CHECK(loop().stats().pending_ops == 0);
}

TEST_CASE("loop: a virtual clock jumps to the next timer instead of waiting", "[events][timers]") {
    asyncio::EventLoop loop(asyncio::LoopOptions{.virtual_clock = true});
    CHECK(loop.time() == 0.0);
    std::vector<double> fired_at;
    loop.call_later(3600.0, [&] { fired_at.push_back(loop.time()); });
    loop.call_later(1.5, [&] { fired_at.push_back(loop.time()); });
    loop.call_later(7200.0, [&] {
        fired_at.push_back(loop.time());
        loop.stop();
    });
    loop.run_forever();  // returns at once in real time
    REQUIRE(fired_at.size() == 3);
    CHECK(fired_at[0] == Approx(1.5));
    CHECK(fired_at[1] == Approx(3600.0));
    CHECK(fired_at[2] == Approx(7200.0));
    auto body = [&]() -> asyncio::Coro<double> {
        double start = loop.time();
        co_await asyncio::sleep(std::chrono::hours(24));
        co_return loop.time() - start;
    };
    CHECK(loop.run_until_complete(body()) == Approx(86400.0));
}

TEST_CASE("policy: new_event_loop, set_event_loop and a custom policy", "[events]") {
    auto loop = asyncio::new_event_loop();
    REQUIRE(loop);
    asyncio::set_event_loop(loop.get());
    CHECK(&asyncio::get_event_loop() == loop.get());
    asyncio::set_event_loop(nullptr);

    // With no loop set, the default policy creates one for the thread and keeps returning it.
    asyncio::EventLoop* created = nullptr;
    std::thread([&] {
        created = &asyncio::get_event_loop();
        CHECK(&asyncio::get_event_loop() == created);
        asyncio::set_event_loop(nullptr);  // frees the loop the policy made
    }).join();
    CHECK(created != nullptr);

    struct CountingPolicy : asyncio::EventLoopPolicy {
        int made = 0;
        std::unique_ptr<asyncio::EventLoop> new_event_loop() override {
            ++made;
            return std::make_unique<asyncio::EventLoop>(asyncio::LoopOptions{.backend = "poll"});
        }
    } policy;
    asyncio::set_event_loop_policy(&policy);
    auto custom = asyncio::new_event_loop();
    CHECK(policy.made == 1);
    CHECK(custom->backend_name() == "poll");
    CHECK(&asyncio::get_event_loop_policy() == &policy);
    asyncio::set_event_loop_policy(nullptr);
    CHECK(&asyncio::get_event_loop_policy() != &policy);
}

TEST_CASE("loop: an unknown backend name is a clear error", "[events]") {
    CHECK_THROWS_WITH(asyncio::EventLoop(asyncio::LoopOptions{.backend = "kqueue-on-linux"}),
                      Catch::Contains("unknown or unavailable tulip backend 'kqueue-on-linux'"));
}

// Cancelled timers leave the heap at once (detail::TimerHeap), so removals from every position
// must keep the heap in order: schedule many, cancel a random half (from outside and from inside
// callbacks), and check the rest fire in deadline order (ties in call order) and nothing stays.
TEST_CASE("loop: timers fire in order while random ones are cancelled", "[events][timers]") {
    asyncio::EventLoop loop(asyncio::LoopOptions{.virtual_clock = true});
    std::mt19937 rng(12345);
    constexpr int n = 2000;
    std::vector<asyncio::TimerHandle> handles;
    std::vector<std::pair<double, int>> expected;  // (deadline, call order) of those left
    std::vector<std::pair<double, int>> fired;
    std::vector<bool> cancelled(n, false);
    for (int i = 0; i < n; ++i) {
        double when = static_cast<double>(rng() % 500) / 10.0;  // many equal deadlines
        handles.push_back(loop.call_at(when, [&fired, &loop, i] { fired.emplace_back(loop.time(), i); }));
    }
    for (int i = 0; i < n; ++i)
        if (rng() % 2 == 0) {
            handles[static_cast<std::size_t>(i)].cancel();
            cancelled[static_cast<std::size_t>(i)] = true;
        }
    // A callback that runs before any timer cancels a further set, from inside the loop.
    loop.call_soon([&] {
        for (int i = 0; i < n; i += 7) {
            handles[static_cast<std::size_t>(i)].cancel();
            cancelled[static_cast<std::size_t>(i)] = true;
        }
    });
    for (int i = 0; i < n; ++i)
        if (!cancelled[static_cast<std::size_t>(i)] && i % 7 != 0)
            expected.emplace_back(handles[static_cast<std::size_t>(i)].when(), i);
    std::stable_sort(expected.begin(), expected.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    loop.call_at(100.0, [&] { loop.stop(); });
    auto live = static_cast<std::size_t>(std::count(cancelled.begin(), cancelled.end(), false));
    CHECK(loop.stats().timers == live + 1);
    loop.run_forever();
    REQUIRE(fired.size() == expected.size());
    for (std::size_t k = 0; k < fired.size(); ++k) {
        CHECK(fired[k].second == expected[k].second);
        CHECK(fired[k].first == Approx(expected[k].first));
    }
    CHECK(loop.stats().timers == 0);
    loop.close();
}
