// Lock, Event, Condition, Semaphore and BoundedSemaphore (after CPython's test_locks, plus the
// contention properties of reliability check 19).
#include "tulip/asyncio/locks.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "contention.hpp"
#include "loop_fixture.hpp"

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;
using tulip::testing::all_done;
using tulip::testing::cancel_and_reap;
using tulip::testing::ends_cancelled;
using tulip::testing::finish_within;
using tulip::testing::finishes;
using tulip::testing::LoopFixture;

namespace {

// One turn of the loop for everything that is ready (Python's `await asyncio.sleep(0)`).
asyncio::SleepAwaiter yield_once() { return asyncio::sleep(0); }

}  // namespace

// =============================================================================================
// Lock
// =============================================================================================

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_acquire (FIFO order)", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Lock lock;
        std::vector<int> result;
        auto acquired = co_await lock.acquire();
        CHECK(acquired);
        auto c = [&](int n) -> asyncio::Coro<bool> {
            if (co_await lock.acquire()) result.push_back(n);
            co_return true;
        };
        auto t1 = asyncio::create_task(c(1));
        auto t2 = asyncio::create_task(c(2));
        co_await yield_once();
        CHECK(result.empty());

        lock.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1});
        co_await yield_once();
        CHECK(result == std::vector<int>{1});

        auto t3 = asyncio::create_task(c(3));
        lock.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1, 2});

        lock.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1, 2, 3});

        for (auto* t : {&t1, &t2, &t3}) {
            CHECK(t->done());
            CHECK(t->result());
        }
        lock.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_acquire_cancel", "[locks][cancel]") {
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::Lock lock;
        auto acquired = co_await lock.acquire();
        CHECK(acquired);
        auto task = asyncio::create_task(lock.acquire());
        loop().call_soon([task] { task.cancel(); });
        auto task_cancelled = co_await ends_cancelled(task);
        CHECK(task_cancelled);
        CHECK(lock.waiter_count() == 0);
        CHECK(lock.locked());
        lock.release();
        CHECK_FALSE(lock.locked());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_cancel_race", "[locks][cancel][races]") {
    // A holds the lock, B and C wait. Then, together: B is cancelled and A releases. B's future
    // is cancelled but B is still in the queue when A releases; the lock must end up with C.
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::Lock lock;
        auto lockit = [&](std::optional<asyncio::Future<>> blocker) -> asyncio::Coro<> {
            auto guard = co_await lock.acquire_guard();
            if (blocker) co_await *blocker;
        };
        auto fa = loop().create_future<void>();
        auto ta = asyncio::create_task(lockit(fa));
        co_await yield_once();
        CHECK(lock.locked());
        auto tb = asyncio::create_task(lockit(std::nullopt));
        co_await yield_once();
        CHECK(lock.waiter_count() == 1);
        auto tc = asyncio::create_task(lockit(std::nullopt));
        co_await yield_once();
        CHECK(lock.waiter_count() == 2);

        fa.set_result();
        tb.cancel();
        co_await yield_once();
        CHECK_FALSE(lock.locked());
        CHECK(ta.done());
        CHECK(tb.cancelled());
        auto tc_finished = co_await finishes(tc);  // a lost wake-up fails here instead of hanging
        CHECK(tc_finished);
        CHECK_FALSE(lock.locked());
        CHECK(lock.waiter_count() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_cancel_release_race", "[locks][cancel][races]") {
    // Four holders-to-be; cancel the second and release the first in one callback: exactly one
    // task may get the lock.
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::Lock lock;
        int lock_count = 0;
        int call_count = 0;
        auto lockit = [&]() -> asyncio::Coro<> {
            ++call_count;
            co_await lock.acquire();
            ++lock_count;
        };
        co_await lock.acquire();
        auto t1 = asyncio::create_task(lockit());
        auto t2 = asyncio::create_task(lockit());
        auto t3 = asyncio::create_task(lockit());
        co_await yield_once();

        loop().call_soon([&] {
            t1.cancel();
            lock.release();
        });
        auto t1_cancelled = co_await ends_cancelled(t1);
        CHECK(t1_cancelled);
        CHECK(lock_count == 1);
        CHECK(call_count == 3);
        CHECK(t1.cancelled());
        CHECK(t2.done());

        t3.cancel();
        co_await yield_once();
        CHECK(t3.cancelled());
        CHECK(lock.waiter_count() == 0);
        lock.release();  // t2's
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_finished_waiter_cancelled", "[locks][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Lock lock;
        co_await lock.acquire();
        CHECK(lock.locked());
        auto tb = asyncio::create_task(lock.acquire());
        co_await yield_once();
        CHECK(lock.waiter_count() == 1);

        // A second waiter arrives, the first is cancelled and the lock released: the second
        // must get the lock.
        auto tc = asyncio::create_task(lock.acquire());
        tb.cancel();
        lock.release();
        co_await yield_once();
        CHECK(lock.locked());
        CHECK(tb.cancelled());
        auto tc_finished = co_await finishes(tc);
        REQUIRE(tc_finished);
        CHECK(tc.result());
        lock.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_acquire_cancel_after_release (the wake-up is passed on)",
                 "[locks][cancel][races]") {
    // B is woken by release() and cancelled before it runs: its future already has a result, so
    // the cancellation reaches it as it resumes, and C must get the lock instead.
    auto body = []() -> asyncio::Coro<> {
        asyncio::Lock lock;
        std::vector<char> got;
        auto taker = [&](char name) -> asyncio::Coro<> {
            co_await lock.acquire();
            got.push_back(name);
        };
        co_await lock.acquire();
        auto tb = asyncio::create_task(taker('B'));
        auto tc = asyncio::create_task(taker('C'));
        co_await yield_once();
        CHECK(lock.waiter_count() == 2);

        lock.release();   // B's future gets its result
        CHECK(tb.cancel());  // too late to cancel the future: delivered when B resumes
        co_await yield_once();
        CHECK(tb.cancelled());
        CHECK_FALSE(lock.locked());  // C was woken but has not run yet
        CHECK(lock.waiter_count() == 1);
        auto tc_finished = co_await finishes(tc);
        CHECK(tc_finished);
        CHECK(got == std::vector<char>{'C'});
        CHECK(lock.locked());
        CHECK(lock.waiter_count() == 0);
        lock.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_release_not_acquired", "[locks]") {
    asyncio::Lock lock;
    CHECK_THROWS_AS(lock.release(), tulip::RuntimeError);
    CHECK_THROWS_WITH(lock.release(), "Lock is not acquired.");
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_release_no_waiters", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Lock lock;
        co_await lock.acquire();
        CHECK(lock.locked());
        lock.release();
        CHECK_FALSE(lock.locked());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_context_manager (acquire_guard)", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Lock lock;
        CHECK_FALSE(lock.locked());
        {
            auto guard = co_await lock.acquire_guard();
            CHECK(guard.owns());
            CHECK(lock.locked());
        }
        CHECK_FALSE(lock.locked());

        // Released on the way out of an exception.
        try {
            auto guard = co_await lock.acquire_guard();
            throw std::runtime_error("inside");
        } catch (const std::runtime_error&) {
        }
        CHECK_FALSE(lock.locked());

        // Released early; moved guards release once.
        auto g1 = co_await lock.acquire_guard();
        auto g2 = std::move(g1);
        CHECK_FALSE(g1.owns());
        g2.release();
        CHECK_FALSE(lock.locked());
        g2.release();  // nothing left to release

        // detach() hands the release back to the caller.
        auto g3 = co_await lock.acquire_guard();
        asyncio::Lock* held = g3.detach();
        CHECK(held == &lock);
        CHECK(lock.locked());
        lock.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock guard is released when its task is cancelled while holding",
                 "[locks][cancel]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Lock lock;
        asyncio::Event parked;
        auto holder = [&]() -> asyncio::Coro<> {
            auto guard = co_await lock.acquire_guard();
            co_await parked.wait();  // never set
        };
        auto waiter = [&]() -> asyncio::Coro<int> {
            auto guard = co_await lock.acquire_guard();
            co_return 42;
        };
        auto th = asyncio::create_task(holder());
        auto tw = asyncio::create_task(waiter());
        co_await yield_once();
        CHECK(lock.locked());
        CHECK(lock.waiter_count() == 1);
        th.cancel();
        auto th_cancelled = co_await ends_cancelled(th);
        CHECK(th_cancelled);
        auto tw_finished = co_await finishes(tw);
        REQUIRE(tw_finished);
        CHECK(tw.result() == 42);
        CHECK_FALSE(lock.locked());
        CHECK(parked.waiter_count() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock cancelled in acquire_guard holds nothing and leaves no waiter",
                 "[locks][cancel]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Lock lock;
        bool entered = false;
        auto worker = [&]() -> asyncio::Coro<> {
            auto guard = co_await lock.acquire_guard();
            entered = true;
        };
        co_await lock.acquire();
        auto t = asyncio::create_task(worker());
        co_await yield_once();
        CHECK(lock.waiter_count() == 1);
        t.cancel("stop waiting");
        try {
            co_await t;
            FAIL("the task should have been cancelled");
        } catch (const asyncio::CancelledError& e) {
            CHECK(e.message() == "stop waiting");
        }
        CHECK_FALSE(entered);
        CHECK(lock.waiter_count() == 0);
        CHECK(lock.locked());  // still ours
        lock.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock a free lock whose only waiters are cancelled is taken at once",
                 "[locks][cancel]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Lock lock;
        co_await lock.acquire();
        auto tb = asyncio::create_task(lock.acquire());
        co_await yield_once();
        tb.cancel();      // its future is cancelled; tb has not run yet
        lock.release();   // the head is cancelled: nobody to wake
        CHECK(lock.waiter_count() == 1);
        auto acquired = co_await lock.acquire();
        CHECK(acquired);  // not queued behind a cancelled waiter
        auto tb_cancelled = co_await ends_cancelled(tb);
        CHECK(tb_cancelled);
        CHECK(lock.waiter_count() == 0);
        lock.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Lock test_ambiguous_loops (bound to the first loop it waits on)", "[locks]") {
    asyncio::Lock lock;
    auto contend = [&]() -> asyncio::Coro<> {
        co_await lock.acquire();  // free: no loop involved yet
        auto t = asyncio::create_task(lock.acquire());
        co_await yield_once();  // t waits: the lock binds to this loop
        lock.release();
        co_await t;
        lock.release();
    };
    run(contend());

    asyncio::EventLoop other;
    auto on_other = [&]() -> asyncio::Coro<> {
        co_await lock.acquire();  // the free fast path works anywhere
        try {
            co_await lock.acquire();
            FAIL("waiting on another loop's lock should fail");
        } catch (const tulip::RuntimeError& e) {
            CHECK(std::string(e.what()) == "Lock is bound to a different event loop");
        }
        lock.release();
    };
    other.run_until_complete(on_other());
    other.close();
    CHECK_FALSE(lock.locked());
    CHECK(lock.waiter_count() == 0);
}

// =============================================================================================
// Event
// =============================================================================================

TEST_CASE_METHOD(LoopFixture, "locks: Event test_wait", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Event ev;
        CHECK_FALSE(ev.is_set());
        std::vector<int> result;
        auto c = [&](int n) -> asyncio::Coro<bool> {
            if (co_await ev.wait()) result.push_back(n);
            co_return true;
        };
        auto t1 = asyncio::create_task(c(1));
        auto t2 = asyncio::create_task(c(2));
        co_await yield_once();
        CHECK(result.empty());

        // t3 starts after the set: it does not wait at all, and runs before the woken ones.
        auto t3 = asyncio::create_task(c(3));
        ev.set();
        co_await yield_once();
        CHECK(result == std::vector<int>{3, 1, 2});
        for (auto* t : {&t1, &t2, &t3}) CHECK(t->done());
        CHECK(ev.waiter_count() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Event test_wait_on_set", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Event ev;
        ev.set();
        auto woke = co_await ev.wait();
        CHECK(woke);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Event test_wait_cancel", "[locks][cancel]") {
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::Event ev;
        auto wait = asyncio::create_task(ev.wait());
        loop().call_soon([wait] { wait.cancel(); });
        auto wait_cancelled = co_await ends_cancelled(wait);
        CHECK(wait_cancelled);
        CHECK(ev.waiter_count() == 0);
        CHECK_FALSE(ev.is_set());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Event test_clear", "[locks]") {
    asyncio::Event ev;
    CHECK_FALSE(ev.is_set());
    ev.set();
    CHECK(ev.is_set());
    ev.clear();
    CHECK_FALSE(ev.is_set());
}

TEST_CASE_METHOD(LoopFixture, "locks: Event test_clear_with_waiters", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Event ev;
        std::vector<int> result;
        auto c1 = [&]() -> asyncio::Coro<bool> {
            if (co_await ev.wait()) result.push_back(1);
            co_return true;
        };
        auto t = asyncio::create_task(c1());
        co_await yield_once();
        CHECK(result.empty());

        // A set() followed by clear() still wakes the waiter that was there.
        ev.set();
        ev.clear();
        CHECK_FALSE(ev.is_set());
        ev.set();
        ev.set();
        CHECK(ev.waiter_count() == 1);

        co_await yield_once();
        CHECK(result == std::vector<int>{1});
        CHECK(ev.waiter_count() == 0);
        CHECK(t.done());
        CHECK(t.result());
    };
    run(body());
}

// =============================================================================================
// Condition
// =============================================================================================

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_wait", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        std::vector<int> result;
        auto c = [&](int n) -> asyncio::Coro<bool> {
            co_await cond.acquire();
            if (co_await cond.wait()) result.push_back(n);
            co_return true;  // keeps the lock: the test releases it for the next one
        };
        auto t1 = asyncio::create_task(c(1));
        auto t2 = asyncio::create_task(c(2));
        auto t3 = asyncio::create_task(c(3));
        co_await yield_once();
        CHECK(result.empty());
        CHECK_FALSE(cond.locked());

        auto acquired = co_await cond.acquire();
        CHECK(acquired);
        cond.notify();
        co_await yield_once();
        CHECK(result.empty());  // notified, but the lock is ours
        CHECK(cond.locked());

        cond.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1});
        CHECK(cond.locked());

        cond.notify(2);
        co_await yield_once();
        CHECK(result == std::vector<int>{1});
        CHECK(cond.locked());

        cond.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1, 2});
        CHECK(cond.locked());

        cond.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1, 2, 3});
        CHECK(cond.locked());

        for (auto* t : {&t1, &t2, &t3}) {
            CHECK(t->done());
            CHECK(t->result());
        }
        cond.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_wait_cancel", "[locks][cancel]") {
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::Condition cond;
        co_await cond.acquire();
        auto wait = asyncio::create_task(cond.wait());
        loop().call_soon([wait] { wait.cancel(); });
        auto wait_cancelled = co_await ends_cancelled(wait);
        CHECK(wait_cancelled);
        CHECK(cond.waiter_count() == 0);
        CHECK(cond.locked());  // re-acquired before the cancellation went out
        cond.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_wait_cancel_contested", "[locks][cancel][races]") {
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::Condition cond;
        co_await cond.acquire();
        CHECK(cond.locked());
        auto wait_task = asyncio::create_task(cond.wait());
        co_await yield_once();
        CHECK_FALSE(cond.locked());

        // Notify, but hold the lock while the task is cancelled: the task is cancelled while it
        // re-acquires, and must still come out holding the lock.
        co_await cond.acquire();
        CHECK(cond.locked());
        cond.notify();
        loop().call_soon([wait_task] { wait_task.cancel(); });
        loop().call_soon([&cond] { cond.release(); });
        co_await ends_cancelled(wait_task);
        CHECK(cond.locked());
        CHECK(cond.waiter_count() == 0);
        cond.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_wait_cancel_after_notify", "[locks][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        bool waited = false;
        auto wait_on_cond = [&]() -> asyncio::Coro<> {
            auto guard = co_await cond.acquire_guard();
            waited = true;
            co_await cond.wait();
        };
        auto waiter = asyncio::create_task(wait_on_cond());
        co_await yield_once();  // it waits

        co_await cond.acquire();
        cond.notify();
        co_await yield_once();  // it is re-acquiring
        waiter.cancel();
        co_await yield_once();  // the cancellation lands while it re-acquires
        cond.release();
        co_await yield_once();  // it takes the lock, raises, and its guard releases
        CHECK(waiter.cancelled());
        CHECK(waited);
        CHECK_FALSE(cond.locked());
        CHECK(cond.waiter_count() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition a notified waiter cancelled before it runs notifies another",
                 "[locks][cancel][races]") {
    // CPython's test_cancelled_error_wakeup: the notification must not be lost with the task.
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        auto c = [&]() -> asyncio::Coro<bool> {
            auto guard = co_await cond.acquire_guard();
            co_return co_await cond.wait();
        };
        auto t1 = asyncio::create_task(c());
        auto t2 = asyncio::create_task(c());
        co_await yield_once();
        CHECK(cond.waiter_count() == 2);

        co_await cond.acquire();
        cond.notify(1);  // t1's future gets its result...
        t1.cancel();     // ...so the cancellation waits for t1 to resume
        cond.release();
        auto t1_cancelled = co_await ends_cancelled(t1);
        CHECK(t1_cancelled);
        auto t2_finished = co_await finishes(t2);  // the notification was passed on
        REQUIRE(t2_finished);
        CHECK(t2.result());
        CHECK_FALSE(cond.locked());
        CHECK(cond.waiter_count() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_wait_unacquired", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        CHECK_THROWS_WITH(co_await cond.wait(), "cannot wait on un-acquired lock");
        CHECK(cond.waiter_count() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_wait_for (with a predicate)", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        bool presult = false;
        auto predicate = [&] { return presult; };
        std::vector<int> result;
        auto c1 = [&]() -> asyncio::Coro<bool> {
            co_await cond.acquire();
            if (co_await cond.wait_for(predicate)) {
                result.push_back(1);
                cond.release();
            }
            co_return true;
        };
        auto t = asyncio::create_task(c1());
        co_await yield_once();
        CHECK(result.empty());

        co_await cond.acquire();
        cond.notify();
        cond.release();
        co_await yield_once();
        CHECK(result.empty());  // woken, predicate still false: waits again

        presult = true;
        co_await cond.acquire();
        cond.notify();
        cond.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1});
        CHECK(t.done());
        CHECK(t.result());
        CHECK_FALSE(cond.locked());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_wait_for_unacquired", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        // A predicate that is true at once needs no lock; its value is returned.
        auto value = co_await cond.wait_for([] { return 123; });
        CHECK(value == 123);
        CHECK_THROWS_AS(co_await cond.wait_for([] { return false; }), tulip::RuntimeError);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition wait_for cancelled leaves no waiter and the lock held",
                 "[locks][cancel]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        int calls = 0;
        auto waiting = [&]() -> asyncio::Coro<> {
            auto guard = co_await cond.acquire_guard();
            co_await cond.wait_for([&] { return ++calls > 100; });
        };
        auto t = asyncio::create_task(waiting());
        co_await yield_once();
        CHECK(cond.waiter_count() == 1);
        t.cancel();
        auto t_cancelled = co_await ends_cancelled(t);
        CHECK(t_cancelled);
        CHECK(calls == 1);
        CHECK(cond.waiter_count() == 0);
        CHECK_FALSE(cond.locked());  // the guard gave it back
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_notify", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        std::vector<int> result;
        auto c = [&](int n) -> asyncio::Coro<bool> {
            co_await cond.acquire();
            if (co_await cond.wait()) {
                result.push_back(n);
                cond.release();
            }
            co_return true;
        };
        auto t1 = asyncio::create_task(c(1));
        auto t2 = asyncio::create_task(c(2));
        auto t3 = asyncio::create_task(c(3));
        co_await yield_once();
        CHECK(result.empty());

        co_await cond.acquire();
        cond.notify(1);
        cond.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1});

        co_await cond.acquire();
        cond.notify(1);
        cond.notify(2048);
        cond.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1, 2, 3});
        for (auto* t : {&t1, &t2, &t3}) {
            CHECK(t->done());
            CHECK(t->result());
        }
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_notify_all", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        std::vector<int> result;
        auto c = [&](int n) -> asyncio::Coro<bool> {
            co_await cond.acquire();
            if (co_await cond.wait()) {
                result.push_back(n);
                cond.release();
            }
            co_return true;
        };
        auto t1 = asyncio::create_task(c(1));
        auto t2 = asyncio::create_task(c(2));
        co_await yield_once();
        CHECK(result.empty());

        co_await cond.acquire();
        cond.notify_all();
        cond.release();
        co_await yield_once();
        CHECK(result == std::vector<int>{1, 2});
        CHECK(t1.done());
        CHECK(t2.done());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_notify_unacquired and test_notify_all_unacquired",
                 "[locks]") {
    asyncio::Condition cond;
    CHECK_THROWS_WITH(cond.notify(), "cannot notify on un-acquired lock");
    CHECK_THROWS_AS(cond.notify_all(), tulip::RuntimeError);
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_context_manager (acquire_guard)", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        CHECK_FALSE(cond.locked());
        {
            auto guard = co_await cond.acquire_guard();
            CHECK(cond.locked());
        }
        CHECK_FALSE(cond.locked());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_explicit_lock", "[locks]") {
    auto check_shared = [](asyncio::Lock& lock, asyncio::Condition& cond) -> asyncio::Coro<> {
        CHECK_FALSE(lock.locked());
        CHECK_FALSE(cond.locked());
        {
            auto guard = co_await cond.acquire_guard();
            CHECK(lock.locked());
            CHECK(cond.locked());
        }
        CHECK_FALSE(lock.locked());
        CHECK_FALSE(cond.locked());
        {
            auto guard = co_await lock.acquire_guard();
            CHECK(lock.locked());
            CHECK(cond.locked());
        }
        CHECK_FALSE(lock.locked());
        CHECK_FALSE(cond.locked());
    };
    asyncio::Lock lock;
    asyncio::Condition cond(lock);
    run(check_shared(lock, cond));

    // A waiter on the condition and a plain lock user take turns on the one lock.
    auto body = [&]() -> asyncio::Coro<> {
        std::vector<std::string> log;
        auto waiter = [&]() -> asyncio::Coro<> {
            auto guard = co_await cond.acquire_guard();
            co_await cond.wait();
            log.push_back("woken");
        };
        auto t = asyncio::create_task(waiter());
        co_await yield_once();
        CHECK_FALSE(lock.locked());  // wait() released the shared lock
        {
            auto guard = co_await lock.acquire_guard();
            cond.notify();
            log.push_back("notified");
        }
        co_await t;
        CHECK(log == std::vector<std::string>{"notified", "woken"});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Condition test_timeout_in_block (a cancelled wait inside a guard)",
                 "[locks][cancel]") {
    // CPython cancels the wait with wait_for(cond.wait(), 0.5). Without a clock: cancel it.
    // Either way the lock is held again afterwards, so leaving the block releases it cleanly.
    auto body = []() -> asyncio::Coro<> {
        asyncio::Condition cond;
        {
            auto guard = co_await cond.acquire_guard();
            auto t = asyncio::create_task(cond.wait());
            co_await yield_once();
            CHECK_FALSE(cond.locked());
            t.cancel();
            auto t_cancelled = co_await ends_cancelled(t);
            CHECK(t_cancelled);
            CHECK(cond.locked());
        }
        CHECK_FALSE(cond.locked());
    };
    run(body());
}

// =============================================================================================
// Semaphore and BoundedSemaphore
// =============================================================================================

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_initial_value_zero", "[locks]") {
    asyncio::Semaphore sem(0);
    CHECK(sem.locked());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_semaphore_value (negative is a ValueError)", "[locks]") {
    CHECK_THROWS_AS(asyncio::Semaphore(-1), tulip::ValueError);
    CHECK_THROWS_AS(asyncio::BoundedSemaphore(-1), std::invalid_argument);
    CHECK_THROWS_WITH(asyncio::Semaphore(-1), "Semaphore initial value must be >= 0, got -1");
    asyncio::Semaphore sem;
    CHECK(sem.value() == 1);
    CHECK_FALSE(sem.locked());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_acquire", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Semaphore sem(3);
        std::vector<int> result;
        auto acquired = co_await sem.acquire();
        CHECK(acquired);
        auto acquired2 = co_await sem.acquire();
        CHECK(acquired2);
        CHECK_FALSE(sem.locked());

        auto c = [&](int n) -> asyncio::Coro<bool> {
            co_await sem.acquire();
            result.push_back(n);
            co_return true;
        };
        auto t1 = asyncio::create_task(c(1));
        auto t2 = asyncio::create_task(c(2));
        auto t3 = asyncio::create_task(c(3));
        co_await yield_once();
        CHECK(result == std::vector<int>{1});
        CHECK(sem.locked());
        CHECK(sem.waiter_count() == 2);
        CHECK(sem.value() == 0);

        auto t4 = asyncio::create_task(c(4));
        sem.release();
        sem.release();
        CHECK(sem.value() == 0);  // both slots promised to woken waiters

        co_await yield_once();
        CHECK(sem.value() == 0);
        CHECK(result.size() == 3);
        CHECK(sem.locked());
        CHECK(sem.waiter_count() == 1);

        CHECK(t1.done());
        int done = 0;
        for (auto* t : {&t2, &t3, &t4}) done += t->done() ? 1 : 0;
        CHECK(done == 2);

        sem.release();
        std::vector<asyncio::Task<bool>> race_tasks{t2, t3, t4};
        auto all_finished = co_await finish_within(race_tasks);
        CHECK(all_finished);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_acquire_cancel", "[locks][cancel]") {
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::Semaphore sem;
        co_await sem.acquire();
        auto acquire = asyncio::create_task(sem.acquire());
        loop().call_soon([acquire] { acquire.cancel(); });
        auto acquire_cancelled = co_await ends_cancelled(acquire);
        CHECK(acquire_cancelled);
        CHECK(sem.waiter_count() == 0);
        CHECK(sem.value() == 0);
        sem.release();
        CHECK(sem.value() == 1);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_acquire_cancel_before_awoken", "[locks][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Semaphore sem(0);
        auto t1 = asyncio::create_task(sem.acquire());
        auto t2 = asyncio::create_task(sem.acquire());
        auto t3 = asyncio::create_task(sem.acquire());
        auto t4 = asyncio::create_task(sem.acquire());
        co_await yield_once();

        t1.cancel();
        t2.cancel();
        sem.release();  // skips the two cancelled waiters

        co_await yield_once();
        co_await yield_once();
        CHECK(t3.done());
        CHECK_FALSE(t4.done());

        t3.cancel();  // done already: no effect
        t4.cancel();
        co_await yield_once();
        CHECK(t1.cancelled());
        CHECK(t2.cancelled());
        CHECK(t3.result());
        CHECK(t4.cancelled());
        CHECK(sem.waiter_count() == 0);
        CHECK(sem.value() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_acquire_hang", "[locks][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Semaphore sem(0);
        auto t1 = asyncio::create_task(sem.acquire());
        auto t2 = asyncio::create_task(sem.acquire());
        co_await yield_once();

        t1.cancel();
        sem.release();
        co_await yield_once();
        co_await yield_once();
        CHECK(sem.locked());
        CHECK(t2.done());
        CHECK(t1.cancelled());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_acquire_no_hang (a slot handed to a cancelled task comes back)",
                 "[locks][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Semaphore sem(1);
        asyncio::Task<> t2;
        bool c2_entered = false;
        auto c1 = [&]() -> asyncio::Coro<> {
            {
                auto guard = co_await sem.acquire_guard();
                co_await yield_once();
            }  // the release promises the slot to t2...
            t2.cancel();  // ...which is cancelled before it can take it
        };
        auto c2 = [&]() -> asyncio::Coro<> {
            auto guard = co_await sem.acquire_guard();
            c2_entered = true;
        };
        auto t1 = asyncio::create_task(c1());
        t2 = asyncio::create_task(c2());
        auto t1_finished = co_await finishes(t1);
        CHECK(t1_finished);
        auto t2_cancelled = co_await ends_cancelled(t2);
        CHECK(t2_cancelled);
        CHECK_FALSE(c2_entered);
        CHECK_FALSE(sem.locked());
        CHECK(sem.value() == 1);
        // CPython: wait_for(sem.acquire(), timeout=1.0). The slot is free: it must not wait.
        auto last = asyncio::create_task(sem.acquire());
        auto last_finished = co_await finishes(last);
        CHECK(last_finished);
        if (last_finished) sem.release();
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: BoundedSemaphore test_release_not_acquired (over-release)", "[locks]") {
    asyncio::BoundedSemaphore sem;
    CHECK_THROWS_AS(sem.release(), tulip::ValueError);
    CHECK_THROWS_WITH(sem.release(), "BoundedSemaphore released too many times (its initial value is 1)");
    CHECK(sem.value() == 1);
}

TEST_CASE_METHOD(LoopFixture, "locks: BoundedSemaphore over-release after use, also through Semaphore&",
                 "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::BoundedSemaphore bounded(2);
        asyncio::Semaphore& sem = bounded;
        co_await sem.acquire();
        co_await sem.acquire();
        CHECK(sem.locked());
        sem.release();
        {
            auto guard = co_await sem.acquire_guard();
            CHECK(sem.value() == 0);
        }
        sem.release();
        CHECK(sem.value() == 2);
        CHECK_THROWS_WITH(sem.release(), Catch::Contains("released too many times"));
        CHECK(sem.value() == 2);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_release_no_waiters", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Semaphore sem;
        co_await sem.acquire();
        CHECK(sem.locked());
        sem.release();
        CHECK_FALSE(sem.locked());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_acquire_fifo_order", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Semaphore sem(1);
        std::vector<std::string> result;
        auto c = [&](std::string tag) -> asyncio::Coro<> {
            co_await sem.acquire();
            result.push_back(tag + "_1");
            co_await yield_once();
            sem.release();

            co_await sem.acquire();
            result.push_back(tag + "_2");
            co_await yield_once();
            sem.release();
        };
        std::vector<asyncio::Task<>> tasks;
        for (const char* tag : {"c1", "c2", "c3"}) tasks.push_back(asyncio::create_task(c(tag)));
        auto all_finished = co_await finish_within(tasks);
        CHECK(all_finished);
        CHECK(result == std::vector<std::string>{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_acquire_fifo_order_2", "[locks]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Semaphore sem(1);
        std::vector<int> result;
        auto c1 = [&]() -> asyncio::Coro<bool> {
            co_await sem.acquire();
            result.push_back(1);
            co_return true;
        };
        auto c2 = [&]() -> asyncio::Coro<bool> {
            co_await sem.acquire();
            result.push_back(2);
            sem.release();
            co_await sem.acquire();  // behind c3, which was woken first
            result.push_back(4);
            co_return true;
        };
        auto c3 = [&]() -> asyncio::Coro<bool> {
            co_await sem.acquire();
            result.push_back(3);
            co_return true;
        };
        auto t1 = asyncio::create_task(c1());
        auto t2 = asyncio::create_task(c2());
        auto t3 = asyncio::create_task(c3());
        co_await yield_once();
        sem.release();
        sem.release();
        std::vector<asyncio::Task<bool>> tasks{t1, t2, t3};
        auto all_finished = co_await finish_within(tasks);
        CHECK(all_finished);
        CHECK(result == std::vector<int>{1, 2, 3, 4});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore test_acquire_fifo_order_3", "[locks][cancel]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Semaphore sem(0);
        std::vector<int> result;
        auto c = [&](int n) -> asyncio::Coro<bool> {
            co_await sem.acquire();
            result.push_back(n);
            co_return true;
        };
        auto t1 = asyncio::create_task(c(1));
        auto t2 = asyncio::create_task(c(2));
        auto t3 = asyncio::create_task(c(3));
        co_await yield_once();
        t1.cancel();
        co_await yield_once();
        sem.release();
        sem.release();
        auto t1_cancelled = co_await ends_cancelled(t1);
        CHECK(t1_cancelled);
        std::vector<asyncio::Task<bool>> rest{t2, t3};
        auto rest_finished = co_await finish_within(rest);
        CHECK(rest_finished);
        CHECK(result == std::vector<int>{2, 3});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "locks: Semaphore guard is released on cancellation while holding", "[locks][cancel]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Semaphore sem(2);
        asyncio::Event never;
        auto holder = [&]() -> asyncio::Coro<> {
            auto guard = co_await sem.acquire_guard();
            co_await never.wait();
        };
        auto a = asyncio::create_task(holder());
        auto b = asyncio::create_task(holder());
        auto c = asyncio::create_task(holder());
        co_await yield_once();
        CHECK(sem.value() == 0);
        CHECK(sem.waiter_count() == 1);
        a.cancel();
        auto a_cancelled = co_await ends_cancelled(a);
        CHECK(a_cancelled);
        co_await yield_once();  // c takes a's slot
        CHECK(sem.waiter_count() == 0);
        CHECK(never.waiter_count() == 2);
        b.cancel();
        c.cancel();
        auto b_cancelled = co_await ends_cancelled(b);
        CHECK(b_cancelled);
        auto c_cancelled = co_await ends_cancelled(c);
        CHECK(c_cancelled);
        CHECK(sem.value() == 2);
        CHECK(never.waiter_count() == 0);
    };
    run(body());
}

// =============================================================================================
// Contention with random cancellations (reliability check 19)
// =============================================================================================

namespace {

// What the contenders of one run saw.
struct Tally {
    int holders = 0;
    int max_holders = 0;
    std::uint64_t next_ticket = 0;      // taken just before each acquire
    std::vector<std::uint64_t> grants;  // tickets, in the order acquire returned
    bool all_finished = true;
    asyncio::Event gate;   // holders wait on it; the driver opens it now and then
    int lost_wakeups = 0;  // quiescent moments with a free slot and a waiting task
    int quiescent_checks = 0;
    int completed = 0;  // contenders that did all their rounds
    int cancelled = 0;  // contenders that ended cancelled
};

// Counts a holder for as long as it lives, also when a cancellation unwinds it.
class Holding {
public:
    explicit Holding(Tally& tally) : tally_(tally) {
        tally_.max_holders = std::max(tally_.max_holders, ++tally_.holders);
    }
    Holding(const Holding&) = delete;
    Holding& operator=(const Holding&) = delete;
    ~Holding() { --tally_.holders; }

private:
    Tally& tally_;
};

template <class Primitive>
asyncio::Coro<> contender(Primitive& primitive, Tally& tally, int rounds, int hold_turns) {
    for (int i = 0; i < rounds; ++i) {
        {
            std::uint64_t ticket = tally.next_ticket++;
            auto guard = co_await primitive.acquire_guard();
            tally.grants.push_back(ticket);
            Holding holding(tally);  // destroyed before the guard releases
            // Holding across suspensions: ready again at once, or only when the driver opens the
            // gate (which lets the loop reach quiescent moments while the primitive is held).
            for (int turn = 0; turn < hold_turns; ++turn) {
                if (turn % 2 == 0) {
                    co_await tally.gate.wait();
                } else {
                    co_await yield_once();
                }
            }
        }
        // Stay away for a turn on some rounds, so that releases and arrivals interleave.
        if (i % 2 == 1) co_await yield_once();
    }
}

bool has_free_slot(const asyncio::Lock& lock) { return !lock.locked(); }
bool has_free_slot(const asyncio::Semaphore& sem) { return sem.value() > 0; }

// Starts `tasks` contenders and cancels random ones at random moments until all are done. A
// lost wake-up would leave tasks waiting forever: the number of turns is bounded so that the
// test then fails (all_finished) instead of hanging.
template <class Primitive>
asyncio::Coro<> contend(Primitive& primitive, Tally& tally, std::uint32_t seed, int tasks, int rounds) {
    std::mt19937 rng(seed);
    std::vector<asyncio::Task<>> contenders;
    for (int i = 0; i < tasks; ++i)
        contenders.push_back(asyncio::create_task(contender(primitive, tally, rounds, static_cast<int>(rng() % 4))));
    for (int turn = 0; turn < 100'000 && !all_done(contenders); ++turn) {
        if (tulip::testing::quiescent()) {
            ++tally.quiescent_checks;
            if (has_free_slot(primitive) && primitive.waiter_count() > 0) ++tally.lost_wakeups;
        }
        if (rng() % 10 == 0) contenders[rng() % contenders.size()].cancel();
        if (rng() % 2 == 0) {
            tally.gate.set();
            tally.gate.clear();
        }
        co_await yield_once();
    }
    tally.all_finished = all_done(contenders);
    for (auto& t : contenders) {
        if (t.done()) (t.cancelled() ? tally.cancelled : tally.completed) += 1;
    }
    co_await cancel_and_reap(contenders);
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "locks: contention with random cancellations keeps the invariants (FIFO loop)",
                 "[locks][cancel][races][property]") {
    for (std::uint32_t seed : {1u, 2u, 3u, 42u, 1234u, 99991u}) {
        INFO("seed " << seed);
        {
            asyncio::Lock lock;
            Tally tally;
            run(contend(lock, tally, seed, 12, 6));
            CHECK(tally.all_finished);
            CHECK(tally.lost_wakeups == 0);
            CHECK(tally.max_holders == 1);
            CHECK(std::is_sorted(tally.grants.begin(), tally.grants.end()));  // FIFO
            CHECK(tally.holders == 0);
            CHECK_FALSE(lock.locked());
            CHECK(lock.waiter_count() == 0);
            // The run was a real contest: some contenders finished, some were cancelled.
            CHECK(tally.completed > 0);
            CHECK(tally.cancelled > 0);
        }
        {
            asyncio::Semaphore sem(3);
            Tally tally;
            run(contend(sem, tally, seed, 12, 6));
            CHECK(tally.all_finished);
            CHECK(tally.lost_wakeups == 0);
            CHECK(tally.max_holders <= 3);
            CHECK(std::is_sorted(tally.grants.begin(), tally.grants.end()));  // FIFO
            CHECK(tally.holders == 0);
            CHECK(sem.value() == 3);
            CHECK_FALSE(sem.locked());
            CHECK(sem.waiter_count() == 0);
            CHECK(tally.completed > 0);
            CHECK(tally.cancelled > 0);
        }
        {
            asyncio::BoundedSemaphore sem(2);  // an over-release would raise inside a guard
            Tally tally;
            run(contend(sem, tally, seed, 8, 6));
            CHECK(tally.all_finished);
            CHECK(tally.lost_wakeups == 0);
            CHECK(tally.max_holders <= 2);
            CHECK(sem.value() == 2);
            CHECK(sem.waiter_count() == 0);
        }
    }
}

TEST_CASE_METHOD(LoopFixture, "locks: contention with random cancellations on a shuffled ready queue, 1000 seeds",
                 "[locks][cancel][races][property][shuffle]") {
    int failures = 0;
    Tally totals;  // over all seeds, to show that the runs contend and cancel
    for (std::uint32_t seed = 1; seed <= 1000 && failures < 5; ++seed) {
        asyncio::Lock lock;
        asyncio::Semaphore sem(2);
        Tally lock_tally;
        Tally sem_tally;
        auto scenario = [&]() -> asyncio::Coro<> {
            co_await contend(lock, lock_tally, seed, 6, 4);
            co_await contend(sem, sem_tally, seed + 7919, 6, 4);
        };
        auto problems = tulip::testing::run_on_shuffled_loop(seed, scenario);
        // Under any interleaving: one Lock holder at a time, in arrival order (the lock's queue
        // is FIFO and only one task is woken at a time); the Semaphore never over its value;
        // nothing left waiting or held.
        bool ok = problems.empty() && lock_tally.all_finished && lock_tally.lost_wakeups == 0 &&
                  sem_tally.lost_wakeups == 0 && lock_tally.max_holders == 1 &&
                  std::is_sorted(lock_tally.grants.begin(), lock_tally.grants.end()) && !lock.locked() &&
                  lock.waiter_count() == 0 && sem_tally.all_finished && sem_tally.max_holders <= 2 &&
                  sem.value() == 2 && sem.waiter_count() == 0;
        if (!ok) {
            ++failures;
            for (auto& p : problems) UNSCOPED_INFO(p);
            FAIL_CHECK("invariants broken with shuffle seed " << seed);
        }
        for (const Tally* t : {&lock_tally, &sem_tally}) {
            totals.completed += t->completed;
            totals.cancelled += t->cancelled;
            totals.max_holders = std::max(totals.max_holders, t->max_holders);
            totals.quiescent_checks += t->quiescent_checks;
        }
    }
    CHECK(failures == 0);
    CHECK(totals.completed > 1000);
    CHECK(totals.cancelled > 1000);
    CHECK(totals.max_holders == 2);  // the Semaphore did have two holders at once
    CHECK(totals.quiescent_checks > 1000);
}
