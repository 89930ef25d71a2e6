// Coros made already finished (Coro<T>::ready, Coro<T>::ready_exception): awaited inline
// without suspending, and accepted by everything that takes a Coro.
#include "tulip/asyncio/coro.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "loop_fixture.hpp"

// Never CHECK(co_await ...): Catch2 repeats the expression where g++ 12 evaluates it again
// (see test_slowloris.cpp); await into a local first.

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;
using asyncio::Coro;
using tulip::testing::LoopFixture;

namespace {

Coro<int> add(int a, int b) { co_return a + b; }

std::exception_ptr oops() { return std::make_exception_ptr(std::runtime_error("oops")); }

}  // namespace

TEST_CASE_METHOD(LoopFixture, "coro ready: awaited, it gives its value without suspending", "[coro_ready]") {
    int callbacks_run = 0;
    auto body = [&]() -> Coro<int> {
        // A callback queued now would run if the task suspended, even for one turn.
        loop().call_soon([&] { ++callbacks_run; });
        co_await Coro<>::ready();
        int a = co_await Coro<int>::ready(40);
        std::string s = co_await Coro<std::string>::ready("two");
        CHECK(callbacks_run == 0);
        co_return a + static_cast<int>(s.size()) - 1;
    };
    CHECK(run(body()) == 42);
    CHECK(callbacks_run == 1);
}

TEST_CASE_METHOD(LoopFixture, "coro ready: a move-only value, and an lvalue Coro", "[coro_ready]") {
    auto body = []() -> Coro<int> {
        auto c = Coro<std::unique_ptr<int>>::ready(std::make_unique<int>(9));
        CHECK(c.valid());
        std::unique_ptr<int> p = co_await c;
        REQUIRE(p);
        co_return *p;
    };
    CHECK(run(body()) == 9);
}

TEST_CASE_METHOD(LoopFixture, "coro ready: a million awaits use constant stack", "[coro_ready][stack]") {
    auto body = []() -> Coro<long> {
        long sum = 0;
        for (int i = 0; i < 1'000'000; ++i) sum += co_await Coro<long>::ready(1);
        co_return sum;
    };
    CHECK(run(body()) == 1'000'000);
}

TEST_CASE_METHOD(LoopFixture, "coro ready: ready_exception raises when awaited, and refuses null", "[coro_ready]") {
    auto body = []() -> Coro<> {
        CHECK_THROWS_WITH(co_await Coro<>::ready_exception(oops()), "oops");
        CHECK_THROWS_WITH(co_await Coro<int>::ready_exception(oops()), "oops");
        CHECK_THROWS_AS(co_await Coro<int>::ready_exception(std::make_exception_ptr(asyncio::CancelledError("c"))),
                        asyncio::CancelledError);
    };
    run(body());
    CHECK_THROWS_AS(Coro<>::ready_exception(nullptr), tulip::ValueError);
    CHECK_THROWS_WITH(Coro<int>::ready_exception({}), Catch::Contains("needs an exception"));
}

TEST_CASE_METHOD(LoopFixture, "coro ready: awaited twice is the same clear error as a finished frame",
                 "[coro_ready]") {
    auto body = []() -> Coro<> {
        auto c = Coro<int>::ready(1);
        auto r1 = co_await c;
        CHECK(r1 == 1);
        CHECK(c.valid());  // awaited, not empty, as a finished frame stays
        CHECK_THROWS_WITH(co_await c, "cannot reuse already awaited coroutine");
        // The exception is raised once; the second await is the reuse error, not the exception.
        auto e = Coro<>::ready_exception(oops());
        CHECK_THROWS_WITH(co_await e, "oops");
        CHECK_THROWS_WITH(co_await e, "cannot reuse already awaited coroutine");
        // Neither can become a task afterwards, and nor can a frame that ran to its end.
        CHECK_THROWS_WITH(asyncio::create_task(std::move(c)), "cannot reuse already awaited coroutine");
        auto f = add(1, 2);
        auto r2 = co_await f;
        CHECK(r2 == 3);
        CHECK_THROWS_WITH(co_await f, "cannot reuse already awaited coroutine");
        CHECK_THROWS_WITH(asyncio::create_task(std::move(f)), "cannot reuse already awaited coroutine");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "coro ready: moving carries the outcome and leaves an empty Coro", "[coro_ready]") {
    auto body = []() -> Coro<> {
        auto a = Coro<std::string>::ready("moved");
        auto b = std::move(a);
        CHECK_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): that is the point
        CHECK(b.valid());
        CHECK_THROWS_WITH(co_await a, Catch::Contains("empty Coro"));
        auto r3 = co_await b;
        CHECK(r3 == "moved");

        // Assigning over a Coro with a frame destroys that frame (the fixture and ASan see leaks).
        auto c = add(2, 3);
        c = Coro<int>::ready(7);
        auto r4 = co_await c;
        CHECK(r4 == 7);
        // And a frame assigned over a finished one replaces its outcome.
        auto d = Coro<int>::ready_exception(oops());
        d = add(3, 4);
        auto r5 = co_await d;
        CHECK(r5 == 7);
        auto e = Coro<>::ready_exception(oops());
        auto f = std::move(e);
        CHECK_FALSE(e.valid());  // NOLINT(bugprone-use-after-move)
        CHECK_THROWS_WITH(co_await f, "oops");
        CHECK_THROWS_WITH(asyncio::create_task(std::move(e)), Catch::Contains("Coro is empty"));
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "coro ready: create_task runs it as a task", "[coro_ready]") {
    auto body = []() -> Coro<> {
        auto t = asyncio::create_task(Coro<int>::ready(5), "ready-task");
        CHECK_FALSE(t.done());  // like any task: it runs on a later step
        CHECK(t.get_name() == "ready-task");
        auto r6 = co_await t;
        CHECK(r6 == 5);

        auto v = asyncio::create_task(Coro<>::ready());
        co_await v;
        CHECK(v.done());

        auto failing = asyncio::create_task(Coro<int>::ready_exception(oops()));
        co_await asyncio::sleep(0);
        REQUIRE(failing.done());
        CHECK(failing.exception() != nullptr);
        CHECK_THROWS_WITH(co_await failing, "oops");

        // A CancelledError outcome ends the task cancelled, as a coroutine raising it would.
        auto cancelled = asyncio::create_task(
            Coro<>::ready_exception(std::make_exception_ptr(asyncio::CancelledError("by outcome"))));
        co_await asyncio::sleep(0);
        CHECK(cancelled.cancelled());

        // Cancelled before its first step, it never runs.
        auto never = asyncio::create_task(Coro<int>::ready(1));
        CHECK(never.cancel());
        co_await asyncio::sleep(0);
        CHECK(never.cancelled());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "coro ready: run_until_complete, gather, wait_for, shield, timeout, TaskGroup",
                 "[coro_ready]") {
    CHECK(loop().run_until_complete(Coro<int>::ready(11)) == 11);
    loop().run_until_complete(Coro<>::ready());
    CHECK_THROWS_WITH(loop().run_until_complete(Coro<int>::ready_exception(oops())), "oops");

    auto body = []() -> Coro<> {
        auto [a, b, c] = co_await asyncio::gather(Coro<int>::ready(1), add(2, 3), Coro<>::ready());
        CHECK(a == 1);
        CHECK(b == 5);
        (void)c;
        CHECK_THROWS_WITH(co_await asyncio::gather(add(1, 1), Coro<int>::ready_exception(oops())), "oops");
        std::vector<Coro<int>> many;
        many.push_back(Coro<int>::ready(1));
        many.push_back(add(1, 1));
        many.push_back(Coro<int>::ready(3));
        auto all = co_await asyncio::gather(std::move(many));
        CHECK(all == std::vector<int>{1, 2, 3});

        auto r7 = co_await asyncio::wait_for(Coro<int>::ready(6), 10s);
        CHECK(r7 == 6);
        CHECK_THROWS_WITH(co_await asyncio::wait_for(Coro<int>::ready_exception(oops()), 10s), "oops");
        // A timeout <= 0 never starts a Coro (Python 3.12): the same for a finished one.
        CHECK_THROWS_AS(co_await asyncio::wait_for(add(1, 2), 0s), tulip::TimeoutError);
        CHECK_THROWS_AS(co_await asyncio::wait_for(Coro<int>::ready(3), 0s), tulip::TimeoutError);

        auto r8 = co_await asyncio::shield(Coro<int>::ready(8));
        CHECK(r8 == 8);
        auto r9 = co_await asyncio::timeout(10s, Coro<int>::ready(9));
        CHECK(r9 == 9);

        int sum = 0;
        co_await asyncio::TaskGroup::run([&](asyncio::TaskGroup& tg) -> Coro<> {
            auto x = tg.create_task(Coro<int>::ready(20));
            auto y = tg.create_task(add(10, 12));
            sum = co_await x + co_await y;
        });
        CHECK(sum == 42);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "coro ready: run_coroutine_threadsafe", "[coro_ready][threads]") {
    int got = 0;
    std::thread other([&] {
        auto future = asyncio::run_coroutine_threadsafe(Coro<int>::ready(12), loop());
        got = future.result();
        loop().call_soon_threadsafe([this] { loop().stop(); });
    });
    loop().run_forever();
    other.join();
    CHECK(got == 12);
}

TEST_CASE("coro ready: asyncio::run", "[coro_ready][runners]") {
    CHECK(asyncio::run(Coro<int>::ready(13)) == 13);
    asyncio::run(Coro<>::ready());
    CHECK_THROWS_WITH(asyncio::run(Coro<>::ready_exception(oops())), "oops");
}
