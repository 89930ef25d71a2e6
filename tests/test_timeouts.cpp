// asyncio::timeout() and timeout_at() (after CPython's test_timeouts).
//
// Deadlines that must fire are tiny and guard a future that never completes; deadlines that must
// not fire are an hour away. Nothing here asserts on elapsed time.
#include "tulip/asyncio/timeouts.hpp"

#include <cerrno>

#include "loop_fixture.hpp"
#include "tulip/asyncio/combinators.hpp"

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;
using tulip::testing::LoopFixture;

namespace {

// Awaits a future nobody completes: only a cancellation ends it.
asyncio::Coro<> wait_forever() {
    auto never = asyncio::get_running_loop().create_future<int>();
    co_await never;
}

asyncio::Coro<int> seven() {
    co_await asyncio::sleep(0);
    co_return 7;
}

// The CancelledError a TimeoutError carries (Python's __cause__), if any.
bool caused_by_cancellation(const tulip::TimeoutError& e) {
    try {
        std::rethrow_if_nested(e);
    } catch (const asyncio::CancelledError&) {
        return true;
    } catch (...) {
    }
    return false;
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_basic", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(10ms);
        CHECK_THROWS_AS(co_await cm.run(wait_forever()), tulip::TimeoutError);
        CHECK(cm.expired());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_at_basic", "[timeouts]") {
    auto body = [&]() -> asyncio::Coro<> {
        double deadline = loop().time() + 0.01;
        auto cm = asyncio::timeout_at(deadline);
        CHECK_THROWS_AS(co_await cm.run(wait_forever()), tulip::TimeoutError);
        CHECK(cm.expired());
        CHECK(cm.when() == deadline);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: TimeoutError is an OSError with ETIMEDOUT, caused by the cancellation",
                 "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        try {
            co_await asyncio::timeout(10ms, wait_forever());
            FAIL("no TimeoutError");
        } catch (const tulip::TimeoutError& e) {
            CHECK(e.errno_value() == ETIMEDOUT);
            CHECK_THAT(e.what(), Catch::StartsWith("timeout: timed out after 0.01 s"));
            // test_timeout_exception_cause
            CHECK(caused_by_cancellation(e));
        }
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_nested_timeouts (only the outermost converts)", "[timeouts]") {
    auto body = [&]() -> asyncio::Coro<> {
        bool cancelled = false;
        double deadline = loop().time() + 0.01;
        auto cm1 = asyncio::timeout_at(deadline);
        auto cm2 = asyncio::timeout_at(deadline);
        auto inner = [&]() -> asyncio::Coro<> {
            try {
                co_await cm2.run(wait_forever());
            } catch (const asyncio::CancelledError&) {
                cancelled = true;
                throw;
            }
        };
        CHECK_THROWS_AS(co_await cm1.run(inner()), tulip::TimeoutError);
        CHECK(cancelled);
        CHECK(cm1.expired());
        CHECK(cm2.expired());
        CHECK(asyncio::current_task().cancelling() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_waiter_cancelled (the body sees CancelledError)", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        bool cancelled = false;
        auto guarded = [&]() -> asyncio::Coro<> {
            try {
                co_await wait_forever();
            } catch (const asyncio::CancelledError&) {
                cancelled = true;
                throw;
            }
        };
        CHECK_THROWS_AS(co_await asyncio::timeout(10ms, guarded()), tulip::TimeoutError);
        CHECK(cancelled);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_not_called", "[timeouts]") {
    auto body = [&]() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(3600s);
        auto value = co_await cm.run(seven());
        CHECK(value == 7);
        double t1 = loop().time();
        CHECK_FALSE(cm.expired());
        REQUIRE(cm.when());
        CHECK(*cm.when() > t1);
    };
    run(body());
    CHECK(loop().stats().timers == 0);
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_disabled and test_timeout_at_disabled", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(std::nullopt);
        auto value = co_await cm.run(seven());
        CHECK(value == 7);
        CHECK_FALSE(cm.expired());
        CHECK_FALSE(cm.when());
        auto cm_at = asyncio::timeout_at(std::nullopt);
        auto value_at = co_await cm_at.run(seven());
        CHECK(value_at == 7);
        CHECK_FALSE(cm_at.expired());
        CHECK_FALSE(cm_at.when());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_zero", "[timeouts]") {
    auto body = [&]() -> asyncio::Coro<> {
        double t0 = loop().time();
        auto cm = asyncio::timeout(0s);
        CHECK_THROWS_AS(co_await cm.run(wait_forever()), tulip::TimeoutError);
        double t1 = loop().time();
        CHECK(cm.expired());
        REQUIRE(cm.when());
        CHECK(t0 <= *cm.when());
        CHECK(*cm.when() <= t1);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_zero_sleep_zero", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(0.0);
        CHECK_THROWS_AS(co_await cm.run([]() -> asyncio::Coro<> { co_await asyncio::sleep(0); }()),
                        tulip::TimeoutError);
        CHECK(cm.expired());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_in_the_past_sleep_zero", "[timeouts]") {
    auto body = [&]() -> asyncio::Coro<> {
        double t0 = loop().time();
        auto cm = asyncio::timeout(-11.0);
        CHECK_THROWS_AS(co_await cm.run([]() -> asyncio::Coro<> { co_await asyncio::sleep(0); }()),
                        tulip::TimeoutError);
        CHECK(cm.expired());
        REQUIRE(cm.when());
        CHECK(*cm.when() <= t0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_foreign_exception_passed", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(3600s);
        auto raise = []() -> asyncio::Coro<> {
            co_await asyncio::sleep(0);
            throw std::out_of_range("KeyError");
        };
        CHECK_THROWS_AS(co_await cm.run(raise()), std::out_of_range);
        CHECK_FALSE(cm.expired());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_foreign_exception_on_timeout", "[timeouts]") {
    auto crash = []() -> asyncio::Coro<> {
        try {
            co_await wait_forever();
        } catch (const asyncio::CancelledError&) {
        }
        throw std::domain_error("ZeroDivisionError");
    };
    auto body = [&]() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(10ms);
        CHECK_THROWS_AS(co_await cm.run(crash()), std::domain_error);
        CHECK(cm.expired());
        CHECK(asyncio::current_task().cancelling() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_foreign_cancel_doesnt_timeout_if_not_expired", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(3600s);
        auto self_cancel = []() -> asyncio::Coro<> {
            asyncio::current_task().cancel();
            // The request waits for the next suspension; sleep(0) delivers it when it resumes.
            co_await asyncio::sleep(0);
        };
        CHECK_THROWS_AS(co_await cm.run(self_cancel()), asyncio::CancelledError);
        CHECK_FALSE(cm.expired());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: a cancel() from outside while awaiting is not a timeout", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(3600s);
        co_await cm.run(wait_forever());
    };
    auto outer = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(body());
        co_await asyncio::sleep(0);
        t.cancel("from outside");
        try {
            co_await t;
            FAIL("no CancelledError");
        } catch (const asyncio::CancelledError& e) {
            CHECK(e.message() == "from outside");
        }
        CHECK(t.cancelled());
    };
    run(outer());
}

TEST_CASE_METHOD(LoopFixture, "timeout: an outside cancel() together with the deadline stays a cancellation",
                 "[timeouts]") {
    // Python 3.12: run() converts only when no cancel() request other than its own is left.
    auto body = []() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(0s);  // fires on the next iteration
        auto both = []() -> asyncio::Coro<> {
            asyncio::current_task().cancel("outside");
            co_await wait_forever();
        };
        CHECK_THROWS_AS(co_await cm.run(both()), asyncio::CancelledError);
        CHECK(cm.expired());
        CHECK(asyncio::current_task().cancelling() == 1);
        asyncio::current_task().uncancel();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_outer_task_is_not_cancelled", "[timeouts]") {
    auto outer = []() -> asyncio::Coro<> {
        CHECK_THROWS_AS(co_await asyncio::timeout(1ms, wait_forever()), tulip::TimeoutError);
    };
    auto body = [&]() -> asyncio::Coro<> {
        auto task = asyncio::create_task(outer());
        co_await task;
        CHECK_FALSE(task.cancelled());
        CHECK(task.done());
        CHECK(task.cancelling() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_reschedule", "[timeouts]") {
    auto body = [&]() -> asyncio::Coro<> {
        auto fut = loop().create_future<asyncio::Timeout*>();
        double deadline1 = loop().time() + 3600;
        double deadline2 = deadline1 + 20;
        auto f = [&]() -> asyncio::Coro<> {
            auto cm = asyncio::timeout_at(deadline1);
            co_await cm.run([&]() -> asyncio::Coro<> {
                fut.set_result(&cm);
                co_await wait_forever();
            }());
        };
        auto task = asyncio::create_task(f());
        asyncio::Timeout* cm = co_await fut;
        CHECK(cm->when() == deadline1);
        cm->reschedule(deadline2);
        CHECK(cm->when() == deadline2);
        cm->reschedule(std::nullopt);
        CHECK_FALSE(cm->when());
        CHECK_FALSE(cm->expired());
        task.cancel();
        CHECK_THROWS_AS(co_await task, asyncio::CancelledError);
    };
    run(body());
    CHECK(loop().stats().timers == 0);
}

TEST_CASE_METHOD(LoopFixture, "timeout: reschedule to the past expires it; the message names the deadline",
                 "[timeouts]") {
    auto body = [&]() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(3600s);
        double deadline = loop().time() - 1;
        try {
            co_await cm.run([&]() -> asyncio::Coro<> {
                cm.reschedule(deadline);
                co_await wait_forever();
            }());
            FAIL("no TimeoutError");
        } catch (const tulip::TimeoutError& e) {
            CHECK_THAT(e.what(), Catch::StartsWith("timeout: deadline " + asyncio::detail::format_loop_time(deadline) +
                                                   " (loop time) passed"));
        }
        CHECK(cm.expired());
        try {
            co_await asyncio::timeout_at(deadline, wait_forever());
            FAIL("no TimeoutError");
        } catch (const tulip::TimeoutError& e) {
            CHECK_THAT(e.what(), Catch::StartsWith("timeout_at: deadline"));
        }
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_repr_active, test_repr_expired, test_repr_finished, test_repr_disabled",
                 "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto active = asyncio::timeout(3600s);
        std::string seen;
        co_await active.run([&]() -> asyncio::Coro<> {
            seen = active.repr();
            co_return;
        }());
        CHECK_THAT(seen, Catch::Matches(R"(<Timeout \[active\] when=\d+\.\d{3}>)"));
        CHECK(active.repr() == "<Timeout [finished]>");

        auto expiring = asyncio::timeout(10ms);
        CHECK_THROWS_AS(co_await expiring.run(wait_forever()), tulip::TimeoutError);
        CHECK(expiring.repr() == "<Timeout [expired]>");

        auto disabled = asyncio::timeout(std::nullopt);
        co_await disabled.run([&]() -> asyncio::Coro<> {
            seen = disabled.repr();
            co_return;
        }());
        CHECK(seen == "<Timeout [active] when=None>");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_nested_timeout_in_finally", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto outer_body = []() -> asyncio::Coro<> {
            std::exception_ptr cancelled;
            try {
                co_await wait_forever();
            } catch (const asyncio::CancelledError&) {
                cancelled = std::current_exception();
            }
            // Python's `finally:` with an await in it.
            CHECK_THROWS_AS(co_await asyncio::timeout(10ms, wait_forever()), tulip::TimeoutError);
            if (cancelled) std::rethrow_exception(cancelled);
        };
        CHECK_THROWS_AS(co_await asyncio::timeout(10ms, outer_body()), tulip::TimeoutError);
        CHECK(asyncio::current_task().cancelling() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_after_cancellation", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        try {
            asyncio::current_task().cancel();
            co_await asyncio::sleep(0);  // work which will be cancelled
            FAIL("not cancelled");
        } catch (const asyncio::CancelledError&) {
        }
        // Cleanup under a timeout still times out, although a cancel() request is pending.
        CHECK_THROWS_AS(co_await asyncio::timeout(0s, wait_forever()), tulip::TimeoutError);
        CHECK(asyncio::current_task().cancelling() == 1);
        asyncio::current_task().uncancel();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_cancel_in_timeout_after_cancellation", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        try {
            asyncio::current_task().cancel();
            co_await asyncio::sleep(0);
            FAIL("not cancelled");
        } catch (const asyncio::CancelledError&) {
        }
        auto cleanup = []() -> asyncio::Coro<> {
            asyncio::current_task().cancel();
            co_await asyncio::sleep(0);
        };
        CHECK_THROWS_AS(co_await asyncio::timeout(3600s, cleanup()), asyncio::CancelledError);
        CHECK(asyncio::current_task().cancelling() == 2);
        asyncio::current_task().uncancel();
        asyncio::current_task().uncancel();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_already_entered and test_timeout_double_enter", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(3600s);
        co_await cm.run([&]() -> asyncio::Coro<> {
            CHECK_THROWS_WITH(co_await cm.run(seven()), Catch::Contains("has already been entered"));
        }());
        CHECK_THROWS_WITH(co_await cm.run(seven()), Catch::Contains("has already been entered"));
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_finished and test_timeout_not_entered", "[timeouts]") {
    auto body = []() -> asyncio::Coro<> {
        auto fresh = asyncio::timeout(10ms);
        CHECK_THROWS_WITH(fresh.reschedule(0.02), Catch::Contains("has not been entered"));
        auto cm = asyncio::timeout(3600s);
        co_await cm.run(seven());
        CHECK_THROWS_WITH(cm.reschedule(0.02), Catch::Contains("finished"));
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: test_timeout_without_task", "[timeouts]") {
    // Driving the coroutine by hand, outside any task: entering must refuse.
    auto cm = asyncio::Timeout(loop().time() + 0.01);
    auto c = cm.run(seven());
    auto h = c.release();
    h.resume();
    REQUIRE(h.promise().finished());
    CHECK_THROWS_WITH(h.promise().take_result(), Catch::Contains("task"));
    h.destroy();
    CHECK_THROWS_WITH(cm.reschedule(0.02), Catch::Contains("has not been entered"));
}

TEST_CASE_METHOD(LoopFixture, "timeout: the shorthand returns the result of a Coro, a Future or a Task",
                 "[timeouts]") {
    auto body = [&]() -> asyncio::Coro<> {
        auto from_coro = co_await asyncio::timeout(3600s, seven());
        CHECK(from_coro == 7);
        auto f = loop().create_future<std::string>();
        loop().call_soon([f] { f.set_result("done"); });
        auto from_future = co_await asyncio::timeout(3600s, f);
        CHECK(from_future == "done");
        auto t = asyncio::create_task(seven());
        auto from_task = co_await asyncio::timeout_at(loop().time() + 3600, t);
        CHECK(from_task == 7);
        co_await asyncio::timeout(std::nullopt, []() -> asyncio::Coro<> { co_return; }());
        auto moved = co_await asyncio::timeout(3600s, []() -> asyncio::Coro<std::unique_ptr<int>> {
            co_return std::make_unique<int>(5);
        }());
        CHECK(*moved == 5);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: a timed-out future is cancelled", "[timeouts]") {
    auto body = [&]() -> asyncio::Coro<> {
        auto f = loop().create_future<int>();
        CHECK_THROWS_AS(co_await asyncio::timeout(1ms, f), tulip::TimeoutError);
        CHECK(f.cancelled());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "timeout: a body that swallows the cancellation returns its value", "[timeouts]") {
    auto stubborn = []() -> asyncio::Coro<int> {
        try {
            co_await wait_forever();
        } catch (const asyncio::CancelledError&) {
        }
        co_return 42;
    };
    auto body = [&]() -> asyncio::Coro<> {
        auto cm = asyncio::timeout(1ms);
        auto value = co_await cm.run(stubborn());
        CHECK(value == 42);
        CHECK(cm.expired());
        CHECK(asyncio::current_task().cancelling() == 0);
    };
    run(body());
}

// --- on a virtual clock: deadlines checked exactly, at once -------------------------------------

namespace {

// A loop whose clock jumps to the next timer instead of waiting for it, with the fixture's
// teardown checks.
struct VirtualClockLoop {
    asyncio::EventLoop loop{asyncio::LoopOptions{.virtual_clock = true}};
    std::vector<asyncio::ExceptionContext> handler_calls;

    VirtualClockLoop() {
        loop.set_exception_handler(
            [this](asyncio::EventLoop&, const asyncio::ExceptionContext& c) { handler_calls.push_back(c); });
    }
    ~VirtualClockLoop() {
        CHECK(loop.stats().live_tasks == 0);
        loop.close();
        CHECK(handler_calls.empty());
    }
};

}  // namespace

TEST_CASE("timeout (virtual clock): wait_for and timeout() fire exactly at the deadline", "[timeouts]") {
    VirtualClockLoop v;
    auto body = [&]() -> asyncio::Coro<> {
        double t0 = v.loop.time();
        CHECK_THROWS_AS(co_await asyncio::wait_for(wait_forever(), 5.0), tulip::TimeoutError);
        CHECK(v.loop.time() - t0 == Approx(5.0));
        t0 = v.loop.time();
        CHECK_THROWS_AS(co_await asyncio::timeout(std::chrono::hours(1), wait_forever()), tulip::TimeoutError);
        CHECK(v.loop.time() - t0 == Approx(3600.0));
    };
    v.loop.run_until_complete(body());
}

TEST_CASE("timeout (virtual clock): test_nested_timeouts_loop_busy (inner first, then the outer)", "[timeouts]") {
    VirtualClockLoop v;
    auto body = [&]() -> asyncio::Coro<> {
        double t0 = v.loop.time();
        double inner_fired_at = -1;
        auto outer = asyncio::timeout(10.0);
        CHECK_THROWS_AS(co_await outer.run([&]() -> asyncio::Coro<> {
            CHECK_THROWS_AS(co_await asyncio::timeout(5.0, wait_forever()), tulip::TimeoutError);
            inner_fired_at = v.loop.time() - t0;
            co_await wait_forever();  // interrupted by the outer timeout
        }()),
                        tulip::TimeoutError);
        CHECK(inner_fired_at == Approx(5.0));
        CHECK(v.loop.time() - t0 == Approx(10.0));
        CHECK(outer.expired());
    };
    v.loop.run_until_complete(body());
}

TEST_CASE("timeout (virtual clock): reschedule() moves the deadline", "[timeouts]") {
    VirtualClockLoop v;
    auto body = [&]() -> asyncio::Coro<> {
        double t0 = v.loop.time();
        auto cm = asyncio::timeout(5.0);
        CHECK_THROWS_AS(co_await cm.run([&]() -> asyncio::Coro<> {
            co_await asyncio::sleep(1.0);
            cm.reschedule(v.loop.time() + 10);
            co_await wait_forever();
        }()),
                        tulip::TimeoutError);
        CHECK(v.loop.time() - t0 == Approx(11.0));
    };
    v.loop.run_until_complete(body());
}

TEST_CASE("timeout (virtual clock): wait() and as_completed() give up exactly at the timeout", "[timeouts]") {
    VirtualClockLoop v;
    auto body = [&]() -> asyncio::Coro<> {
        auto never = v.loop.create_future<int>();
        auto later = v.loop.create_task([]() -> asyncio::Coro<int> {
            co_await asyncio::sleep(2.0);
            co_return 2;
        }());
        double t0 = v.loop.time();
        std::vector<asyncio::Future<int>> futures{never, later};
        auto [done, pending] = co_await asyncio::wait(futures, 3.0, asyncio::FIRST_COMPLETED);
        CHECK(v.loop.time() - t0 == Approx(2.0));  // `later` came first
        CHECK(done.size() == 1);
        auto result = co_await asyncio::wait(futures, 3.0);
        CHECK(v.loop.time() - t0 == Approx(5.0));  // then the timeout
        CHECK(result.pending.size() == 1);

        t0 = v.loop.time();
        int timeouts = 0;
        for (auto next : asyncio::as_completed(futures, 4.0)) {
            try {
                co_await next;
            } catch (const tulip::TimeoutError&) {
                ++timeouts;
            }
        }
        CHECK(timeouts == 1);
        CHECK(v.loop.time() - t0 == Approx(4.0));
        never.cancel();
    };
    v.loop.run_until_complete(body());
}

// Python cancels the wait a task suspends on when a cancel() was requested while the task was
// running (Task.__step checks _must_cancel as it suspends): the rescue timer must never be needed.
TEST_CASE_METHOD(LoopFixture, "timeout: test_foreign_cancel_doesnt_timeout_if_not_expired, awaiting a long wait",
                 "[timeouts][cancel-at-suspension]") {
    auto body = [&]() -> asyncio::Coro<> {
        auto never = loop().create_future<int>();
        auto rescue = loop().call_later(1.0, [never] {
            if (!never.done()) never.set_result(0);
        });
        auto cm = asyncio::timeout(3600s);
        CHECK_THROWS_AS(co_await cm.run([&]() -> asyncio::Coro<> {
            asyncio::current_task().cancel();
            co_await never;  // Python: cancelled at once
        }()),
                        asyncio::CancelledError);
        CHECK(never.cancelled());
        CHECK_FALSE(cm.expired());
        rescue.cancel();
    };
    run(body());
}
