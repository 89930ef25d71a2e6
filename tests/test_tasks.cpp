// Coro<T>, Task<T>, create_task, sleep and cancellation (after CPython's test_tasks).
#include "tulip/asyncio/tasks.hpp"

#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "loop_fixture.hpp"

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;
using tulip::testing::LoopFixture;

namespace {

asyncio::Coro<int> add(int a, int b) { co_return a + b; }

asyncio::Coro<int> add_after_yield(int a, int b) {
    co_await asyncio::sleep(0);
    co_return a + b;
}

asyncio::Coro<> fail(std::string what) {
    co_await asyncio::sleep(0);
    throw std::runtime_error(what);
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "coro: awaited inline, result and exception", "[tasks]") {
    auto body = []() -> asyncio::Coro<int> {
        int x = co_await add(1, 2);
        int y = co_await add_after_yield(3, 4);
        try {
            co_await fail("oops");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "oops");
            x += 100;
        }
        co_return x + y;
    };
    CHECK(run(body()) == 110);
}

TEST_CASE_METHOD(LoopFixture, "coro: a million synchronously completing awaits use constant stack",
                 "[tasks][stack]") {
    auto body = []() -> asyncio::Coro<long> {
        long sum = 0;
        for (int i = 0; i < 1'000'000; ++i) sum += co_await add(i, 1) - i;
        co_return sum;
    };
    CHECK(run(body()) == 1'000'000);
}

TEST_CASE_METHOD(LoopFixture, "coro: move-only results", "[tasks]") {
    auto make = []() -> asyncio::Coro<std::unique_ptr<int>> { co_return std::make_unique<int>(9); };
    auto body = [&]() -> asyncio::Coro<int> {
        auto p = co_await make();
        auto t = asyncio::create_task(make());
        auto q = co_await t;
        co_return *p + *q;
    };
    CHECK(run(body()) == 18);
}

TEST_CASE_METHOD(LoopFixture, "task: runs on the loop, not at creation", "[tasks]") {
    bool ran = false;
    auto work = [&]() -> asyncio::Coro<int> {
        ran = true;
        co_return 3;
    };
    auto t = loop().create_task(work(), "worker");
    CHECK_FALSE(ran);
    CHECK(t.get_name() == "worker");
    CHECK(loop().run_until_complete(asyncio::Future<int>(t)) == 3);
    CHECK(ran);
    CHECK(t.done());
    CHECK(t.result() == 3);
}

TEST_CASE_METHOD(LoopFixture, "task: default names are Task-N", "[tasks]") {
    auto t = loop().create_task(add(1, 1));
    CHECK(t.get_name().rfind("Task-", 0) == 0);
    run([](asyncio::Task<int> t) -> asyncio::Coro<> { co_await t; }(t));
}

namespace {
// The number in "Task-<n>".
std::uint64_t task_number(const std::string& name) {
    REQUIRE(name.rfind("Task-", 0) == 0);
    return std::stoull(name.substr(5));
}
}  // namespace

TEST_CASE_METHOD(LoopFixture, "task: default numbers follow creation order, not first use", "[tasks]") {
    // Names are formatted on demand; the numbers must still be those of creation order, and a
    // task created with a name takes no number (Python's counter is only called for None).
    auto a = loop().create_task(add(1, 1));
    auto named = loop().create_task(add(1, 1), "named");
    auto b = loop().create_task(add(1, 1));
    auto c = loop().create_task(add(1, 1));
    std::uint64_t nc = task_number(c.get_name());  // asked first
    std::uint64_t na = task_number(a.get_name());
    std::uint64_t nb = task_number(b.get_name());
    CHECK(nb == na + 1);
    CHECK(nc == na + 2);
    CHECK(named.get_name() == "named");
    CHECK(&a.get_name() == &a.get_name());  // formatted once

    b.set_name("renamed");
    CHECK(b.get_name() == "renamed");
    c.set_name("");
    CHECK(c.get_name().empty());  // Python allows an empty name and keeps it

    std::vector<std::string> names;
    for (auto& t : asyncio::all_tasks(loop())) names.push_back(t.get_name());
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"", "Task-" + std::to_string(na), "named", "renamed"});

    run([](std::vector<asyncio::Task<int>> ts) -> asyncio::Coro<> {
        for (auto& t : ts) co_await t;
        // Renaming through TaskRef, as Python's current_task().set_name().
        asyncio::current_task().set_name("main");
        CHECK(asyncio::current_task().get_name() == "main");
    }({a, named, b, c}));
    CHECK(a.get_name() == "Task-" + std::to_string(na));  // still readable once done
}

TEST_CASE_METHOD(LoopFixture, "task: the pending-task report names an unnamed task by its number",
                 "[tasks]") {
    auto f = loop().create_future<int>();
    auto waiter = [](asyncio::Future<int> f) -> asyncio::Coro<int> { co_return co_await f; };
    std::uint64_t n = 0;
    {
        auto t = loop().create_task(waiter(f));
        auto probe = loop().create_task(add(0, 0));  // the next number, read without touching t
        n = task_number(probe.get_name()) - 1;
        run([](asyncio::Task<int> p) -> asyncio::Coro<> { co_await p; }(probe));
        CHECK(t.state()->describe() == "Task 'Task-" + std::to_string(n) + "'");
    }
    loop().close();
    auto calls = take_handler_calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].message == "Task was destroyed but it is pending!");
    CHECK(calls[0].future == "Task 'Task-" + std::to_string(n) + "'");
}

TEST_CASE_METHOD(LoopFixture, "task: exception propagates to the awaiter", "[tasks]") {
    auto body = []() -> asyncio::Coro<> {
        auto t = asyncio::create_task(fail("inner"));
        CHECK_THROWS_WITH(co_await t, "inner");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "task: cancel before start never runs the coroutine", "[tasks]") {
    bool ran = false;
    auto work = [&]() -> asyncio::Coro<> {
        ran = true;
        co_return;
    };
    auto t = loop().create_task(work());
    CHECK(t.cancel("early"));
    auto body = [](asyncio::Task<> t) -> asyncio::Coro<bool> {
        try {
            co_await t;
        } catch (const asyncio::CancelledError& e) {
            CHECK(e.message() == "early");
            co_return true;
        }
        co_return false;
    };
    CHECK(run(body(t)));
    CHECK_FALSE(ran);
    CHECK(t.cancelled());
}

TEST_CASE_METHOD(LoopFixture, "task: cancel during sleep raises CancelledError inside", "[tasks][cancel]") {
    bool cleaned_up = false;
    auto sleeper = [&]() -> asyncio::Coro<> {
        try {
            co_await asyncio::sleep(3600s);
        } catch (const asyncio::CancelledError&) {
            cleaned_up = true;
            throw;
        }
    };
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(sleeper());
        co_await asyncio::sleep(0);
        CHECK(t.cancel("enough"));
        CHECK_FALSE(t.done());
        CHECK_THROWS_AS(co_await t, asyncio::CancelledError);
        CHECK(t.cancelled());
    };
    run(body());
    CHECK(cleaned_up);
    CHECK(loop().stats().timers == 0);
}

TEST_CASE_METHOD(LoopFixture, "task: cancel during sleep(0) is delivered at resumption", "[tasks][cancel]") {
    int steps = 0;
    auto spinner = [&]() -> asyncio::Coro<> {
        for (;;) {
            ++steps;
            co_await asyncio::sleep(0);
        }
    };
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(spinner());
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
        t.cancel();
        CHECK_THROWS_AS(co_await t, asyncio::CancelledError);
    };
    run(body());
    CHECK(steps >= 1);
}

TEST_CASE_METHOD(LoopFixture, "task: cancel() while the task runs cancels the wait it suspends on next",
                 "[tasks][cancel]") {
    // Python's Task.__step: the next future the task awaits is cancelled at once, with the
    // message, rather than when it would have completed.
    asyncio::Future<int> never(loop());
    auto body = [&]() -> asyncio::Coro<std::string> {
        asyncio::current_task().cancel("stop now");
        try {
            co_await never;
        } catch (const asyncio::CancelledError& e) {
            co_return "cancelled: " + e.message();
        }
        co_return "not cancelled";
    };
    CHECK(run(body()) == "cancelled: stop now");
    CHECK(never.cancelled());
}

TEST_CASE_METHOD(LoopFixture, "task: a task may catch CancelledError and finish normally", "[tasks][cancel]") {
    auto stubborn = []() -> asyncio::Coro<int> {
        try {
            co_await asyncio::sleep(3600s);
        } catch (const asyncio::CancelledError&) {
        }
        co_return 7;
    };
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(stubborn());
        co_await asyncio::sleep(0);
        t.cancel();
        CHECK(co_await t == 7);
        CHECK_FALSE(t.cancelled());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "task: cancelling a task that awaits another task cancels the inner one",
                 "[tasks][cancel]") {
    asyncio::Task<> inner_task;
    auto inner = []() -> asyncio::Coro<> { co_await asyncio::sleep(3600s); };
    auto outer = [&]() -> asyncio::Coro<> {
        inner_task = asyncio::create_task(inner());
        co_await inner_task;
    };
    auto body = [&]() -> asyncio::Coro<> {
        auto t = asyncio::create_task(outer());
        co_await asyncio::sleep(0);
        co_await asyncio::sleep(0);
        t.cancel();
        CHECK_THROWS_AS(co_await t, asyncio::CancelledError);
        CHECK(inner_task.cancelled());
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "task: awaiting a cancelled future cancels the task with its message",
                 "[tasks][cancel]") {
    auto f = loop().create_future<int>();
    auto waiter = [](asyncio::Future<int> f) -> asyncio::Coro<int> { co_return co_await f; };
    auto t = loop().create_task(waiter(f));
    loop().call_soon([f] { f.cancel("from future"); });
    CHECK_THROWS_AS(loop().run_until_complete(asyncio::Future<int>(t)), asyncio::CancelledError);
    CHECK(t.cancelled());
}

TEST_CASE_METHOD(LoopFixture, "task: current_task and all_tasks", "[tasks]") {
    CHECK_FALSE(asyncio::current_task());
    auto body = [&]() -> asyncio::Coro<> {
        auto me = asyncio::current_task();
        REQUIRE(me);
        auto other = asyncio::create_task(add_after_yield(1, 2), "other");
        auto tasks = asyncio::all_tasks();
        CHECK(tasks.size() == 2);
        bool found_me = false, found_other = false;
        for (auto& t : tasks) {
            found_me = found_me || t == me;
            found_other = found_other || t == other;
        }
        CHECK(found_me);
        CHECK(found_other);
        co_await other;
        CHECK(asyncio::all_tasks().size() == 1);
    };
    run(body());
    CHECK(asyncio::all_tasks(loop()).empty());
}

TEST_CASE_METHOD(LoopFixture, "task: exception never retrieved is reported when the task dies", "[tasks]") {
    {
        auto t = loop().create_task(fail("unobserved"));
        run([]() -> asyncio::Coro<> {
            co_await asyncio::sleep(0);
            co_await asyncio::sleep(0);
        }());
        CHECK(t.done());
    }
    auto calls = take_handler_calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].message.find("exception was never retrieved") != std::string::npos);
}

TEST_CASE_METHOD(LoopFixture, "task: a pending task at loop close is destroyed and reported", "[tasks]") {
    auto f = loop().create_future<int>();
    auto waiter = [](asyncio::Future<int> f) -> asyncio::Coro<int> { co_return co_await f; };
    auto t = loop().create_task(waiter(f), "stuck");
    run([]() -> asyncio::Coro<> { co_await asyncio::sleep(0); }());
    CHECK_FALSE(t.done());
    loop().close();
    auto calls = take_handler_calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].message == "Task was destroyed but it is pending!");
    CHECK(calls[0].future == "Task 'stuck'");
}

TEST_CASE_METHOD(LoopFixture, "sleep: waits at least the delay", "[tasks][timers]") {
    auto body = [&]() -> asyncio::Coro<double> {
        double start = loop().time();
        co_await asyncio::sleep(20ms);
        co_return loop().time() - start;
    };
    CHECK(run(body()) >= 0.020);
}

TEST_CASE_METHOD(LoopFixture, "co_await outside a task is a clear error", "[tasks]") {
    auto f = loop().create_future<int>();
    auto c = [](asyncio::Future<int> f) -> asyncio::Coro<int> { co_return co_await f; }(f);
    // Driving the coroutine by hand, outside any task: the await must refuse.
    auto h = c.release();
    h.resume();
    REQUIRE(h.promise().finished());
    CHECK_THROWS_WITH(h.promise().take_result(), Catch::Contains("outside a task"));
    h.destroy();
}

TEST_CASE_METHOD(LoopFixture, "fairness: 100 always-ready tasks cannot starve an fd callback", "[tasks][fairness]") {
    // Reliability check 20: the reader must run within the first iterations, however busy the
    // ready queue is; count iterations (spinner steps), not time.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    long spins = 0;
    bool stop = false;
    auto spinner = [&]() -> asyncio::Coro<> {
        while (!stop) {
            ++spins;
            co_await asyncio::sleep(0);
        }
    };
    std::vector<asyncio::Task<>> tasks;
    for (int i = 0; i < 100; ++i) tasks.push_back(loop().create_task(spinner()));
    long spins_when_read = -1;
    loop().add_reader(fds[0], [&] {
        char c;
        REQUIRE(::read(fds[0], &c, 1) == 1);
        spins_when_read = spins;
        loop().remove_reader(fds[0]);
        stop = true;
    });
    loop().call_soon([&] { REQUIRE(::write(fds[1], "x", 1) == 1); });
    auto all = [](std::vector<asyncio::Task<>>& ts) -> asyncio::Coro<> {
        for (auto& t : ts) co_await t;
    };
    run(all(tasks));
    CHECK(spins_when_read >= 0);
    CHECK(spins_when_read <= 300);  // at most three rounds of the 100 spinners
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE_METHOD(LoopFixture, "task: a fire-and-forget task that sleeps still completes", "[tasks]") {
    // Nothing holds the Task handle: the loop must keep the sleeping task alive, as Python's does.
    bool finished = false;
    auto background = [&]() -> asyncio::Coro<> {
        co_await asyncio::sleep(0.001);
        finished = true;
    };
    auto body = [&]() -> asyncio::Coro<> {
        (void)asyncio::create_task(background());
        while (!finished) co_await asyncio::sleep(0.001);
    };
    run(body());
    CHECK(finished);
}
