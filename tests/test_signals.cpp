// UNIX signals on the loop: add_signal_handler / remove_signal_handler (after CPython's
// test_unix_events signal tests).
//
// How the signals are sent. A process-directed signal (kill(getpid(), sig)) goes to any thread
// that does not block it; this binary runs thread-pool workers in some tests, so such a signal
// could land on a worker, and "the C handler has run when kill() returns" would no longer hold.
// The tests therefore direct every signal at one thread: raise() (the loop's thread) or
// pthread_kill() (a worker, on purpose), both delivered to that thread before they return.
// Nothing here waits with a sleep; a watchdog timer only turns a lost signal into a failure
// instead of a hang, and a passing run never reaches it.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loop_fixture.hpp"
#include "tulip/asyncio.hpp"

using namespace std::chrono_literals;
namespace asyncio = tulip::asyncio;
using tulip::testing::LoopFixture;
using Catch::Matchers::Contains;

namespace {

// Puts a signal's disposition back as it was when the test started, whatever the test did.
class SavedDisposition {
public:
    explicit SavedDisposition(int sig) : sig_(sig) { ::sigaction(sig_, nullptr, &saved_); }
    ~SavedDisposition() { ::sigaction(sig_, &saved_, nullptr); }
    SavedDisposition(const SavedDisposition&) = delete;
    SavedDisposition& operator=(const SavedDisposition&) = delete;

private:
    int sig_;
    struct sigaction saved_ {};
};

volatile sig_atomic_t g_plain_handler_calls = 0;
extern "C" void plain_handler(int) { g_plain_handler_calls = g_plain_handler_calls + 1; }

// Installs plain_handler for sig with the given flags.
void install_plain_handler(int sig, int flags) {
    struct sigaction action {};
    action.sa_handler = &plain_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = flags;
    REQUIRE(::sigaction(sig, &action, nullptr) == 0);
}

struct sigaction current_disposition(int sig) {
    struct sigaction now {};
    ::sigaction(sig, nullptr, &now);
    return now;
}

// Runs the loop until a callback stops it. The watchdog is a safety net, not synchronisation.
void run_forever_guarded(asyncio::EventLoop& loop) {
    bool expired = false;
    auto watchdog = loop.call_later(10.0, [&] {
        expired = true;
        loop.stop();
    });
    loop.run_forever();
    watchdog.cancel();
    CHECK_FALSE(expired);
}

// Runs exactly one iteration of the loop (which polls the signal pipe once).
void run_one_iteration(asyncio::EventLoop& loop) {
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "signals: the handler runs on the loop, as a callback, after the signal",
                 "[signals]") {
    SavedDisposition saved(SIGUSR1);
    std::vector<std::string> order;
    asyncio::EventLoop* running = nullptr;
    loop().add_signal_handler(SIGUSR1, [&] {
        order.push_back("handler");
        // Loop APIs work here: this is a loop callback, not the C signal handler.
        running = &asyncio::get_running_loop();
        loop().call_soon([&] {
            order.push_back("scheduled by handler");
            loop().stop();
        });
    });
    loop().call_soon([&] {
        order.push_back("raise");
        REQUIRE(::raise(SIGUSR1) == 0);  // the C handler has run when raise() returns
        order.push_back("after raise");
    });
    loop().call_soon([&] { order.push_back("same iteration"); });
    run_forever_guarded(loop());
    // The handler did not run inside raise(), nor in the iteration that raised: it ran after the
    // loop's next poll saw the wake-up.
    CHECK(order == std::vector<std::string>{"raise", "after raise", "same iteration", "handler",
                                            "scheduled by handler"});
    CHECK(running == &loop());
    CHECK(loop().remove_signal_handler(SIGUSR1));
}

TEST_CASE_METHOD(LoopFixture, "signals: a signal that arrives while the loop is stopped is handled by the next run",
                 "[signals]") {
    SavedDisposition saved(SIGUSR1);
    int calls = 0;
    loop().add_signal_handler(SIGUSR1, [&] {
        ++calls;
        loop().stop();
    });
    REQUIRE(::raise(SIGUSR1) == 0);
    CHECK(calls == 0);
    run_forever_guarded(loop());
    CHECK(calls == 1);
    // Left installed on purpose: closing the loop (the fixture) must remove it and release the
    // wake-up pipe.
}

TEST_CASE_METHOD(LoopFixture, "signals: SA_RESTART is set, so that blocking calls elsewhere are restarted",
                 "[signals]") {
    SavedDisposition saved(SIGUSR2);
    loop().add_signal_handler(SIGUSR2, [] {});
    CHECK((current_disposition(SIGUSR2).sa_flags & SA_RESTART) != 0);
    CHECK(loop().remove_signal_handler(SIGUSR2));
}

TEST_CASE_METHOD(LoopFixture, "signals: a second add_signal_handler replaces the first", "[signals]") {
    SavedDisposition saved(SIGUSR1);
    int first = 0, second = 0;
    loop().add_signal_handler(SIGUSR1, [&] { ++first; });
    loop().add_signal_handler(SIGUSR1, [&] {
        ++second;
        loop().stop();
    });
    REQUIRE(::raise(SIGUSR1) == 0);
    run_forever_guarded(loop());
    CHECK(first == 0);
    CHECK(second == 1);

    SECTION("even when the replaced handler's call was already scheduled") {
        // The signal is read from the pipe at the start of the next iteration, which schedules
        // `second`'s call behind the callback that the raising callback scheduled: that one runs
        // first in the iteration and replaces `second` before its call comes up.
        int third = 0;
        loop().call_soon([&] {
            REQUIRE(::raise(SIGUSR1) == 0);
            loop().call_soon([&] { loop().add_signal_handler(SIGUSR1, [&] { ++third; }); });
        });
        loop().call_soon([&] { loop().call_soon([&] { loop().call_soon([&] { loop().stop(); }); }); });
        run_forever_guarded(loop());
        CHECK(second == 1);  // a replaced handler never runs once add_signal_handler returned
        CHECK(third <= 1);
    }
    CHECK(loop().remove_signal_handler(SIGUSR1));
}

TEST_CASE_METHOD(LoopFixture,
                 "signals: remove_signal_handler returns true then false and restores the previous disposition",
                 "[signals]") {
    SavedDisposition saved(SIGUSR2);
    int calls = 0;

    SECTION("a C handler, with its flags") {
        install_plain_handler(SIGUSR2, SA_NODEFER);
        CHECK_FALSE(loop().remove_signal_handler(SIGUSR2));  // never added
        loop().add_signal_handler(SIGUSR2, [&] { ++calls; });
        CHECK(current_disposition(SIGUSR2).sa_handler != &plain_handler);
        CHECK(loop().remove_signal_handler(SIGUSR2));
        auto now = current_disposition(SIGUSR2);
        CHECK(now.sa_handler == &plain_handler);
        CHECK((now.sa_flags & SA_NODEFER) != 0);
        CHECK((now.sa_flags & SA_RESTART) == 0);
        CHECK_FALSE(loop().remove_signal_handler(SIGUSR2));

        // The signal goes to the previous handler again, and no longer to the loop.
        g_plain_handler_calls = 0;
        REQUIRE(::raise(SIGUSR2) == 0);
        CHECK(g_plain_handler_calls == 1);
        run_one_iteration(loop());
        CHECK(calls == 0);
    }
    SECTION("SIG_IGN") {
        REQUIRE(::signal(SIGUSR2, SIG_IGN) != SIG_ERR);
        loop().add_signal_handler(SIGUSR2, [&] { ++calls; });
        CHECK(current_disposition(SIGUSR2).sa_handler != SIG_IGN);
        CHECK(loop().remove_signal_handler(SIGUSR2));
        CHECK(current_disposition(SIGUSR2).sa_handler == SIG_IGN);
        CHECK_FALSE(loop().remove_signal_handler(SIGUSR2));
    }
    SECTION("SIG_DFL") {
        REQUIRE(::signal(SIGUSR2, SIG_DFL) != SIG_ERR);
        loop().add_signal_handler(SIGUSR2, [&] { ++calls; });
        CHECK(loop().remove_signal_handler(SIGUSR2));
        CHECK(current_disposition(SIGUSR2).sa_handler == SIG_DFL);
    }
    SECTION("a signal that arrived before the removal does not run the removed handler") {
        install_plain_handler(SIGUSR2, 0);
        loop().add_signal_handler(SIGUSR2, [&] { ++calls; });
        REQUIRE(::raise(SIGUSR2) == 0);  // now waiting in the wake-up pipe
        CHECK(loop().remove_signal_handler(SIGUSR2));
        run_one_iteration(loop());
        CHECK(calls == 0);
    }
}

TEST_CASE_METHOD(LoopFixture, "signals: a handler may remove itself; its calls already scheduled do not run",
                 "[signals]") {
    SavedDisposition saved(SIGUSR2);
    install_plain_handler(SIGUSR2, 0);  // what the removal restores
    int calls = 0;
    loop().add_signal_handler(SIGUSR2, [&] {
        ++calls;
        CHECK(loop().remove_signal_handler(SIGUSR2));
        loop().stop();
    });
    // Two signals before the loop runs: both are read in one iteration, which schedules the
    // handler twice; the first call removes it, so the second must not run.
    REQUIRE(::raise(SIGUSR2) == 0);
    REQUIRE(::raise(SIGUSR2) == 0);
    run_forever_guarded(loop());
    CHECK(calls == 1);
    CHECK(current_disposition(SIGUSR2).sa_handler == &plain_handler);
}

TEST_CASE_METHOD(LoopFixture, "signals: invalid signal numbers, SIGKILL and SIGSTOP raise OSError",
                 "[signals]") {
    for (int sig : {0, -1, NSIG, NSIG + 1, 1000, SIGKILL, SIGSTOP}) {
        INFO("signal " << sig);
        try {
            loop().add_signal_handler(sig, [] {});
            FAIL("add_signal_handler accepted signal " << sig);
        } catch (const tulip::OSError& e) {
            CHECK(e.errno_value() == EINVAL);
            CHECK_THAT(e.what(), Contains(std::to_string(sig)));
        }
        CHECK_FALSE(loop().remove_signal_handler(sig));
    }
    CHECK(current_disposition(SIGKILL).sa_handler == SIG_DFL);
    // The failures left nothing behind: a valid signal still works on this loop.
    SavedDisposition saved(SIGUSR1);
    int calls = 0;
    loop().add_signal_handler(SIGUSR1, [&] {
        ++calls;
        loop().stop();
    });
    REQUIRE(::raise(SIGUSR1) == 0);
    run_forever_guarded(loop());
    CHECK(calls == 1);
    CHECK(loop().remove_signal_handler(SIGUSR1));
}

TEST_CASE_METHOD(LoopFixture, "signals: a closed loop refuses add_signal_handler", "[signals]") {
    asyncio::EventLoop other;
    other.close();
    CHECK_THROWS_AS(other.add_signal_handler(SIGUSR1, [] {}), tulip::RuntimeError);
    CHECK_FALSE(other.remove_signal_handler(SIGUSR1));
}

TEST_CASE_METHOD(LoopFixture, "signals: two loops cannot own the same signal", "[signals]") {
    SavedDisposition saved(SIGUSR1);
    install_plain_handler(SIGUSR1, 0);
    int ours = 0, theirs = 0;
    asyncio::EventLoop other;
    loop().add_signal_handler(SIGUSR1, [&] {
        ++ours;
        loop().stop();
    });
    CHECK_THROWS_AS(other.add_signal_handler(SIGUSR1, [&] { ++theirs; }), tulip::RuntimeError);
    CHECK_THROWS_WITH(other.add_signal_handler(SIGUSR1, [&] { ++theirs; }),
                      Contains(std::to_string(SIGUSR1)) && Contains("another event loop"));
    CHECK_FALSE(other.remove_signal_handler(SIGUSR1));  // did not take it from the owner

    // The owner still gets the signal.
    REQUIRE(::raise(SIGUSR1) == 0);
    run_forever_guarded(loop());
    CHECK(ours == 1);
    CHECK(theirs == 0);

    // Once the owner lets go, the other loop may take it; closing that loop releases it again.
    CHECK(loop().remove_signal_handler(SIGUSR1));
    other.add_signal_handler(SIGUSR1, [&] { ++theirs; });
    CHECK_THROWS_AS(loop().add_signal_handler(SIGUSR1, [] {}), tulip::RuntimeError);
    other.close();
    CHECK(current_disposition(SIGUSR1).sa_handler == &plain_handler);
    loop().add_signal_handler(SIGUSR1, [] {});
    CHECK(loop().remove_signal_handler(SIGUSR1));
}

TEST_CASE("signals: destroying a loop restores the dispositions and releases its signals", "[signals]") {
    SavedDisposition saved(SIGUSR2);
    install_plain_handler(SIGUSR2, 0);
    std::size_t fds = tulip::testing::open_fd_count();
    {
        asyncio::EventLoop loop;  // never closed explicitly
        loop.add_signal_handler(SIGUSR2, [] {});
        CHECK(current_disposition(SIGUSR2).sa_handler != &plain_handler);
    }
    CHECK(current_disposition(SIGUSR2).sa_handler == &plain_handler);
    CHECK(tulip::testing::open_fd_count() == fds);
    asyncio::EventLoop next;
    next.add_signal_handler(SIGUSR2, [] {});  // not RuntimeError: the signal was released
    next.close();
    CHECK(current_disposition(SIGUSR2).sa_handler == &plain_handler);
}

TEST_CASE_METHOD(LoopFixture, "signals: an exception from the handler goes to the exception handler",
                 "[signals]") {
    SavedDisposition saved(SIGUSR1);
    int calls = 0;
    loop().add_signal_handler(SIGUSR1, [&] {
        ++calls;
        loop().stop();
        throw std::runtime_error("handler failed");
    });
    REQUIRE(::raise(SIGUSR1) == 0);
    run_forever_guarded(loop());
    auto reported = take_handler_calls();
    REQUIRE(reported.size() == 1);
    CHECK_THAT(tulip::testing::describe(reported[0]), Contains("handler failed"));
    CHECK(reported[0].handle.has_value());

    // The handler stays installed.
    REQUIRE(::raise(SIGUSR1) == 0);
    run_forever_guarded(loop());
    CHECK(calls == 2);
    CHECK(take_handler_calls().size() == 1);
    CHECK(loop().remove_signal_handler(SIGUSR1));
}

TEST_CASE_METHOD(LoopFixture,
                 "signals: a burst of signals gives at least one call and never loses the last wake-up",
                 "[signals]") {
    SavedDisposition saved(SIGUSR1);
    int calls = 0;

    SECTION("100 signals at once") {
        loop().add_signal_handler(SIGUSR1, [&] {
            ++calls;
            loop().stop();
        });
        for (int round = 0; round < 10; ++round) {
            calls = 0;
            loop().call_soon([] {
                int failed = 0;
                for (int i = 0; i < 100; ++i) failed += ::raise(SIGUSR1) != 0;
                REQUIRE(failed == 0);
            });
            run_forever_guarded(loop());
            CHECK(calls >= 1);
            CHECK(calls <= 100);
        }
    }
    SECTION("a signal raised by the handler itself, after the pipe was drained, wakes the loop again") {
        loop().add_signal_handler(SIGUSR1, [&] {
            if (++calls < 50) REQUIRE(::raise(SIGUSR1) == 0);
            else loop().stop();
        });
        REQUIRE(::raise(SIGUSR1) == 0);
        run_forever_guarded(loop());
        CHECK(calls == 50);
    }
    SECTION("more signals than the wake-up pipe holds") {
        // A full pipe drops wake-ups, which only loses duplicates: the loop still runs the handler,
        // and a later signal still wakes it.
        constexpr int sent = 70'000;  // a Linux pipe holds 64 KiB by default
        loop().add_signal_handler(SIGUSR1, [&] {
            ++calls;
            loop().stop();
        });
        int failed = 0;
        for (int i = 0; i < sent; ++i) failed += ::raise(SIGUSR1) != 0;
        REQUIRE(failed == 0);
        run_forever_guarded(loop());
        CHECK(calls >= 1);
        CHECK(calls <= sent);
        calls = 0;
        loop().call_soon([] { REQUIRE(::raise(SIGUSR1) == 0); });
        run_forever_guarded(loop());
        CHECK(calls == 1);
    }
    CHECK(loop().remove_signal_handler(SIGUSR1));
}

// Tagged [tsan-defers-signals]: ThreadSanitizer holds a signal caught during a blocking read()
// until the thread's next intercepted call, so under it the handler would never run and the test
// would wait forever. The plain and ASan builds run it on every backend.
TEST_CASE_METHOD(LoopFixture, "signals: signals while a thread-pool job runs do not break it or the loop",
                 "[signals][threads][tsan-defers-signals]") {
    SavedDisposition saved(SIGUSR1);
    const auto loop_thread = std::this_thread::get_id();
    int calls = 0;
    bool handler_on_loop_thread = true;
    asyncio::Future<> handled(loop());
    loop().add_signal_handler(SIGUSR1, [&] {
        ++calls;
        handler_on_loop_thread = handler_on_loop_thread && std::this_thread::get_id() == loop_thread;
        if (!handled.done()) handled.set_result();
    });
    // A blocking pipe: the job blocks in read() while the signals hit its thread.
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    struct Closer {
        int* fds;
        ~Closer() {
            ::close(fds[0]);
            ::close(fds[1]);
        }
    } closer{fds};

    SECTION("signals sent to the worker thread, blocked in read()") {
        auto body = [&]() -> asyncio::Coro<std::pair<ssize_t, int>> {
            auto& loop_ref = loop();
            asyncio::Future<pthread_t> started(loop_ref);
            // The worker copies no Future (their reference counts belong to the loop's thread):
            // it reaches `started` through a pointer, on the loop, via call_soon_threadsafe.
            // Catch2's assertions are not thread-safe either: the job only returns what it saw.
            auto job = loop_ref.run_in_executor([&loop_ref, started_ptr = &started, rfd = fds[0]] {
                loop_ref.call_soon_threadsafe(
                    [started_ptr, me = ::pthread_self()] { started_ptr->set_result(me); });
                char byte = 0;
                ssize_t n = ::read(rfd, &byte, 1);
                return std::pair<ssize_t, int>(n, n < 0 ? errno : 0);
            });
            pthread_t worker = co_await started;
            int failed = 0;
            for (int i = 0; i < 20; ++i) failed += ::pthread_kill(worker, SIGUSR1) != 0;
            REQUIRE(failed == 0);
            co_await handled;  // the loop ran the handler for signals caught on another thread
            REQUIRE(::write(fds[1], "x", 1) == 1);
            co_return co_await job;
        };
        auto [n, err] = run(body());
        CHECK(n == 1);  // read() was restarted (SA_RESTART): no EINTR reached the job
        CHECK(err == 0);
    }
    SECTION("signals sent to the loop thread while it waits for the job") {
        auto body = [&]() -> asyncio::Coro<int> {
            auto& loop_ref = loop();
            const pthread_t loop_pthread = ::pthread_self();
            auto job = loop_ref.run_in_executor([loop_pthread, rfd = fds[0]] {
                int failures = 0;
                for (int i = 0; i < 20; ++i) failures += ::pthread_kill(loop_pthread, SIGUSR1) != 0;
                char byte = 0;
                ssize_t n = ::read(rfd, &byte, 1);  // the loop writes once it saw a signal
                return n == 1 ? failures : -1;
            });
            co_await handled;  // the loop's wait was interrupted or woken, and carried on
            REQUIRE(::write(fds[1], "x", 1) == 1);
            co_return co_await job;
        };
        CHECK(run(body()) == 0);
    }
    CHECK(calls >= 1);
    CHECK(handler_on_loop_thread);
    CHECK(loop().remove_signal_handler(SIGUSR1));
}
