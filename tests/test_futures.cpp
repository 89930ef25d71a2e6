// Future<T> (ported in spirit from CPython's test_futures).
#include "tulip/asyncio/futures.hpp"

#include <memory>

#include "loop_fixture.hpp"

namespace asyncio = tulip::asyncio;
using tulip::testing::LoopFixture;

TEST_CASE_METHOD(LoopFixture, "future: initial state", "[futures]") {
    asyncio::Future<int> f(loop());
    CHECK_FALSE(f.done());
    CHECK_FALSE(f.cancelled());
    CHECK_THROWS_AS(f.result(), asyncio::InvalidStateError);
    CHECK_THROWS_AS(f.exception(), asyncio::InvalidStateError);
    CHECK(&f.get_loop() == &loop());
}

TEST_CASE_METHOD(LoopFixture, "future: result", "[futures]") {
    asyncio::Future<int> f(loop());
    f.set_result(42);
    CHECK(f.done());
    CHECK(f.result() == 42);
    CHECK(f.exception() == nullptr);
    CHECK_THROWS_AS(f.set_result(1), asyncio::InvalidStateError);
    CHECK_THROWS_AS(f.set_exception(std::runtime_error("x")), asyncio::InvalidStateError);
    CHECK_FALSE(f.cancel());
    CHECK(f.result() == 42);
}

TEST_CASE_METHOD(LoopFixture, "future: exception", "[futures]") {
    asyncio::Future<int> f(loop());
    f.set_exception(std::runtime_error("boom"));
    CHECK(f.done());
    CHECK_THROWS_WITH(f.result(), "boom");
    CHECK(f.exception() != nullptr);
    CHECK_THROWS_AS(f.set_result(1), asyncio::InvalidStateError);
}

TEST_CASE_METHOD(LoopFixture, "future: cancel with message", "[futures]") {
    asyncio::Future<std::string> f(loop());
    CHECK(f.cancel("stop now"));
    CHECK(f.cancelled());
    CHECK(f.done());
    CHECK_FALSE(f.cancel());
    try {
        f.result();
        FAIL("result() of a cancelled future must raise");
    } catch (const asyncio::CancelledError& e) {
        CHECK(e.message() == "stop now");
    }
    CHECK_THROWS_AS(f.exception(), asyncio::CancelledError);
    CHECK_THROWS_AS(f.set_result("x"), asyncio::InvalidStateError);
}

TEST_CASE("CancelledError is not a std::exception", "[futures]") {
    STATIC_REQUIRE_FALSE(std::is_base_of_v<std::exception, asyncio::CancelledError>);
    bool swallowed = false, seen = false;
    try {
        try {
            throw asyncio::CancelledError("x");
        } catch (const std::exception&) {
            swallowed = true;
        }
    } catch (const asyncio::CancelledError&) {
        seen = true;
    }
    CHECK_FALSE(swallowed);
    CHECK(seen);
}

TEST_CASE_METHOD(LoopFixture, "future: done callbacks are scheduled, in order, never inline", "[futures]") {
    asyncio::Future<int> f(loop());
    std::vector<int> calls;
    f.add_done_callback([&](asyncio::Future<int> done) { calls.push_back(done.result()); });
    f.add_done_callback([&](asyncio::Future<int>) { calls.push_back(-1); });
    f.set_result(7);
    CHECK(calls.empty());  // Python schedules callbacks with call_soon
    run([]() -> asyncio::Coro<> { co_await asyncio::sleep(0); }());
    CHECK(calls == std::vector<int>{7, -1});

    // Added after completion: scheduled at once.
    f.add_done_callback([&](asyncio::Future<int>) { calls.push_back(99); });
    CHECK(calls.size() == 2);
    run([]() -> asyncio::Coro<> { co_await asyncio::sleep(0); }());
    CHECK(calls.back() == 99);
}

TEST_CASE_METHOD(LoopFixture, "future: a pending future dropped with a done callback frees the callback",
                 "[futures]") {
    // The callback gets the future when it runs, but must not own it: a future that owned itself
    // through its own callback list would never be freed.
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> watch = token;
    {
        asyncio::Future<int> f(loop());
        f.add_done_callback([token = std::move(token)](asyncio::Future<int>) {});
        CHECK_FALSE(watch.expired());
    }
    CHECK(watch.expired());  // the future went, and its callback with it

    // Done, with the callback scheduled but not yet run: the loop keeps the future alive until
    // the callback has it.
    int seen = 0;
    {
        asyncio::Future<int> f(loop());
        f.add_done_callback([&](asyncio::Future<int> done) { seen = done.result(); });
        f.set_result(5);
    }
    run([]() -> asyncio::Coro<> { co_await asyncio::sleep(0); }());
    CHECK(seen == 5);
}

TEST_CASE_METHOD(LoopFixture, "future: remove_done_callback", "[futures]") {
    asyncio::Future<void> f(loop());
    int a = 0, b = 0;
    auto id_a = f.add_done_callback([&](auto) { ++a; });
    f.add_done_callback([&](auto) { ++b; });
    CHECK(f.remove_done_callback(id_a) == 1);
    CHECK(f.remove_done_callback(id_a) == 0);
    f.set_result();
    run([]() -> asyncio::Coro<> { co_await asyncio::sleep(0); }());
    CHECK(a == 0);
    CHECK(b == 1);
}

TEST_CASE_METHOD(LoopFixture, "future: co_await gets result, exception and cancellation", "[futures]") {
    asyncio::Future<int> ok(loop()), bad(loop()), gone(loop());
    loop().call_soon([=] { ok.set_result(5); });
    loop().call_soon([=] { bad.set_exception(std::runtime_error("bad")); });
    loop().call_soon([=] { gone.cancel("bye"); });
    auto body = [&]() -> asyncio::Coro<int> {
        int v = co_await ok;
        try {
            co_await bad;
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "bad");
            v += 10;
        }
        try {
            co_await gone;
        } catch (const asyncio::CancelledError& e) {
            CHECK(e.message() == "bye");
            v += 100;
        }
        co_return v;
    };
    CHECK(run(body()) == 115);
}

TEST_CASE_METHOD(LoopFixture, "future: exception never retrieved is reported", "[futures]") {
    {
        asyncio::Future<int> f(loop());
        f.set_exception(std::runtime_error("lost"));
    }
    auto calls = take_handler_calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].message == "Future exception was never retrieved");
    CHECK(tulip::testing::describe(calls[0]).find("lost") != std::string::npos);

    // Retrieved: nothing to report.
    {
        asyncio::Future<int> f(loop());
        f.set_exception(std::runtime_error("seen"));
        CHECK(f.exception() != nullptr);
    }
    CHECK(take_handler_calls().empty());
}

TEST_CASE_METHOD(LoopFixture, "future: a done future awaited a million times does not grow the stack",
                 "[futures][stack]") {
    asyncio::Future<int> f(loop());
    f.set_result(1);
    auto body = [](asyncio::Future<int> f) -> asyncio::Coro<long> {
        long sum = 0;
        for (int i = 0; i < 1'000'000; ++i) sum += co_await f;
        co_return sum;
    };
    CHECK(run(body(f)) == 1'000'000);
}
