// Queue, PriorityQueue and LifoQueue (after CPython's test_queues, plus the contention
// properties of reliability check 19).
#include "tulip/asyncio/queues.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "contention.hpp"
#include "loop_fixture.hpp"

namespace asyncio = tulip::asyncio;
using tulip::testing::cancel_and_reap;
using tulip::testing::ends_cancelled;
using tulip::testing::finish_within;
using tulip::testing::finishes;
using tulip::testing::LoopFixture;

namespace {

asyncio::SleepAwaiter yield_once() { return asyncio::sleep(0); }

// The typed tests run once per queue kind.
template <class Q>
struct QueueFixture : LoopFixture {};

}  // namespace

// =============================================================================================
// Basics
// =============================================================================================

TEST_CASE_METHOD(LoopFixture, "queues: test_repr (waiting getters and putters are counted)", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        auto getter = asyncio::create_task(q.get());
        co_await yield_once();
        CHECK(q.getter_count() == 1);
        q.put_nowait(0);
        CHECK(q.getter_count() == 0);  // popped by the put that woke it
        auto getter_result = co_await getter;
        CHECK(getter_result == 0);

        asyncio::Queue<int> bounded(1);
        bounded.put_nowait(1);
        auto putter = asyncio::create_task(bounded.put(2));
        co_await yield_once();
        CHECK(bounded.putter_count() == 1);
        CHECK(bounded.get_nowait() == 1);
        co_await putter;
        CHECK(bounded.putter_count() == 0);
        CHECK(bounded.unfinished_tasks() == 2);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_empty", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        CHECK(q.empty());
        co_await q.put(1);
        CHECK_FALSE(q.empty());
        auto item = co_await q.get();
        CHECK(item == 1);
        CHECK(q.empty());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_full", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> unbounded;
        CHECK_FALSE(unbounded.full());
        CHECK(unbounded.maxsize() == 0);
        for (int i = 0; i < 1000; ++i) unbounded.put_nowait(i);
        CHECK_FALSE(unbounded.full());

        asyncio::Queue<int> q(1);
        co_await q.put(1);
        CHECK(q.full());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_order", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        for (int i : {1, 3, 2}) co_await q.put(i);
        std::vector<int> items;
        for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
        CHECK(items == std::vector<int>{1, 3, 2});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_maxsize (backpressure)", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q(2);
        CHECK(q.maxsize() == 2);
        std::vector<int> have_been_put;
        auto putter = [&]() -> asyncio::Coro<bool> {
            for (int i = 0; i < 3; ++i) {
                co_await q.put(i);
                have_been_put.push_back(i);
            }
            co_return true;
        };
        auto t = asyncio::create_task(putter());
        for (int i = 0; i < 2; ++i) co_await yield_once();

        // The putter is blocked after two items.
        CHECK(have_been_put == std::vector<int>{0, 1});
        CHECK(q.putter_count() == 1);
        auto item = co_await q.get();
        CHECK(item == 0);

        // Let it resume and put the last one.
        co_await yield_once();
        CHECK(have_been_put == std::vector<int>{0, 1, 2});
        auto item2 = co_await q.get();
        CHECK(item2 == 1);
        auto item3 = co_await q.get();
        CHECK(item3 == 2);
        CHECK(t.done());
        CHECK(t.result());
    };
    run(body());
}

// =============================================================================================
// get()
// =============================================================================================

TEST_CASE_METHOD(LoopFixture, "queues: test_blocking_get", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        q.put_nowait(1);
        auto item = co_await q.get();
        CHECK(item == 1);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_get_with_putters", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q(1);
        co_await q.put(1);
        auto putter = asyncio::create_task(q.put(2));
        co_await yield_once();
        CHECK(q.putter_count() == 1);
        auto item = co_await q.get();
        CHECK(item == 1);  // wakes the putter
        CHECK(q.putter_count() == 0);
        co_await putter;
        CHECK(q.get_nowait() == 2);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_blocking_get_wait", "[queues]") {
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        asyncio::Event started;
        bool finished = false;
        auto queue_get = [&]() -> asyncio::Coro<int> {
            started.set();
            int res = co_await q.get();
            finished = true;
            co_return res;
        };
        auto t = asyncio::create_task(queue_get());
        co_await started.wait();
        CHECK_FALSE(finished);
        loop().call_soon([&q] { q.put_nowait(1); });
        auto t_result = co_await t;
        CHECK(t_result == 1);
        CHECK(finished);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_nonblocking_get and test_nonblocking_get_exception", "[queues]") {
    asyncio::Queue<int> q;
    q.put_nowait(1);
    CHECK(q.get_nowait() == 1);
    CHECK_THROWS_AS(q.get_nowait(), asyncio::QueueEmpty);
    CHECK_THROWS_WITH(q.get_nowait(), "queue is empty");
}

TEST_CASE_METHOD(LoopFixture, "queues: test_get_cancelled_race", "[queues][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<char> q;
        auto t1 = asyncio::create_task(q.get());
        auto t2 = asyncio::create_task(q.get());
        co_await yield_once();
        t1.cancel();
        co_await yield_once();
        CHECK(t1.done());
        CHECK(q.getter_count() == 1);
        co_await q.put('a');
        co_await yield_once();
        auto t2_finished = co_await finishes(t2);  // a lost wake-up fails here instead of hanging
        REQUIRE(t2_finished);
        CHECK(t2.result() == 'a');
        CHECK(t1.cancelled());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_get_with_waiting_putters", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<char> q(1);
        auto pa = asyncio::create_task(q.put('a'));
        auto pb = asyncio::create_task(q.put('b'));
        auto item = co_await q.get();
        CHECK(item == 'a');
        auto item2 = co_await q.get();
        CHECK(item2 == 'b');
        co_await pa;
        co_await pb;
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_why_are_getters_waiting", "[queues][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q(1);
        const int num_items = 5;
        auto consumer = [&]() -> asyncio::Coro<> {
            for (int i = 0; i < num_items; ++i) co_await q.get();
        };
        auto producer = [&]() -> asyncio::Coro<> {
            for (int i = 0; i < num_items; ++i) co_await q.put(i);
        };
        std::vector<asyncio::Task<>> tasks{asyncio::create_task(producer()), asyncio::create_task(consumer())};
        auto finished = co_await finish_within(tasks);
        CHECK(finished);
        CHECK(q.empty());
        CHECK(q.getter_count() == 0);
        CHECK(q.putter_count() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_cancelled_getters_not_being_held_in_self_getters",
                 "[queues][cancel]") {
    // CPython lets wait_for(queue.get(), 0.1) time out; the timeout is a cancellation.
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q(5);
        auto t = asyncio::create_task(q.get());
        co_await yield_once();
        CHECK(q.getter_count() == 1);
        t.cancel();
        auto t_cancelled = co_await ends_cancelled(t);
        CHECK(t_cancelled);
        CHECK(q.getter_count() == 0);
    };
    run(body());
}

// =============================================================================================
// put()
// =============================================================================================

TEST_CASE_METHOD(LoopFixture, "queues: test_blocking_put", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        co_await q.put(1);  // unbounded: never waits
        auto item = co_await q.get();
        CHECK(item == 1);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_blocking_put_wait", "[queues]") {
    auto body = [&]() -> asyncio::Coro<> {
        asyncio::Queue<int> q(1);
        asyncio::Event started;
        bool finished = false;
        auto queue_put = [&]() -> asyncio::Coro<> {
            started.set();
            co_await q.put(1);
            co_await q.put(2);
            finished = true;
        };
        auto t = asyncio::create_task(queue_put());
        co_await started.wait();
        CHECK_FALSE(finished);  // blocked in its second put
        CHECK(q.putter_count() == 1);
        // CPython frees a slot from a timer 10 ms later; a callback is enough and needs no clock.
        loop().call_soon([&q] { (void)q.get_nowait(); });
        auto t_finished = co_await finishes(t);
        CHECK(t_finished);
        CHECK(finished);
        CHECK(q.get_nowait() == 2);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_nonblocking_put and test_nonblocking_put_exception", "[queues]") {
    asyncio::Queue<int> q;
    q.put_nowait(1);
    CHECK(q.get_nowait() == 1);

    asyncio::Queue<int> bounded(1);
    bounded.put_nowait(1);
    CHECK_THROWS_AS(bounded.put_nowait(2), asyncio::QueueFull);
    CHECK_THROWS_WITH(bounded.put_nowait(2), "queue is full");
    CHECK(bounded.qsize() == 1);
    CHECK(bounded.unfinished_tasks() == 1);
}

TEST_CASE_METHOD(LoopFixture, "queues: put_nowait that raises leaves a move-only item with the caller",
                 "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<std::unique_ptr<int>> q(1);
        q.put_nowait(std::make_unique<int>(1));
        auto item = std::make_unique<int>(2);
        CHECK_THROWS_AS(q.put_nowait(std::move(item)), asyncio::QueueFull);
        REQUIRE(item);  // not moved from
        CHECK(*item == 2);
        auto first = co_await q.get();
        CHECK(*first == 1);
        co_await q.put(std::move(item));
        auto second = q.get_nowait();
        CHECK(*second == 2);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_get_cancel_drop_one_pending_reader", "[queues][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        auto reader = asyncio::create_task(q.get());
        co_await yield_once();
        q.put_nowait(1);  // wakes the reader...
        q.put_nowait(2);
        reader.cancel();  // ...which is cancelled before it can take its item
        if (co_await ends_cancelled(reader)) {
            reader = asyncio::create_task(q.get());  // try again
            auto reader_finished = co_await finishes(reader);
            REQUIRE(reader_finished);
        }
        CHECK(reader.result() == 1);  // 2 would mean 1 was dropped
        CHECK(q.get_nowait() == 2);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_get_cancel_drop_many_pending_readers", "[queues][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        auto reader1 = asyncio::create_task(q.get());
        auto reader2 = asyncio::create_task(q.get());
        auto reader3 = asyncio::create_task(q.get());
        co_await yield_once();
        q.put_nowait(1);
        q.put_nowait(2);
        reader1.cancel();  // woken for an item: passes the wake-up to reader3
        auto reader1_cancelled = co_await ends_cancelled(reader1);
        CHECK(reader1_cancelled);
        std::vector<asyncio::Task<int>> readers{reader2, reader3};
        auto readers_finished = co_await finish_within(readers);
        REQUIRE(readers_finished);
        std::vector<int> got{reader2.result(), reader3.result()};
        std::sort(got.begin(), got.end());
        CHECK(got == std::vector<int>{1, 2});
        CHECK(q.getter_count() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_put_cancel_drop", "[queues][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q(1);
        q.put_nowait(1);
        auto writer = asyncio::create_task(q.put(2));  // has to wait: the queue is full
        co_await yield_once();
        CHECK(q.get_nowait() == 1);  // wakes the writer...
        writer.cancel();             // ...which is cancelled before it puts
        if (co_await ends_cancelled(writer)) {
            writer = asyncio::create_task(q.put(2));  // try again
            auto writer_finished = co_await finishes(writer);
            REQUIRE(writer_finished);
        }
        CHECK(q.get_nowait() == 2);
        CHECK(q.qsize() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_put_cancelled (a waiting get is served by a task's put)",
                 "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        auto queue_put = [&]() -> asyncio::Coro<bool> {
            co_await q.put(1);
            co_return true;
        };
        auto t = asyncio::create_task(queue_put());
        auto item = co_await q.get();
        CHECK(item == 1);
        CHECK(t.done());
        CHECK(t.result());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_put_cancelled_race", "[queues][cancel][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<char> q(1);
        auto put_a = asyncio::create_task(q.put('a'));
        auto put_b = asyncio::create_task(q.put('b'));
        auto put_c = asyncio::create_task(q.put('X'));
        co_await yield_once();
        CHECK(put_a.done());
        CHECK_FALSE(put_b.done());

        put_c.cancel();
        co_await yield_once();
        CHECK(put_c.done());
        CHECK(q.get_nowait() == 'a');
        co_await yield_once();
        CHECK(q.get_nowait() == 'b');
        auto put_b_finished = co_await finishes(put_b);
        CHECK(put_b_finished);
        CHECK(put_c.cancelled());
        CHECK(q.empty());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_put_with_waiting_getters", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<char> q;
        auto t = asyncio::create_task(q.get());
        co_await yield_once();
        co_await q.put('a');
        auto t_result = co_await t;
        CHECK(t_result == 'a');
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_why_are_putters_waiting", "[queues][races]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q(2);
        auto putter = [&](int item) -> asyncio::Coro<> { co_await q.put(item); };
        auto getter = [&]() -> asyncio::Coro<> {
            co_await yield_once();
            std::size_t num = q.qsize();
            for (std::size_t i = 0; i < num; ++i) (void)q.get_nowait();
        };
        std::vector<asyncio::Task<>> tasks{asyncio::create_task(getter())};
        for (int i = 0; i < 4; ++i) tasks.push_back(asyncio::create_task(putter(i)));
        // Both waiting putters must be woken by the two get_nowait() calls.
        auto finished = co_await finish_within(tasks);
        CHECK(finished);
        CHECK(q.qsize() == 2);
        CHECK(q.putter_count() == 0);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_cancelled_puts_not_being_held_in_self_putters", "[queues][cancel]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q(1);
        q.put_nowait(1);
        auto put_task = asyncio::create_task(q.put(1));
        co_await yield_once();
        CHECK(q.putter_count() == 1);
        put_task.cancel();
        auto put_task_cancelled = co_await ends_cancelled(put_task);
        CHECK(put_task_cancelled);
        CHECK(q.putter_count() == 0);
        CHECK(q.qsize() == 1);
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: test_cancelled_put_silence_value_error_exception", "[queues][cancel]") {
    // The woken putter has left the list already (popped by get_nowait) when its cancellation
    // lands: leaving it again must be harmless, and the task ends with CancelledError.
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q(1);
        q.put_nowait(1);
        auto put_task = asyncio::create_task(q.put(1));
        co_await yield_once();
        (void)q.get_nowait();
        put_task.cancel();
        auto put_task_cancelled = co_await ends_cancelled(put_task);
        CHECK(put_task_cancelled);
        CHECK(q.putter_count() == 0);
        CHECK(q.empty());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: a cancelled put adds nothing and a cancelled get takes nothing",
                 "[queues][cancel]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q(1);
        q.put_nowait(7);
        auto put = asyncio::create_task(q.put(8));
        co_await yield_once();
        put.cancel();
        auto put_cancelled = co_await ends_cancelled(put);
        CHECK(put_cancelled);
        CHECK(q.qsize() == 1);
        CHECK(q.unfinished_tasks() == 1);
        CHECK(q.get_nowait() == 7);
        q.task_done();

        auto get = asyncio::create_task(q.get());
        co_await yield_once();
        get.cancel();
        auto get_cancelled = co_await ends_cancelled(get);
        CHECK(get_cancelled);
        q.put_nowait(9);  // nobody is waiting: it stays
        CHECK(q.qsize() == 1);
        CHECK(q.getter_count() == 0);
        CHECK(q.get_nowait() == 9);
        q.task_done();
    };
    run(body());
}

// =============================================================================================
// PriorityQueue and LifoQueue
// =============================================================================================

TEST_CASE_METHOD(LoopFixture, "queues: LifoQueue test_order", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::LifoQueue<int> q;
        for (int i : {1, 3, 2}) co_await q.put(i);
        std::vector<int> items;
        for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
        CHECK(items == std::vector<int>{2, 3, 1});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: PriorityQueue test_order (smallest first)", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::PriorityQueue<int> q;
        for (int i : {1, 3, 2}) co_await q.put(i);
        std::vector<int> items;
        for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
        CHECK(items == std::vector<int>{1, 2, 3});
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: PriorityQueue of (priority, data) pairs and a custom order", "[queues]") {
    asyncio::PriorityQueue<std::pair<int, std::string>> jobs;
    for (auto& job : std::vector<std::pair<int, std::string>>{{5, "low"}, {1, "urgent"}, {3, "normal"}, {1, "also urgent"}})
        jobs.put_nowait(job);
    std::vector<std::string> order;
    while (!jobs.empty()) order.push_back(jobs.get_nowait().second);
    CHECK(order == std::vector<std::string>{"also urgent", "urgent", "normal", "low"});

    std::mt19937 rng(7);
    asyncio::PriorityQueue<int, std::greater<int>> largest_first;
    std::vector<int> values(200);
    std::iota(values.begin(), values.end(), 0);
    std::shuffle(values.begin(), values.end(), rng);
    for (int v : values) largest_first.put_nowait(v);
    std::vector<int> out;
    while (!largest_first.empty()) out.push_back(largest_first.get_nowait());
    CHECK(std::is_sorted(out.rbegin(), out.rend()));
    CHECK(out.size() == 200);
}

TEST_CASE_METHOD(LoopFixture, "queues: bounded PriorityQueue and LifoQueue apply backpressure", "[queues]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::PriorityQueue<int> pq(2);
        asyncio::LifoQueue<int> lq(2);
        auto fill = [](asyncio::Queue<int>& q) -> asyncio::Coro<> {
            for (int i : {4, 1, 3}) co_await q.put(i);
        };
        auto tp = asyncio::create_task(fill(pq));
        auto tl = asyncio::create_task(fill(lq));
        co_await yield_once();
        CHECK(pq.full());
        CHECK(lq.full());
        CHECK(pq.putter_count() == 1);
        auto item = co_await pq.get();
        CHECK(item == 1);
        auto item2 = co_await lq.get();
        CHECK(item2 == 1);
        co_await tp;
        co_await tl;
        CHECK(pq.get_nowait() == 3);
        CHECK(pq.get_nowait() == 4);
        CHECK(lq.get_nowait() == 3);
        CHECK(lq.get_nowait() == 4);
    };
    run(body());
}

// =============================================================================================
// task_done() and join(), for each queue kind
// =============================================================================================

TEMPLATE_TEST_CASE_METHOD(QueueFixture, "queues: test_task_done_underflow", "[queues]", asyncio::Queue<int>,
                          asyncio::LifoQueue<int>, asyncio::PriorityQueue<int>) {
    TestType q;
    CHECK_THROWS_AS(q.task_done(), tulip::ValueError);
    CHECK_THROWS_WITH(q.task_done(), "task_done() called too many times");
}

TEMPLATE_TEST_CASE_METHOD(QueueFixture, "queues: test_task_done", "[queues]", asyncio::Queue<int>,
                          asyncio::LifoQueue<int>, asyncio::PriorityQueue<int>) {
    auto body = []() -> asyncio::Coro<> {
        TestType q;
        for (int i = 0; i < 100; ++i) q.put_nowait(i);
        int accumulator = 0;
        bool running = true;
        auto worker = [&]() -> asyncio::Coro<> {
            while (running) {
                int item = co_await q.get();
                accumulator += item;
                q.task_done();
            }
        };
        std::vector<asyncio::Task<>> workers{asyncio::create_task(worker()), asyncio::create_task(worker())};
        co_await q.join();
        CHECK(accumulator == 99 * 100 / 2);
        CHECK(q.unfinished_tasks() == 0);

        running = false;
        for (std::size_t i = 0; i < workers.size(); ++i) q.put_nowait(0);
        auto finished = co_await finish_within(workers);
        CHECK(finished);
    };
    this->run(body());
}

TEMPLATE_TEST_CASE_METHOD(QueueFixture, "queues: test_join_empty_queue", "[queues]", asyncio::Queue<int>,
                          asyncio::LifoQueue<int>, asyncio::PriorityQueue<int>) {
    auto body = []() -> asyncio::Coro<> {
        TestType q;
        co_await q.join();
        co_await q.join();
    };
    this->run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: join() cancelled, then joined again", "[queues][cancel]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> q;
        q.put_nowait(1);
        auto joiner = asyncio::create_task(q.join());
        co_await yield_once();
        CHECK_FALSE(joiner.done());
        joiner.cancel();
        auto joiner_cancelled = co_await ends_cancelled(joiner);
        CHECK(joiner_cancelled);
        CHECK(q.unfinished_tasks() == 1);

        auto again = asyncio::create_task(q.join());
        co_await yield_once();
        (void)q.get_nowait();
        q.task_done();
        co_await again;
        CHECK(q.unfinished_tasks() == 0);
    };
    run(body());
}

// =============================================================================================
// shutdown() (Python 3.13), for each queue kind
// =============================================================================================

TEMPLATE_TEST_CASE_METHOD(QueueFixture, "queues: test_shutdown_empty", "[queues][shutdown]",
                          asyncio::Queue<std::string>, asyncio::LifoQueue<std::string>,
                          asyncio::PriorityQueue<std::string>) {
    auto body = []() -> asyncio::Coro<> {
        TestType q;
        auto get_task = asyncio::create_task(q.get());
        co_await yield_once();  // the get is waiting before the shutdown

        q.shutdown();
        CHECK(q.qsize() == 0);
        co_await q.join();
        co_await yield_once();
        CHECK(get_task.done());
        CHECK_THROWS_AS(co_await get_task, asyncio::QueueShutDown);

        CHECK_THROWS_AS(co_await q.put("data"), asyncio::QueueShutDown);
        CHECK_THROWS_AS(q.put_nowait("data"), asyncio::QueueShutDown);
        CHECK_THROWS_AS(co_await q.get(), asyncio::QueueShutDown);
        CHECK_THROWS_WITH(q.get_nowait(), "queue is shut down");
        CHECK(q.getter_count() == 0);
    };
    this->run(body());
}

TEMPLATE_TEST_CASE_METHOD(QueueFixture, "queues: test_shutdown_nonempty", "[queues][shutdown]",
                          asyncio::Queue<std::string>, asyncio::LifoQueue<std::string>,
                          asyncio::PriorityQueue<std::string>) {
    auto body = []() -> asyncio::Coro<> {
        TestType q(1);
        q.put_nowait("data");
        auto join_task = asyncio::create_task(q.join());
        auto put_task = asyncio::create_task(q.put("data2"));
        co_await yield_once();
        CHECK_FALSE(put_task.done());

        q.shutdown();
        CHECK(q.qsize() == 1);
        co_await yield_once();
        CHECK(put_task.done());
        CHECK_THROWS_AS(co_await put_task, asyncio::QueueShutDown);
        CHECK(q.putter_count() == 0);

        // Items already in the queue can still be taken.
        auto item = co_await q.get();
        CHECK(item == "data");
        co_await yield_once();
        CHECK_FALSE(join_task.done());

        CHECK_THROWS_AS(co_await q.put("data"), asyncio::QueueShutDown);
        CHECK_THROWS_AS(q.put_nowait("data"), asyncio::QueueShutDown);
        CHECK_THROWS_AS(co_await q.get(), asyncio::QueueShutDown);
        CHECK_THROWS_AS(q.get_nowait(), asyncio::QueueShutDown);

        q.task_done();
        co_await yield_once();
        CHECK(join_task.done());
        co_await join_task;
        CHECK_THROWS_AS(q.task_done(), tulip::ValueError);
    };
    this->run(body());
}

TEMPLATE_TEST_CASE_METHOD(QueueFixture, "queues: test_shutdown_immediate", "[queues][shutdown]",
                          asyncio::Queue<std::string>, asyncio::LifoQueue<std::string>,
                          asyncio::PriorityQueue<std::string>) {
    auto body = []() -> asyncio::Coro<> {
        TestType q;
        q.put_nowait("data");
        auto join_task = asyncio::create_task(q.join());

        q.shutdown(/*immediate=*/true);  // drops the item and marks it done
        CHECK(q.qsize() == 0);
        co_await yield_once();
        CHECK(join_task.done());
        co_await join_task;

        CHECK_THROWS_AS(co_await q.put("data"), asyncio::QueueShutDown);
        CHECK_THROWS_AS(q.put_nowait("data"), asyncio::QueueShutDown);
        CHECK_THROWS_AS(co_await q.get(), asyncio::QueueShutDown);
        CHECK_THROWS_AS(q.get_nowait(), asyncio::QueueShutDown);
        CHECK_THROWS_AS(q.task_done(), tulip::ValueError);
    };
    this->run(body());
}

TEMPLATE_TEST_CASE_METHOD(QueueFixture, "queues: test_shutdown_immediate_with_unfinished", "[queues][shutdown]",
                          asyncio::Queue<std::string>, asyncio::LifoQueue<std::string>,
                          asyncio::PriorityQueue<std::string>) {
    auto body = []() -> asyncio::Coro<> {
        TestType q;
        q.put_nowait("data");
        q.put_nowait("data");
        auto join_task = asyncio::create_task(q.join());
        auto item = co_await q.get();
        CHECK(item == "data");

        q.shutdown(/*immediate=*/true);  // unfinished tasks: 2 -> 1
        CHECK(q.qsize() == 0);
        co_await yield_once();
        CHECK_FALSE(join_task.done());

        CHECK_THROWS_AS(co_await q.put("data"), asyncio::QueueShutDown);
        CHECK_THROWS_AS(q.put_nowait("data"), asyncio::QueueShutDown);
        CHECK_THROWS_AS(co_await q.get(), asyncio::QueueShutDown);
        CHECK_THROWS_AS(q.get_nowait(), asyncio::QueueShutDown);

        q.task_done();  // the one taken before the shutdown
        CHECK_THROWS_AS(q.task_done(), tulip::ValueError);
        co_await yield_once();
        CHECK(join_task.done());
        co_await join_task;
    };
    this->run(body());
}

TEST_CASE_METHOD(LoopFixture, "queues: shutdown wakes every waiting getter and putter", "[queues][shutdown]") {
    auto body = []() -> asyncio::Coro<> {
        asyncio::Queue<int> empty;
        asyncio::Queue<int> full(1);
        full.put_nowait(0);
        std::vector<asyncio::Task<int>> getters;
        std::vector<asyncio::Task<>> putters;
        for (int i = 0; i < 3; ++i) getters.push_back(asyncio::create_task(empty.get()));
        for (int i = 0; i < 3; ++i) putters.push_back(asyncio::create_task(full.put(i)));
        co_await yield_once();
        CHECK(empty.getter_count() == 3);
        CHECK(full.putter_count() == 3);
        empty.shutdown();
        full.shutdown();
        CHECK(empty.getter_count() == 0);
        CHECK(full.putter_count() == 0);
        for (auto& t : getters) CHECK_THROWS_AS(co_await t, asyncio::QueueShutDown);
        for (auto& t : putters) CHECK_THROWS_AS(co_await t, asyncio::QueueShutDown);
        CHECK(full.get_nowait() == 0);
    };
    run(body());
}

// =============================================================================================
// Producers and consumers with random cancellations (reliability check 19)
// =============================================================================================

namespace {

// What went through the queue in one run, in the order it happened.
struct Flow {
    std::vector<int> put_log;  // items whose put() returned
    std::vector<int> got_log;  // items that get() returned, then what was left in the queue
    bool drained = true;       // consumers emptied the queue without help
    int cancelled_producers = 0;
    int cancelled_consumers = 0;
    int quiescent_checks = 0;
    int lost_wakeups = 0;  // quiescent moments with a waiting task and what it waits for
};

// At a quiescent moment (see tulip::testing::quiescent) no getter may wait while an item is
// there, and no putter while a slot is free.
void check_wakeups(const asyncio::Queue<int>& q, Flow& flow) {
    if (!tulip::testing::quiescent()) return;
    ++flow.quiescent_checks;
    if ((q.getter_count() > 0 && !q.empty()) || (q.putter_count() > 0 && !q.full())) ++flow.lost_wakeups;
}

asyncio::Coro<> producer(asyncio::Queue<int>& q, Flow& flow, int id, int count) {
    for (int i = 0; i < count; ++i) {
        int item = id * 1000 + i;
        co_await q.put(item);
        flow.put_log.push_back(item);  // no suspension between the put and this record
        if (i % 3 == 2) co_await yield_once();
    }
}

asyncio::Coro<> consumer(asyncio::Queue<int>& q, Flow& flow, int hold_turns) {
    for (;;) {
        int item = co_await q.get();
        flow.got_log.push_back(item);
        q.task_done();
        for (int turn = 0; turn < hold_turns; ++turn) co_await yield_once();
    }
}

// Producers and consumers share q while random tasks of either kind are cancelled. Cancelled
// consumers are replaced so that the producers can always finish; then the consumers drain the
// queue and are cancelled. A lost wake-up shows as a queue that is not drained.
asyncio::Coro<> flow_with_cancellations(asyncio::Queue<int>& q, Flow& flow, std::uint32_t seed, int producers,
                                        int items_each, int consumers) {
    std::mt19937 rng(seed);
    std::vector<asyncio::Task<>> prod;
    std::vector<asyncio::Task<>> cons;
    auto live_consumers = [&] {
        return std::count_if(cons.begin(), cons.end(), [](const auto& t) { return !t.done(); });
    };
    for (int p = 0; p < producers; ++p) prod.push_back(asyncio::create_task(producer(q, flow, p + 1, items_each)));
    for (int c = 0; c < consumers; ++c)
        cons.push_back(asyncio::create_task(consumer(q, flow, static_cast<int>(rng() % 3))));

    for (int turn = 0; turn < 100'000 && !tulip::testing::all_done(prod); ++turn) {
        check_wakeups(q, flow);
        if (rng() % 6 == 0) {
            std::size_t victim = rng() % (prod.size() + cons.size());
            if (victim < prod.size()) {
                prod[victim].cancel();
            } else {
                cons[victim - prod.size()].cancel();
            }
        }
        if (live_consumers() == 0) cons.push_back(asyncio::create_task(consumer(q, flow, static_cast<int>(rng() % 3))));
        co_await yield_once();
    }
    for (int turn = 0; turn < 10'000 && !q.empty(); ++turn) {
        if (live_consumers() == 0) cons.push_back(asyncio::create_task(consumer(q, flow, 0)));
        co_await yield_once();
    }
    flow.drained = tulip::testing::all_done(prod) && q.empty();
    for (auto& t : prod) flow.cancelled_producers += t.cancelled() ? 1 : 0;
    for (auto& t : cons) flow.cancelled_consumers += t.cancelled() ? 1 : 0;
    co_await cancel_and_reap(prod);
    co_await cancel_and_reap(cons);
    while (!q.empty()) {
        flow.got_log.push_back(q.get_nowait());
        q.task_done();
    }
}

asyncio::Coro<> put_one(asyncio::Queue<int>& q, Flow& flow, int item) {
    co_await q.put(item);
    flow.put_log.push_back(item);
}

asyncio::Coro<> get_one(asyncio::Queue<int>& q, Flow& flow) {
    int item = co_await q.get();
    flow.got_log.push_back(item);
    q.task_done();
}

template <class T>
std::size_t count_live(const std::vector<asyncio::Task<T>>& tasks) {
    return static_cast<std::size_t>(std::count_if(tasks.begin(), tasks.end(), [](const auto& t) { return !t.done(); }));
}

// Every put() and get() is a task of its own, arriving in random order, and random ones are
// cancelled. Unlike looping consumers, a one-shot task cannot make up for a lost wake-up with
// its next call: the item (or free slot) it was woken for stays unclaimed while another task
// waits for it, and the final phase cannot finish.
asyncio::Coro<> one_shot_flow(asyncio::Queue<int>& q, Flow& flow, std::uint32_t seed, int items) {
    std::mt19937 rng(seed);
    std::vector<asyncio::Task<>> putters;
    std::vector<asyncio::Task<>> getters;
    int next_item = 0;
    auto cancel_one = [&] {
        std::vector<asyncio::Task<>*> live;
        for (auto* group : {&putters, &getters})
            for (auto& t : *group)
                if (!t.done()) live.push_back(&t);
        if (live.empty()) return;
        asyncio::Task<>* victim = live[rng() % live.size()];
        bool is_putter = victim >= putters.data() && victim < putters.data() + putters.size();
        (is_putter ? flow.cancelled_producers : flow.cancelled_consumers) += victim->cancel() ? 1 : 0;
    };
    while (next_item < items) {
        check_wakeups(q, flow);
        for (int action = 1 + static_cast<int>(rng() % 3); action > 0 && next_item < items; --action) {
            switch (rng() % 7) {
                case 0: case 1: case 2:
                    putters.push_back(asyncio::create_task(put_one(q, flow, next_item++)));
                    break;
                case 3: case 4: case 5:
                    // A few getters may wait for items that are not there yet.
                    if (count_live(getters) < count_live(putters) + q.qsize() + 2)
                        getters.push_back(asyncio::create_task(get_one(q, flow)));
                    break;
                default:
                    cancel_one();
                    break;
            }
        }
        co_await yield_once();
    }
    // No more cancellations: at least one getter for each item that is or will be in the queue,
    // then every item must be taken and every putter done, by themselves.
    bool settled = false;
    for (int turn = 0; turn < 10'000 && !settled; ++turn) {
        std::size_t live_getters = count_live(getters);
        std::size_t owed = count_live(putters) + q.qsize();
        for (; live_getters < owed; ++live_getters) getters.push_back(asyncio::create_task(get_one(q, flow)));
        settled = tulip::testing::all_done(putters) && q.empty();
        check_wakeups(q, flow);
        if (!settled) co_await yield_once();
    }
    flow.drained = settled;
    co_await cancel_and_reap(putters);
    co_await cancel_and_reap(getters);
    while (!q.empty()) {
        flow.got_log.push_back(q.get_nowait());
        q.task_done();
    }
}

bool same_items(std::vector<int> a, std::vector<int> b) {
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    return a == b && std::adjacent_find(a.begin(), a.end()) == a.end();
}

// Everything put came out exactly once (in the same order for a FIFO queue), nothing waits.
bool flow_ok(const asyncio::Queue<int>& q, const Flow& flow, bool fifo) {
    bool items_ok = fifo ? flow.got_log == flow.put_log : same_items(flow.got_log, flow.put_log);
    return items_ok && std::adjacent_find(flow.put_log.begin(), flow.put_log.end()) == flow.put_log.end() &&
           flow.drained && flow.lost_wakeups == 0 && q.empty() && q.getter_count() == 0 && q.putter_count() == 0 &&
           q.unfinished_tasks() == 0;
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "queues: producers and consumers with random cancellations lose nothing (FIFO loop)",
                 "[queues][cancel][races][property]") {
    for (std::uint32_t seed : {1u, 2u, 3u, 42u, 1234u, 99991u}) {
        INFO("seed " << seed);
        {
            asyncio::Queue<int> q(3);
            Flow flow;
            run(flow_with_cancellations(q, flow, seed, 3, 20, 3));
            CHECK(flow.got_log == flow.put_log);  // FIFO: same items, same order
            CHECK(flow_ok(q, flow, true));
            CHECK_FALSE(flow.put_log.empty());
            CHECK(flow.cancelled_producers + flow.cancelled_consumers > 0);
        }
        {
            asyncio::LifoQueue<int> q(2);
            Flow flow;
            run(flow_with_cancellations(q, flow, seed, 3, 20, 2));
            CHECK(flow_ok(q, flow, false));
        }
        {
            asyncio::PriorityQueue<int> q(4);
            Flow flow;
            run(flow_with_cancellations(q, flow, seed, 3, 20, 2));
            CHECK(flow_ok(q, flow, false));
        }
        for (std::size_t maxsize : {0u, 1u, 3u}) {
            INFO("one-shot getters and putters, maxsize " << maxsize);
            asyncio::Queue<int> q(maxsize);
            Flow flow;
            run(one_shot_flow(q, flow, seed, 60));
            CHECK(flow_ok(q, flow, true));
            CHECK(flow.put_log.size() > 20);
            CHECK(flow.cancelled_producers > 0);
            CHECK(flow.cancelled_consumers > 0);
            CHECK(flow.quiescent_checks > 10);
        }
    }
}

TEST_CASE_METHOD(LoopFixture, "queues: producers and consumers on a shuffled ready queue, 1000 seeds",
                 "[queues][cancel][races][property][shuffle]") {
    int failures = 0;
    Flow totals;  // over all seeds, to show that the runs carry items and cancel tasks
    std::size_t items = 0;
    for (std::uint32_t seed = 1; seed <= 1000 && failures < 5; ++seed) {
        asyncio::Queue<int> fifo(2);
        asyncio::PriorityQueue<int> prio(2);
        asyncio::Queue<int> one_shot(1);
        Flow fifo_flow;
        Flow prio_flow;
        Flow one_shot_flow_;
        auto scenario = [&]() -> asyncio::Coro<> {
            co_await flow_with_cancellations(fifo, fifo_flow, seed, 2, 10, 2);
            co_await flow_with_cancellations(prio, prio_flow, seed + 7919, 2, 10, 2);
            co_await one_shot_flow(one_shot, one_shot_flow_, seed + 15887, 12);
        };
        auto problems = tulip::testing::run_on_shuffled_loop(seed, scenario);
        if (!problems.empty() || !flow_ok(fifo, fifo_flow, true) || !flow_ok(prio, prio_flow, false) ||
            !flow_ok(one_shot, one_shot_flow_, true)) {
            ++failures;
            for (auto& p : problems) UNSCOPED_INFO(p);
            FAIL_CHECK("items lost, duplicated or reordered with shuffle seed " << seed);
        }
        for (const Flow* f : {&fifo_flow, &prio_flow, &one_shot_flow_}) {
            items += f->put_log.size();
            totals.cancelled_producers += f->cancelled_producers;
            totals.cancelled_consumers += f->cancelled_consumers;
            totals.quiescent_checks += f->quiescent_checks;
        }
    }
    CHECK(failures == 0);
    CHECK(items > 10'000);
    CHECK(totals.cancelled_producers > 100);
    CHECK(totals.cancelled_consumers > 100);
    CHECK(totals.quiescent_checks > 1000);
}
