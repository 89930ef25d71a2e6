// Helpers of the select and selectors tests: the EINTR check. The fd helpers they use (OwnedFd,
// Pipe, SocketPair, FdLeakCheck, ...) are in socket_helpers.hpp, shared by every test.
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <fstream>
#include <initializer_list>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loop_fixture.hpp"
#include "socket_helpers.hpp"

namespace tulip::testing {

// ---------------------------------------------------------------------------------------------
// EINTR: a wait interrupted by signals must go on waiting (PEP 475).
// ---------------------------------------------------------------------------------------------

namespace detail {
inline std::atomic<int> eintr_handler_calls{0};
extern "C" inline void count_signal(int) { eintr_handler_calls.fetch_add(1); }

// True when thread `tid` of this process is blocked in one of `syscalls` (Linux reports the
// syscall a blocked thread is in through /proc/<pid>/task/<tid>/syscall; "running" otherwise).
// restart_syscall counts too: a timed wait that the kernel interrupted without running a
// handler (the task was frozen and thawed, or stopped and continued) resumes through it, still
// blocked in the same wait; without it the signalling thread would wait for ever.
inline bool blocked_in(long tid, std::initializer_list<long> syscalls) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
    long nr = -1;
    if (!(in >> nr)) return false;
    return nr == SYS_restart_syscall || std::find(syscalls.begin(), syscalls.end(), nr) != syscalls.end();
}
}  // namespace detail

// Runs `wait(fd)`, which must block until `fd` is readable and return the ready fds, while another
// thread interrupts it with SIGUSR1 (a no-op handler installed without SA_RESTART, so the syscall
// fails with EINTR). No sleeps and no timing: the signalling thread waits until this thread is
// blocked in one of `syscalls`, sends one signal, waits for the handler to have run, and does that
// `rounds` times, each time on a fresh, retried wait; then it makes `fd` readable. A wait that
// gives up on EINTR ends the rounds early (its exception is rethrown here), so it cannot hang.
template <class Wait>
void check_wait_survives_signals(Wait wait, std::initializer_list<long> syscalls, int rounds = 3) {
    struct sigaction action {}, saved {};
    action.sa_handler = &detail::count_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART
    REQUIRE(::sigaction(SIGUSR1, &action, &saved) == 0);
    struct Restore {
        struct sigaction* saved;
        ~Restore() { ::sigaction(SIGUSR1, saved, nullptr); }
    } restore{&saved};

    Pipe wake;
    const pthread_t waiter = ::pthread_self();
    const long waiter_tid = ::syscall(SYS_gettid);
    std::atomic<bool> returned{false};
    detail::eintr_handler_calls = 0;
    int delivered = 0;

    std::thread signaller([&] {
        auto until = [&](auto condition) {
            while (!condition() && !returned) std::this_thread::yield();
            return !returned.load();
        };
        for (int round = 0; round < rounds; ++round) {
            if (!until([&] { return detail::blocked_in(waiter_tid, syscalls); })) break;
            int before = detail::eintr_handler_calls;
            ::pthread_kill(waiter, SIGUSR1);
            if (!until([&] { return detail::eintr_handler_calls != before; })) break;
            ++delivered;
        }
        if (until([&] { return detail::blocked_in(waiter_tid, syscalls); })) {
            char c = 'w';
            [[maybe_unused]] ssize_t n = ::write(wake.w.get(), &c, 1);
        }
    });

    std::vector<int> ready;
    std::exception_ptr error;
    try {
        ready = wait(wake.r.get());
    } catch (...) {
        error = std::current_exception();
    }
    returned = true;
    signaller.join();
    if (error) std::rethrow_exception(error);
    CHECK(delivered == rounds);
    CHECK(ready == std::vector<int>{wake.r.get()});
}

}  // namespace tulip::testing
