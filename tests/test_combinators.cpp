// gather, wait, wait_for, as_completed, shield, run_coroutine_threadsafe and to_thread (after
// CPython's test_tasks and test_waitfor).
//
// Events are ordered with futures and sleep(0), never with sleeps standing in for
// synchronisation. Timeouts appear only in tests about timeouts: tiny ones guard futures that
// never complete, and the ones that must not fire are an hour long.
#include "tulip/asyncio/combinators.hpp"

#include <atomic>
#include <future>
#include <set>
#include <thread>

#include "loop_fixture.hpp"
#include "tulip/asyncio/threads.hpp"

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;
using asyncio::Coro;
using asyncio::Future;
using asyncio::Task;
using tulip::testing::LoopFixture;

namespace {

// Awaits a future nobody completes: only a cancellation ends it.
Coro<> forever() {
    auto never = asyncio::get_running_loop().create_future<int>();
    co_await never;
}

Coro<int> after_steps(int steps, int value) {
    for (int i = 0; i < steps; ++i) co_await asyncio::sleep(0);
    co_return value;
}

Coro<int> fail_after_steps(int steps, std::string what) {
    for (int i = 0; i < steps; ++i) co_await asyncio::sleep(0);
    throw std::runtime_error(what);
}

template <class T>
Coro<T> await_value(Future<T> f) {
    co_return co_await f;
}

std::string message_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (const asyncio::CancelledError& x) {
        return "CancelledError(" + x.message() + ")";
    }
}

bool is_cancelled_error(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const asyncio::CancelledError&) {
        return true;
    } catch (...) {
        return false;
    }
}

}  // namespace

// ============================================================================================
// gather
// ============================================================================================

TEST_CASE_METHOD(LoopFixture, "gather: test_result (argument order, void as monostate)", "[combinators][gather]") {
    auto body = [&]() -> Coro<> {
        auto a = loop().create_future<int>();
        auto b = asyncio::create_task(after_steps(2, 7));
        auto c = []() -> Coro<std::string> { co_return "c"; };
        auto d = []() -> Coro<> { co_await asyncio::sleep(0); };
        auto g = asyncio::gather(a, b, c(), d());
        static_assert(std::is_same_v<decltype(g), Future<std::tuple<int, int, std::string, std::monostate>>>);
        loop().call_soon([a] { a.set_result(1); });
        auto [x, y, z, w] = co_await g;
        CHECK(x == 1);
        CHECK(y == 7);
        CHECK(z == "c");
        (void)w;
        CHECK(g.done());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: test_constructor_empty_sequence", "[combinators][gather]") {
    auto empty = asyncio::gather();
    CHECK(empty.done());
    CHECK(std::tuple_size_v<std::decay_t<decltype(empty.result())>> == 0);
    auto empty_vector = asyncio::gather(std::vector<Future<int>>{});
    CHECK(empty_vector.done());
    CHECK(empty_vector.result().empty());
    auto empty_outcomes = asyncio::gather(asyncio::return_exceptions, std::vector<Future<int>>{});
    CHECK(empty_outcomes.result().empty());
}

TEST_CASE_METHOD(LoopFixture, "gather: test_one_exception (propagates at once, siblings keep running)",
                 "[combinators][gather]") {
    auto body = [&]() -> Coro<> {
        auto a = loop().create_future<int>();
        auto b = loop().create_future<int>();
        auto c = loop().create_future<int>();
        auto g = asyncio::gather(a, b, c);
        loop().call_soon([b] { b.set_exception(std::runtime_error("b failed")); });
        CHECK_THROWS_WITH(co_await g, "b failed");
        CHECK_FALSE(a.done());
        CHECK_FALSE(c.done());
        // Later completions and failures change nothing, and are not reported as unretrieved.
        a.set_result(1);
        c.set_exception(std::runtime_error("c failed too"));
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
        CHECK_THROWS_WITH(g.result(), "b failed");
        // gather.cancel() after it failed cancels nothing.
        CHECK_FALSE(g.cancel());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: test_return_exceptions", "[combinators][gather]") {
    auto body = [&]() -> Coro<> {
        auto a = loop().create_future<int>();
        auto b = loop().create_future<std::string>();
        auto c = loop().create_future<>();
        auto d = loop().create_future<int>();
        auto g = asyncio::gather(asyncio::return_exceptions, a, b, c, d);
        loop().call_soon([=] {
            c.set_exception(std::runtime_error("c failed"));
            a.set_result(3);
            d.cancel("d cancelled");
            b.set_result("b");
        });
        auto [ra, rb, rc, rd] = co_await g;
        CHECK(ra.has_value());
        CHECK(*ra == 3);
        CHECK(rb.value() == "b");
        CHECK_FALSE(rc.has_value());
        CHECK(message_of(rc.exception()) == "c failed");
        CHECK_THROWS_WITH(rc.value(), "c failed");
        CHECK_FALSE(rd.has_value());
        CHECK(rd.cancelled());
        CHECK(message_of(rd.exception()) == "CancelledError(d cancelled)");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: test_one_cancellation (fails with CancelledError, is not cancelled itself)",
                 "[combinators][gather][cancel]") {
    auto a = loop().create_future<int>();
    auto b = loop().create_future<int>();
    auto c = loop().create_future<int>();
    auto g = asyncio::gather(a, b, c);
    bool called = false;
    g.add_done_callback([&](auto) { called = true; });
    a.set_result(1);
    b.cancel("b went away");
    run([]() -> Coro<> {
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
    }());
    CHECK(g.done());
    CHECK(called);
    CHECK_FALSE(g.cancelled());
    CHECK(is_cancelled_error(g.exception()));
    CHECK(message_of(g.exception()) == "CancelledError(b went away)");
    CHECK_FALSE(c.done());  // the others are not cancelled
    c.set_result(3);
    run([]() -> Coro<> { co_await asyncio::sleep(0); }());
}

TEST_CASE_METHOD(LoopFixture, "gather: test_gather_cancel_children (cancelling the gather cancels the children)",
                 "[combinators][gather][cancel]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(forever());
        auto b = asyncio::create_task(forever());
        auto done = loop().create_future<int>();
        done.set_result(5);
        auto g = asyncio::gather(a, b, done);
        co_await asyncio::sleep(0);
        CHECK(g.cancel("stop"));
        CHECK_FALSE(g.done());  // like Task.cancel(): it asks, and the children end it
        try {
            co_await g;
            FAIL("no CancelledError");
        } catch (const asyncio::CancelledError& e) {
            CHECK(e.message() == "stop");
        }
        CHECK(a.cancelled());
        CHECK(b.cancelled());
        CHECK_FALSE(g.cancelled());  // Python: it fails with CancelledError
        CHECK_FALSE(g.cancel());     // already done
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: test_cancellation_broadcast with return_exceptions (bpo-32684)",
                 "[combinators][gather][cancel]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(forever());
        auto b = asyncio::create_task(after_steps(1, 1));
        auto g = asyncio::gather(asyncio::return_exceptions, a, b);
        co_await asyncio::sleep(0);
        // Even with return_exceptions, a cancelled gather raises CancelledError.
        CHECK(g.cancel());
        CHECK_THROWS_AS(co_await g, asyncio::CancelledError);
        CHECK(a.cancelled());
        CHECK(b.cancelled());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: test_cancel_gather_1 (cancelling the awaiting task cancels the children)",
                 "[combinators][gather][cancel]") {
    bool child_saw_cancel = false;
    auto child = [&]() -> Coro<int> {
        try {
            co_await forever();
        } catch (const asyncio::CancelledError&) {
            child_saw_cancel = true;
            throw;
        }
        co_return 1;
    };
    auto body = [&]() -> Coro<> {
        Task<int> inner = asyncio::create_task(child());
        auto outer = [&]() -> Coro<> { co_await asyncio::gather(inner, after_steps(1, 2)); };
        auto t = asyncio::create_task(outer());
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
        t.cancel();
        CHECK_THROWS_AS(co_await t, asyncio::CancelledError);
        CHECK(t.cancelled());
        CHECK(inner.cancelled());
    };
    run(body());
    CHECK(child_saw_cancel);
}

TEST_CASE_METHOD(LoopFixture, "gather: test_cancel_gather_2 (a child that swallows the cancellation)",
                 "[combinators][gather][cancel]") {
    // The gather was cancelled, so it raises CancelledError although no child ended cancelled.
    auto stubborn = []() -> Coro<int> {
        try {
            co_await forever();
        } catch (const asyncio::CancelledError&) {
        }
        co_return 9;
    };
    auto body = [&]() -> Coro<> {
        auto t = asyncio::create_task(stubborn());
        auto g = asyncio::gather(asyncio::return_exceptions, t);
        co_await asyncio::sleep(0);
        CHECK(g.cancel());
        CHECK_THROWS_AS(co_await g, asyncio::CancelledError);
        int value = co_await t;
        CHECK(value == 9);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: cancelling one child from elsewhere fails the gather, not the siblings",
                 "[combinators][gather][cancel]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(forever());
        auto b = asyncio::create_task(after_steps(3, 2));
        auto g = asyncio::gather(a, b);
        co_await asyncio::sleep(0);
        a.cancel("only a");
        try {
            co_await g;
            FAIL("no CancelledError");
        } catch (const asyncio::CancelledError& e) {
            CHECK(e.message() == "only a");
        }
        CHECK_FALSE(b.cancelled());
        int value = co_await b;
        CHECK(value == 2);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: test_duplicate_coroutines (the same future twice is waited once)",
                 "[combinators][gather]") {
    auto body = [&]() -> Coro<> {
        auto f = asyncio::create_task(after_steps(1, 4));
        auto [x, y] = co_await asyncio::gather(f, f);
        CHECK(x == 4);
        CHECK(y == 4);
        std::vector<Task<int>> thrice(3, f);
        auto values = co_await asyncio::gather(thrice);
        CHECK(values == std::vector<int>{4, 4, 4});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: vectors of futures, tasks and coroutines", "[combinators][gather]") {
    auto body = [&]() -> Coro<> {
        std::vector<Coro<int>> coros;
        for (int i = 0; i < 5; ++i) coros.push_back(after_steps(5 - i, i));
        auto values = co_await asyncio::gather(std::move(coros));
        CHECK(values == std::vector<int>{0, 1, 2, 3, 4});

        std::vector<Task<int>> tasks{asyncio::create_task(after_steps(1, 10)),
                                     asyncio::create_task(fail_after_steps(2, "task 1"))};
        auto outcomes = co_await asyncio::gather(asyncio::return_exceptions, tasks);
        REQUIRE(outcomes.size() == 2);
        CHECK(*outcomes[0] == 10);
        CHECK(message_of(outcomes[1].exception()) == "task 1");

        std::vector<Coro<>> voids;
        voids.push_back([]() -> Coro<> { co_return; }());
        auto nothing = co_await asyncio::gather(std::move(voids));
        CHECK(nothing.size() == 1);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: move-only results", "[combinators][gather]") {
    auto make = [](int v) -> Coro<std::unique_ptr<int>> {
        co_await asyncio::sleep(0);
        co_return std::make_unique<int>(v);
    };
    auto body = [&]() -> Coro<> {
        auto [a, b] = co_await asyncio::gather(make(1), make(2));
        CHECK(*a + *b == 3);
        auto outcomes = co_await asyncio::gather(asyncio::return_exceptions, make(3));
        CHECK(**std::get<0>(outcomes) == 3);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: test_exception_marking (later exceptions are not reported)",
                 "[combinators][gather]") {
    // The fixture fails the test if any "exception was never retrieved" report is made.
    auto body = [&]() -> Coro<> {
        auto g = asyncio::gather(fail_after_steps(1, "first"), fail_after_steps(2, "second"));
        CHECK_THROWS_WITH(co_await g, "first");
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "gather: futures of different loops are refused", "[combinators][gather]") {
    asyncio::EventLoop other;
    auto mine = loop().create_future<int>();
    auto theirs = other.create_future<int>();
    CHECK_THROWS_WITH(asyncio::gather(mine, after_steps(1, 1), theirs),
                      "gather: the futures belong to different event loops");
    CHECK(asyncio::all_tasks(loop()).empty());  // refused before the coroutine became a task
    CHECK_THROWS_AS(asyncio::gather(std::vector<Future<int>>{mine, theirs}), std::invalid_argument);
    CHECK_THROWS_AS(asyncio::as_completed(std::vector<Future<int>>{mine, theirs}), std::invalid_argument);
    other.close();
}

// ============================================================================================
// shield
// ============================================================================================

TEST_CASE_METHOD(LoopFixture, "shield: test_shield_result", "[combinators][shield]") {
    auto inner = loop().create_future<int>();
    auto outer = asyncio::shield(inner);
    inner.set_result(42);
    CHECK(loop().run_until_complete(outer) == 42);
}

TEST_CASE_METHOD(LoopFixture, "shield: test_shield_exception", "[combinators][shield]") {
    auto inner = loop().create_future<int>();
    auto outer = asyncio::shield(inner);
    inner.set_exception(std::runtime_error("expected"));
    CHECK_THROWS_WITH(loop().run_until_complete(outer), "expected");
}

TEST_CASE_METHOD(LoopFixture, "shield: test_shield_cancel_inner", "[combinators][shield][cancel]") {
    auto inner = loop().create_future<int>();
    auto outer = asyncio::shield(inner);
    inner.cancel();
    CHECK_THROWS_AS(loop().run_until_complete(outer), asyncio::CancelledError);
    CHECK(outer.cancelled());
}

TEST_CASE_METHOD(LoopFixture, "shield: test_shield_cancel_outer", "[combinators][shield][cancel]") {
    auto inner = loop().create_future<int>();
    auto outer = asyncio::shield(inner);
    CHECK(outer.cancel());
    run([]() -> Coro<> { co_await asyncio::sleep(0); }());
    CHECK(outer.cancelled());
    CHECK_FALSE(inner.cancelled());
    inner.set_result(1);
}

TEST_CASE_METHOD(LoopFixture, "shield: test_shield_shortcut", "[combinators][shield]") {
    auto fut = loop().create_future<int>();
    fut.set_result(42);
    auto shielded = asyncio::shield(fut);
    CHECK(shielded == fut);
    CHECK(loop().run_until_complete(shielded) == 42);
}

TEST_CASE_METHOD(LoopFixture, "shield: test_shield_effect (cancelling the awaiting task leaves the inner running)",
                 "[combinators][shield][cancel]") {
    int proof = 0;
    auto waiter = loop().create_future<>();
    auto inner = [&]() -> Coro<> {
        co_await waiter;
        proof += 1;
    };
    auto outer = [&]() -> Coro<> {
        co_await asyncio::shield(inner());
        proof += 100;
    };
    auto body = [&]() -> Coro<> {
        auto f = asyncio::create_task(outer());
        co_await asyncio::sleep(0);
        f.cancel();
        CHECK_THROWS_AS(co_await f, asyncio::CancelledError);
        waiter.set_result();
        // The shielded task finishes on its own.
        while (asyncio::all_tasks().size() > 1) co_await asyncio::sleep(0);
    };
    run(body());
    CHECK(proof == 1);
}

TEST_CASE_METHOD(LoopFixture, "shield: test_shield_gather", "[combinators][shield][gather]") {
    auto child1 = loop().create_future<int>();
    auto child2 = loop().create_future<int>();
    auto parent = asyncio::gather(child1, child2);
    auto outer = asyncio::shield(parent);
    CHECK(outer.cancel());
    CHECK(outer.cancelled());
    child1.set_result(1);
    child2.set_result(2);
    auto [a, b] = loop().run_until_complete(parent);
    CHECK(a == 1);
    CHECK(b == 2);
}

TEST_CASE_METHOD(LoopFixture, "shield: test_gather_shield", "[combinators][shield][gather]") {
    auto child1 = loop().create_future<int>();
    auto child2 = loop().create_future<int>();
    auto inner1 = asyncio::shield(child1);
    auto inner2 = asyncio::shield(child2);
    auto parent = asyncio::gather(inner1, inner2);
    CHECK(parent.cancel());
    // This cancels inner1 and inner2, but not child1 and child2.
    run([]() -> Coro<> { co_await asyncio::sleep(0); }());
    CHECK(is_cancelled_error(parent.exception()));
    CHECK(inner1.cancelled());
    CHECK(inner2.cancelled());
    CHECK_FALSE(child1.done());
    child1.set_result(1);
    child2.set_result(2);
}

TEST_CASE_METHOD(LoopFixture, "shield: a failure after the outer was cancelled is reported, not lost",
                 "[combinators][shield]") {
    {
        auto inner = loop().create_future<int>();
        auto outer = asyncio::shield(inner);
        outer.cancel();
        inner.set_exception(std::runtime_error("late failure"));
        run([]() -> Coro<> { co_await asyncio::sleep(0); }());
    }
    auto calls = take_handler_calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].message.find("exception was never retrieved") != std::string::npos);
}

// ============================================================================================
// wait
// ============================================================================================

TEST_CASE_METHOD(LoopFixture, "wait: test_wait (ALL_COMPLETED)", "[combinators][wait]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(after_steps(2, 1));
        auto b = asyncio::create_task(after_steps(1, 2));
        std::vector<Task<int>> tasks{b, a};
        auto [done, pending] = co_await asyncio::wait(tasks);
        CHECK(done.size() == 2);
        CHECK(pending.empty());
        CHECK(done[0] == b);  // the order given
        CHECK(done[1] == a);
        // Done futures are returned as done.
        std::vector<Task<int>> finished{a, b};
        auto again = co_await asyncio::wait(finished);
        CHECK(again.done.size() == 2);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait: test_wait_first_completed", "[combinators][wait]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(forever());
        auto b = asyncio::create_task([]() -> Coro<> { co_await asyncio::sleep(0); }());
        std::vector<Task<>> tasks{a, b};
        auto [done, pending] = co_await asyncio::wait(tasks, asyncio::FIRST_COMPLETED);
        REQUIRE(done.size() == 1);
        CHECK(done[0] == b);
        REQUIRE(pending.size() == 1);
        CHECK(pending[0] == a);
        CHECK_FALSE(a.done());  // nothing is cancelled
        a.cancel();
        CHECK_THROWS_AS(co_await a, asyncio::CancelledError);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait: test_wait_first_exception", "[combinators][wait]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task([]() -> Coro<int> {
            co_await forever();
            co_return 0;
        }());
        auto b = asyncio::create_task(fail_after_steps(2, "b failed"));
        auto c = asyncio::create_task(after_steps(0, 3));
        // c completes first, but only an exception (or all done) ends a FIRST_EXCEPTION wait.
        std::vector<Task<int>> tasks{a, b, c};
        auto [done, pending] = co_await asyncio::wait(tasks, std::nullopt, asyncio::FIRST_EXCEPTION);
        REQUIRE(done.size() == 2);
        CHECK(done[0] == b);
        CHECK(done[1] == c);
        REQUIRE(pending.size() == 1);
        CHECK(pending[0] == a);
        CHECK_THROWS_WITH(b.result(), "b failed");
        a.cancel();
        CHECK_THROWS_AS(co_await a, asyncio::CancelledError);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait: test_wait_first_exception_in_wait (an exception ends the wait early)",
                 "[combinators][wait]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(after_steps(0, 0));
        auto a_forever = loop().create_future<int>();
        auto b = asyncio::create_task(fail_after_steps(2, "b failed"));
        std::vector<Future<int>> futures{a_forever, b, a};
        auto [done, pending] = co_await asyncio::wait(futures,
                                                      std::nullopt, asyncio::FIRST_EXCEPTION);
        CHECK(done.size() == 2);
        REQUIRE(pending.size() == 1);
        CHECK(pending[0] == a_forever);
        CHECK_THROWS_WITH(b.result(), "b failed");
        a_forever.cancel();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait: test_wait_with_exception (ALL_COMPLETED returns it in done)",
                 "[combinators][wait]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(fail_after_steps(1, "a failed"));
        auto b = asyncio::create_task(after_steps(2, 2));
        std::vector<Task<int>> tasks{a, b};
        auto [done, pending] = co_await asyncio::wait(tasks);
        CHECK(done.size() == 2);
        CHECK(pending.empty());
        CHECK_THROWS_WITH(a.result(), "a failed");
        CHECK(b.result() == 2);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait: test_wait_with_timeout (returns pending, cancels nothing, no TimeoutError)",
                 "[combinators][wait][timeouts]") {
    auto body = [&]() -> Coro<> {
        // `a` is done before the wait starts, so the timeout cannot come first on a slow machine.
        auto a = asyncio::create_task(after_steps(1, 1));
        co_await a;
        auto never = loop().create_future<int>();
        std::vector<Future<int>> futures{a, never};
        auto [done, pending] = co_await asyncio::wait(futures, 10ms);
        REQUIRE(done.size() == 1);
        CHECK(done[0] == Future<int>(a));
        REQUIRE(pending.size() == 1);
        CHECK(pending[0] == never);
        CHECK_FALSE(never.done());
        never.set_result(0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait: test_wait_errors (empty set, bad return_when)", "[combinators][wait]") {
    auto body = [&]() -> Coro<> {
        CHECK_THROWS_AS(co_await asyncio::wait(std::vector<Future<int>>{}), std::invalid_argument);
        auto f = loop().create_future<int>();
        f.set_result(1);
        std::vector<Future<int>> futures{f};
        CHECK_THROWS_AS(co_await asyncio::wait(futures, std::nullopt,
                                               static_cast<asyncio::ReturnWhen>(-1)),
                        std::invalid_argument);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait: duplicates count once", "[combinators][wait]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(after_steps(1, 1));
        std::vector<Task<int>> thrice{a, a, a};
        auto result = co_await asyncio::wait(thrice);
        CHECK(result.done.size() == 1);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait: test_yield_wait_does_not_shield_cancel (cancelling the waiter)",
                 "[combinators][wait][cancel]") {
    int proof = 0;
    auto waiter = loop().create_future<>();
    auto inner = [&]() -> Coro<> {
        co_await waiter;
        proof += 1;
    };
    auto body = [&]() -> Coro<> {
        auto inner_task = asyncio::create_task(inner());
        auto outer = [&]() -> Coro<> {
            std::vector<Task<>> tasks{inner_task};
            co_await asyncio::wait(tasks);
            proof += 100;
        };
        auto f = asyncio::create_task(outer());
        co_await asyncio::sleep(0);
        f.cancel();
        CHECK_THROWS_AS(co_await f, asyncio::CancelledError);
        CHECK_FALSE(inner_task.done());
        waiter.set_result();
        co_await inner_task;
    };
    run(body());
    CHECK(proof == 1);
}

// ============================================================================================
// wait_for
// ============================================================================================

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for (the timeout cancels the task and raises TimeoutError)",
                 "[combinators][wait_for][timeouts]") {
    bool foo_running = false;
    auto foo = [&]() -> Coro<std::string> {
        foo_running = true;
        try {
            co_await forever();
        } catch (const asyncio::CancelledError&) {
            foo_running = false;
            throw;
        }
        co_return "done";
    };
    auto body = [&]() -> Coro<> {
        auto fut = asyncio::create_task(foo());
        try {
            co_await asyncio::wait_for(fut, 10ms);
            FAIL("no TimeoutError");
        } catch (const tulip::TimeoutError& e) {
            CHECK(e.errno_value() == ETIMEDOUT);
            CHECK_THAT(e.what(), Catch::StartsWith("wait_for: timed out after 0.01 s"));
        }
        CHECK(fut.done());
        CHECK(fut.cancelled());
        CHECK_FALSE(foo_running);
        CHECK(asyncio::current_task().cancelling() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_timeout_less_then_0_or_0", "[combinators][wait_for][timeouts]") {
    for (double timeout : {0.0, -1.0}) {
        CAPTURE(timeout);
        bool foo_running = false;
        auto body = [&]() -> Coro<> {
            auto started = loop().create_future<>();
            auto foo = [&]() -> Coro<std::string> {
                foo_running = true;
                started.set_result();
                try {
                    co_await forever();
                } catch (const asyncio::CancelledError&) {
                    foo_running = false;
                    throw;
                }
                co_return "done";
            };
            auto fut = asyncio::create_task(foo());
            co_await started;
            CHECK_THROWS_AS(co_await asyncio::wait_for(fut, timeout), tulip::TimeoutError);
            CHECK(fut.done());
            CHECK(fut.cancelled());
            CHECK_FALSE(foo_running);
        };
        run(body());
    }
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_timeout_less_then_0_or_0_future_done",
                 "[combinators][wait_for]") {
    auto body = [&]() -> Coro<> {
        auto fut = loop().create_future<std::string>();
        fut.set_result("done");
        auto ret = co_await asyncio::wait_for(fut, 0.0);
        CHECK(ret == "done");
        CHECK(fut.done());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started",
                 "[combinators][wait_for]") {
    bool foo_started = false;
    auto foo = [&]() -> Coro<> {
        foo_started = true;
        co_return;
    };
    auto body = [&]() -> Coro<> {
        CHECK_THROWS_AS(co_await asyncio::wait_for(foo(), 0s), tulip::TimeoutError);
    };
    run(body());
    CHECK_FALSE(foo_started);
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_blocking (no timeout)", "[combinators][wait_for]") {
    auto body = []() -> Coro<> {
        auto res = co_await asyncio::wait_for(after_steps(1, 5), std::nullopt);
        CHECK(res == 5);
        // Timeouts in seconds (int or double) or as durations.
        auto in_seconds = co_await asyncio::wait_for(after_steps(1, 6), 3600);
        auto in_hours = co_await asyncio::wait_for(after_steps(1, 7), std::chrono::hours(1));
        CHECK(in_seconds + in_hours == 13);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_race_condition (the result comes first)",
                 "[combinators][wait_for]") {
    auto body = [&]() -> Coro<> {
        auto fut = loop().create_future<std::string>();
        auto task = asyncio::wait_for(fut, 3600s);
        loop().call_soon([fut] { fut.set_result("ok"); });
        auto res = co_await std::move(task);
        CHECK(res == "ok");
    };
    run(body());
    CHECK(loop().stats().timers == 0);
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_cancellation_race_condition and test_wait_for_cancel_suppressed",
                 "[combinators][wait_for][timeouts]") {
    auto inner = []() -> Coro<int> {
        try {
            co_await forever();
        } catch (const asyncio::CancelledError&) {
        }
        co_return 42;
    };
    auto body = [&]() -> Coro<> {
        auto result = co_await asyncio::wait_for(inner(), 10ms);
        CHECK(result == 42);
        auto task = asyncio::create_task(inner());
        auto from_task = co_await asyncio::wait_for(task, 10ms);
        CHECK(from_task == 42);
        CHECK(asyncio::current_task().cancelling() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_waits_for_task_cancellation", "[combinators][wait_for][timeouts]") {
    bool task_done = false;
    auto inner = [&]() -> Coro<> {
        try {
            co_await forever();
        } catch (const asyncio::CancelledError&) {
        }
        // Cleaning up takes a while: wait_for must wait for it.
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
        task_done = true;
        throw asyncio::CancelledError();
    };
    auto body = [&]() -> Coro<> {
        auto inner_task = asyncio::create_task(inner());
        try {
            co_await asyncio::wait_for(inner_task, 1ms);
            FAIL("no TimeoutError");
        } catch (const tulip::TimeoutError& e) {
            CHECK(task_done);
            // Python chains the CancelledError; here it is nested.
            CHECK_THROWS_AS(std::rethrow_if_nested(e), asyncio::CancelledError);
        }
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_waits_for_task_cancellation_w_timeout_0",
                 "[combinators][wait_for]") {
    bool task_done = false;
    auto inner = [&]() -> Coro<> {
        try {
            co_await forever();
        } catch (const asyncio::CancelledError&) {
        }
        co_await asyncio::sleep(0);
        task_done = true;
        throw asyncio::CancelledError();
    };
    auto body = [&]() -> Coro<> {
        auto inner_task = asyncio::create_task(inner());
        co_await asyncio::sleep(0);
        try {
            co_await asyncio::wait_for(inner_task, 0s);
            FAIL("no TimeoutError");
        } catch (const tulip::TimeoutError& e) {
            CHECK(task_done);
            CHECK_THROWS_AS(std::rethrow_if_nested(e), asyncio::CancelledError);
        }
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_reraises_exception_during_cancellation",
                 "[combinators][wait_for][timeouts]") {
    struct FooException : std::runtime_error {
        FooException() : std::runtime_error("Foo") {}
    };
    auto inner = []() -> Coro<> {
        try {
            co_await forever();
        } catch (const asyncio::CancelledError&) {
        }
        throw FooException();  // Python: `finally: raise FooException`
    };
    auto body = [&]() -> Coro<> {
        auto inner_task = asyncio::create_task(inner());
        CHECK_THROWS_AS(co_await asyncio::wait_for(inner_task, 1ms), FooException);
        CHECK_THROWS_AS(co_await asyncio::wait_for(inner(), 1ms), FooException);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_self_cancellation", "[combinators][wait_for][cancel]") {
    auto inner = []() -> Coro<int> {
        for (int i = 0; i < 3; ++i) {
            try {
                co_await asyncio::sleep(0);
            } catch (const asyncio::CancelledError&) {
            }
        }
        co_return 42;
    };
    auto body = [&]() -> Coro<> {
        auto inner_task = asyncio::create_task(inner());
        // wait_for itself is cancellable even when the task holds up the cancellation.
        auto task = asyncio::create_task(asyncio::wait_for(inner_task, 3600s));
        task.cancel();
        CHECK_THROWS_AS(co_await task, asyncio::CancelledError);
        auto value = co_await inner_task;
        CHECK(value == 42);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_cancel_wait_for and test_cancel_blocking_wait_for (issue 23219)",
                 "[combinators][wait_for][cancel]") {
    for (asyncio::Delay timeout : {asyncio::Delay(3600.0), asyncio::Delay(std::nullopt)}) {
        auto body = [&]() -> Coro<> {
            auto task = asyncio::create_task(forever());
            auto wait = asyncio::create_task(asyncio::wait_for(task, timeout));
            loop().call_soon([wait] { wait.cancel(); });
            CHECK_THROWS_AS(co_await wait, asyncio::CancelledError);
            // Cancelling the wait also cancels the task.
            CHECK(task.cancelled());
        };
        run(body());
    }
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_wait_for_issue86296 (a cancel after a finished wait_for)",
                 "[combinators][wait_for][cancel]") {
    bool reached_end = false;
    auto inner = []() -> Coro<> { co_return; };
    auto wait_for_coro = [&]() -> Coro<> {
        co_await asyncio::wait_for(inner(), 3600s);
        co_await forever();
        reached_end = true;
    };
    auto body = [&]() -> Coro<> {
        auto task = asyncio::create_task(wait_for_coro());
        co_await asyncio::sleep(0);
        CHECK_FALSE(task.done());
        task.cancel();
        CHECK_THROWS_AS(co_await task, asyncio::CancelledError);
    };
    run(body());
    CHECK_FALSE(reached_end);
}

TEST_CASE_METHOD(LoopFixture, "wait_for: a plain future is cancelled at the timeout", "[combinators][wait_for][timeouts]") {
    auto body = [&]() -> Coro<> {
        auto fut = loop().create_future<int>();
        CHECK_THROWS_AS(co_await asyncio::wait_for(fut, 1ms), tulip::TimeoutError);
        CHECK(fut.cancelled());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "wait_for: test_asyncio_wait_for_cancelled (the outer is cancelled mid-wait)",
                 "[combinators][wait_for][cancel]") {
    bool exited = false;
    auto slow = [&]() -> Coro<> {
        try {
            co_await forever();
        } catch (const asyncio::CancelledError&) {
        }
        co_await asyncio::sleep(0);
        exited = true;
    };
    auto body = [&]() -> Coro<> {
        auto waitfortask = asyncio::create_task(asyncio::wait_for(slow(), 3600s));
        co_await asyncio::sleep(0);
        waitfortask.cancel();
        std::vector<Task<>> tasks{waitfortask};
        co_await asyncio::wait(tasks);
        CHECK(exited);
        // slow() swallowed the cancellation and returned: so does the wait_for task (Python).
        CHECK_FALSE(waitfortask.cancelled());
    };
    run(body());
}

// ============================================================================================
// as_completed
// ============================================================================================

TEST_CASE_METHOD(LoopFixture, "as_completed: test_as_completed (completion order)", "[combinators][as_completed]") {
    auto body = [&]() -> Coro<> {
        auto a = loop().create_future<std::string>();
        auto b = loop().create_future<std::string>();
        auto c = loop().create_future<std::string>();
        loop().call_soon([=] {
            b.set_result("b");
            c.set_result("c");
            a.set_result("a");
        });
        std::vector<std::string> order;
        auto completed = asyncio::as_completed(std::vector<Future<std::string>>{a, b, c});
        CHECK(completed.size() == 3);
        for (auto next : completed) order.push_back(co_await next);
        CHECK(order == std::vector<std::string>{"b", "c", "a"});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "as_completed: coroutines and exceptions", "[combinators][as_completed]") {
    auto body = [&]() -> Coro<> {
        std::vector<Coro<int>> coros;
        coros.push_back(after_steps(3, 3));
        coros.push_back(fail_after_steps(2, "second"));
        coros.push_back(after_steps(1, 1));
        std::vector<std::string> seen;
        for (auto next : asyncio::as_completed(std::move(coros))) {
            try {
                seen.push_back(std::to_string(co_await next));
            } catch (const std::runtime_error& e) {
                seen.push_back(e.what());
            }
        }
        CHECK(seen == std::vector<std::string>{"1", "second", "3"});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "as_completed: void results", "[combinators][as_completed]") {
    auto body = [&]() -> Coro<> {
        int finished = 0;
        std::vector<Coro<>> coros;
        for (int i = 0; i < 3; ++i) coros.push_back([](int& n) -> Coro<> {
            co_await asyncio::sleep(0);
            ++n;
        }(finished));
        int seen = 0;
        for (auto next : asyncio::as_completed(std::move(coros))) {
            co_await next;
            ++seen;
            CHECK(finished >= seen);
        }
        CHECK(seen == 3);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "as_completed: test_as_completed_with_timeout", "[combinators][as_completed][timeouts]") {
    auto body = [&]() -> Coro<> {
        // `quick` is done before as_completed() starts, so its completion is queued before the
        // timer can fire, however slow the machine.
        auto quick = asyncio::create_task(after_steps(1, 1));
        co_await quick;
        auto never = loop().create_future<int>();
        std::vector<std::string> seen;
        for (auto next : asyncio::as_completed(std::vector<Future<int>>{never, quick}, 10ms)) {
            try {
                seen.push_back(std::to_string(co_await next));
            } catch (const tulip::TimeoutError& e) {
                seen.push_back("timeout");
                CHECK_THAT(e.what(), Catch::StartsWith("as_completed: timed out after 0.01 s"));
            }
        }
        CHECK(seen == std::vector<std::string>{"1", "timeout"});
        CHECK_FALSE(never.done());  // nothing is cancelled
        never.cancel();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "as_completed: test_as_completed_with_unused_timeout", "[combinators][as_completed]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(after_steps(1, 1));
        for (auto next : asyncio::as_completed(std::vector<Task<int>>{a}, 3600s)) {
            auto value = co_await next;
            CHECK(value == 1);
        }
    };
    run(body());
    CHECK(loop().stats().timers == 0);
}

TEST_CASE_METHOD(LoopFixture, "as_completed: test_as_completed_reverse_wait", "[combinators][as_completed]") {
    auto body = [&]() -> Coro<> {
        auto a = loop().create_future<std::string>();
        auto b = loop().create_future<std::string>();
        auto completed = asyncio::as_completed(std::vector<Future<std::string>>{a, b});
        auto it = completed.begin();
        Coro<std::string> x = *it;
        ++it;
        Coro<std::string> y = *it;
        loop().call_soon([a] { a.set_result("a"); });
        // Whichever is awaited first gets the first completion.
        auto first = co_await std::move(y);
        CHECK(first == "a");
        loop().call_soon([b] { b.set_result("b"); });
        auto second = co_await std::move(x);
        CHECK(second == "b");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "as_completed: test_as_completed_concurrent (awaited from several tasks)",
                 "[combinators][as_completed]") {
    auto body = [&]() -> Coro<> {
        auto a = loop().create_future<std::string>();
        auto b = loop().create_future<std::string>();
        std::vector<Task<std::string>> waiters;
        for (auto next : asyncio::as_completed(std::vector<Future<std::string>>{a, b}))
            waiters.push_back(asyncio::create_task(std::move(next)));
        co_await asyncio::sleep(0);
        a.set_result("a");
        b.set_result("b");
        auto [done, pending] = co_await asyncio::wait(waiters);
        CHECK(pending.empty());
        std::set<std::string> results{waiters[0].result(), waiters[1].result()};
        CHECK(results == std::set<std::string>{"a", "b"});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "as_completed: a cancelled waiter passes its wake-up on", "[combinators][as_completed][cancel]") {
    auto body = [&]() -> Coro<> {
        auto a = loop().create_future<int>();
        auto completed = asyncio::as_completed(std::vector<Future<int>>{a});
        auto it = completed.begin();
        auto first = asyncio::create_task(*it);
        auto second = asyncio::create_task(*it);  // a second awaitable for the same completion
        co_await asyncio::sleep(0);
        a.set_result(5);
        first.cancel();  // woken, but cancelled before it could take the result
        CHECK_THROWS_AS(co_await first, asyncio::CancelledError);
        auto value = co_await second;
        CHECK(value == 5);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "as_completed: test_as_completed_duplicate_coroutines and an empty input",
                 "[combinators][as_completed]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(after_steps(1, 1));
        auto completed = asyncio::as_completed(std::vector<Task<int>>{a, a});
        CHECK(completed.size() == 1);
        for (auto next : completed) co_await next;
        CHECK(asyncio::as_completed(std::vector<Future<int>>{}).size() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "as_completed: leaving the loop early removes the timer", "[combinators][as_completed]") {
    auto body = [&]() -> Coro<> {
        auto a = asyncio::create_task(after_steps(1, 1));
        auto never = loop().create_future<int>();
        for (auto next : asyncio::as_completed(std::vector<Future<int>>{a, never}, 3600s)) {
            co_await next;
            break;
        }
        CHECK(loop().stats().timers == 0);
        never.cancel();
    };
    run(body());
}

// ============================================================================================
// run_coroutine_threadsafe and to_thread
// ============================================================================================

// Catch2's assertions are not thread-safe: the other threads record what they see, and the test
// checks it after join().

TEST_CASE_METHOD(LoopFixture, "run_coroutine_threadsafe: test_run_coroutine_threadsafe (result in another thread)",
                 "[combinators][threads]") {
    auto add = [](int a, int b) -> Coro<int> {
        co_await asyncio::sleep(0);
        co_return a + b;
    };
    int got = 0;
    bool done = false, cancelled = true;
    std::thread other([&] {
        auto future = asyncio::run_coroutine_threadsafe(add(1, 2), loop());
        got = future.result();
        done = future.done();
        cancelled = future.cancel();
        loop().call_soon_threadsafe([this] { loop().stop(); });
    });
    loop().run_forever();
    other.join();
    CHECK(got == 3);
    CHECK(done);
    CHECK_FALSE(cancelled);  // too late: it is done
}

TEST_CASE_METHOD(LoopFixture, "run_coroutine_threadsafe: test_run_coroutine_threadsafe_with_exception",
                 "[combinators][threads]") {
    std::string message;
    std::exception_ptr error;
    std::thread other([&] {
        auto future = asyncio::run_coroutine_threadsafe(fail_after_steps(1, "Fail!"), loop());
        try {
            future.result();
        } catch (const std::runtime_error& e) {
            message = e.what();
        }
        error = future.exception();
        loop().call_soon_threadsafe([this] { loop().stop(); });
    });
    loop().run_forever();
    other.join();
    CHECK(message == "Fail!");
    CHECK(message_of(error) == "Fail!");
}

TEST_CASE_METHOD(LoopFixture, "run_coroutine_threadsafe: test_run_coroutine_threadsafe_with_timeout and _task_cancelled",
                 "[combinators][threads][cancel]") {
    // result(timeout) gives up without touching the task; cancel() then cancels it on the loop.
    std::promise<void> started;
    std::atomic<bool> saw_cancel{false};
    auto blocked = [&]() -> Coro<int> {
        started.set_value();
        try {
            co_await forever();
        } catch (const asyncio::CancelledError&) {
            saw_cancel = true;
            throw;
        }
        co_return 0;
    };
    bool timed_out = false, done_after_timeout = true, cancel_accepted = false, cancelled = false,
         result_cancelled = false;
    auto main = [&]() -> Coro<> {
        auto finished = loop().create_future<>();
        std::thread other([&] {
            auto future = asyncio::run_coroutine_threadsafe(blocked(), loop());
            started.get_future().wait();  // cancel the coroutine while it runs, not before
            try {
                future.result(1ms);
            } catch (const tulip::TimeoutError&) {
                timed_out = true;
            }
            done_after_timeout = future.done();
            cancel_accepted = future.cancel();
            cancelled = future.cancelled();
            try {
                future.result();
            } catch (const asyncio::CancelledError&) {
                result_cancelled = true;
            }
            loop().call_soon_threadsafe([finished] { finished.set_result(); });
        });
        co_await finished;
        other.join();
        // The cancelled task finishes on the loop.
        while (asyncio::all_tasks().size() > 1) co_await asyncio::sleep(0);
    };
    run(main());
    CHECK(timed_out);
    CHECK_FALSE(done_after_timeout);
    CHECK(cancel_accepted);
    CHECK(cancelled);
    CHECK(result_cancelled);
    CHECK(saw_cancel);
}

TEST_CASE_METHOD(LoopFixture, "run_coroutine_threadsafe: cancelled before it starts, it never starts",
                 "[combinators][threads][cancel]") {
    bool started = false, cancel_accepted = false;
    auto work = [&]() -> Coro<> {
        started = true;
        co_return;
    };
    std::thread other([&] {
        auto future = asyncio::run_coroutine_threadsafe(work(), loop());
        cancel_accepted = future.cancel();  // the loop is not running yet: nothing has started
    });
    other.join();
    run([]() -> Coro<> {
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
    }());
    CHECK(cancel_accepted);
    CHECK_FALSE(started);
}

TEST_CASE_METHOD(LoopFixture, "run_coroutine_threadsafe: a closing loop fails the future instead of hanging",
                 "[combinators][threads]") {
    auto pending = asyncio::run_coroutine_threadsafe(forever(), loop());
    run([]() -> Coro<> { co_await asyncio::sleep(0); }());
    auto never_started = asyncio::run_coroutine_threadsafe(forever(), loop());
    loop().close();
    CHECK_THROWS_WITH(pending.result(), Catch::Contains("closed with the coroutine pending"));
    CHECK_THROWS_WITH(never_started.result(), Catch::Contains("closed before the coroutine started"));
    CHECK_THROWS_WITH(asyncio::run_coroutine_threadsafe(forever(), loop()), Catch::Contains("closed"));
    auto calls = take_handler_calls();  // the pending task is reported as destroyed
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].message == "Task was destroyed but it is pending!");
}

TEST_CASE_METHOD(LoopFixture, "to_thread: runs the function on another thread", "[combinators][threads]") {
    auto body = []() -> Coro<> {
        auto loop_thread = std::this_thread::get_id();
        auto sum = co_await asyncio::to_thread([](int a, std::string b) { return a + static_cast<int>(b.size()); },
                                               40, std::string("ab"));
        CHECK(sum == 42);
        auto other_thread = co_await asyncio::to_thread([] { return std::this_thread::get_id(); });
        CHECK(other_thread != loop_thread);
        CHECK_THROWS_WITH(co_await asyncio::to_thread([]() -> int { throw std::runtime_error("in thread"); }),
                          "in thread");
        int counter = 0;
        co_await asyncio::to_thread([](int& c) { ++c; }, std::ref(counter));
        CHECK(counter == 1);
        // A coroutine like Python's: it can be made a task and gathered.
        auto [x, y] = co_await asyncio::gather(asyncio::to_thread([] { return 1; }),
                                               asyncio::create_task(asyncio::to_thread([] { return 2; })));
        CHECK(x + y == 3);
    };
    run(body());
}
