// tulip::select: select(), poll objects and epoll objects over pipes, socket pairs and eventfds
// (after CPython's test_select, test_poll and test_epoll).
#include "tulip/select.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/syscall.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "select_helpers.hpp"
#include "tulip/exceptions.hpp"

using namespace std::chrono_literals;
// Not `namespace select = tulip::select;`: that alias would clash with ::select from <sys/select.h>.
using namespace tulip;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using tulip::testing::FdLeakCheck;
using tulip::testing::OwnedFd;
using tulip::testing::Pipe;
using tulip::testing::SocketPair;
using tulip::testing::read_byte;
using tulip::testing::write_byte;

namespace {

// An object with a fileno() method, as a socket will be.
struct FileObject {
    int fd;
    int fileno() const { return fd; }
    bool operator==(const FileObject&) const = default;
};

// An fd number that is not open (closed just now; nothing else in this thread opens one).
int closed_fd() {
    Pipe p;
    return p.r.get();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// select()
// ---------------------------------------------------------------------------------------------

TEST_CASE("select: an empty pipe is writable, not readable; readable once written", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    auto [r, w, x] = select::select({p.r.get()}, {p.w.get()}, {p.r.get()}, 0.0);
    CHECK(r.empty());
    CHECK(w == std::vector<int>{p.w.get()});
    CHECK(x.empty());

    write_byte(p.w.get());
    auto ready = select::select({p.r.get()}, {}, {}, 0.0);
    CHECK(ready.rlist == std::vector<int>{p.r.get()});
    CHECK(read_byte(p.r.get()) == 'x');
}

TEST_CASE("select: timeouts", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    SECTION("a zero timeout returns at once with nothing") {
        auto ready = select::select({p.r.get()}, {}, {}, 0.0);
        CHECK(ready.rlist.empty());
    }
    SECTION("a positive timeout with nothing ready returns empty") {
        CHECK(select::select({p.r.get()}, {}, {}, 0.01).rlist.empty());
        CHECK(select::select({p.r.get()}, {}, {}, 10ms).rlist.empty());
    }
    SECTION("empty lists just wait") { CHECK(select::select({}, {}, {}, 1ms).rlist.empty()); }
    SECTION("no timeout blocks until something is ready") {
        write_byte(p.w.get());
        CHECK(select::select({p.r.get()}, {}, {}).rlist == std::vector<int>{p.r.get()});
        CHECK(select::select({p.r.get()}, {}, {}, std::nullopt).rlist == std::vector<int>{p.r.get()});
    }
    SECTION("a huge timeout does not overflow") {
        write_byte(p.w.get());
        CHECK(select::select({p.r.get()}, {}, {}, 1e300).rlist.size() == 1);
        CHECK(select::select({p.r.get()}, {}, {}, std::chrono::hours::max()).rlist.size() == 1);
    }
}

TEST_CASE("select: results keep the order and the repeats of the lists given", "[select]") {
    FdLeakCheck leak_check;
    Pipe a, b;
    write_byte(a.w.get());
    write_byte(b.w.get());
    auto ready = select::select({b.r.get(), a.r.get(), b.r.get()}, {}, {}, 0.0);
    CHECK(ready.rlist == std::vector<int>{b.r.get(), a.r.get(), b.r.get()});
}

TEST_CASE("select: a closed writer makes the read end readable (EOF)", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    p.w.close();
    CHECK(select::select({p.r.get()}, {}, {}, 0.0).rlist == std::vector<int>{p.r.get()});
}

TEST_CASE("select: objects with fileno() are returned as given", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    write_byte(p.w.get());
    FileObject reader{p.r.get()}, writer{p.w.get()};
    auto [r, w, x] = select::select(std::vector{reader}, std::vector{writer}, std::vector<FileObject>{}, 0.0);
    CHECK(r == std::vector{reader});
    CHECK(w == std::vector{writer});
    CHECK(x.empty());

    std::vector<const FileObject*> pointers{&writer, &reader};
    auto by_pointer = select::select(pointers, {}, {}, 0ms);
    CHECK(by_pointer.rlist == std::vector<const FileObject*>{&reader});
}

TEST_CASE("select: bad arguments raise Python's errors", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    CHECK_THROWS_MATCHES(select::select({-1}, {}, {}, 0.0), tulip::ValueError,
                         Catch::Message("file descriptor cannot be a negative integer (-1)"));
    CHECK_THROWS_MATCHES(select::select({}, {FD_SETSIZE}, {}, 0.0), tulip::ValueError,
                         Catch::Message("filedescriptor out of range in select()"));
    CHECK_THROWS_MATCHES(select::select({p.r.get()}, {}, {}, -1.0), tulip::ValueError,
                         Catch::Message("timeout must be non-negative"));
    CHECK_THROWS_MATCHES(select::select({p.r.get()}, {}, {}, std::nan("")), tulip::ValueError,
                         Catch::Message("Invalid value NaN (not a number)"));
    FileObject bad{-2};
    CHECK_THROWS_AS(select::select(std::vector{bad}, {}, {}, 0.0), tulip::ValueError);
    try {
        select::select({closed_fd()}, {}, {}, 0.0);
        FAIL("select() on a closed fd did not throw");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == EBADF);
        CHECK_THAT(e.what(), Contains("select"));
    }
}

TEST_CASE("select: a wait interrupted by signals is retried (PEP 475)", "[select]") {
    FdLeakCheck leak_check;
    std::initializer_list<long> syscalls = {
#ifdef SYS_select
        SYS_select,
#endif
        SYS_pselect6};
    SECTION("without a timeout") {
        tulip::testing::check_wait_survives_signals([](int fd) { return select::select({fd}, {}, {}).rlist; },
                                                    syscalls);
    }
    SECTION("with a timeout, recomputed after each signal") {
        tulip::testing::check_wait_survives_signals([](int fd) { return select::select({fd}, {}, {}, 600.0).rlist; },
                                                    syscalls);
    }
}

// ---------------------------------------------------------------------------------------------
// poll objects
// ---------------------------------------------------------------------------------------------

TEST_CASE("poll: readiness of a pipe, with the default mask", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    select::Poll poller;
    poller.register_(p.r.get());
    poller.register_(p.w.get());
    CHECK(poller.size() == 2);
    CHECK(poller.poll(0.0) == std::vector<std::pair<int, int>>{{p.w.get(), select::POLLOUT}});

    write_byte(p.w.get());
    auto events = poller.poll(0ms);
    std::sort(events.begin(), events.end());
    auto expected = std::vector<std::pair<int, int>>{{p.r.get(), select::POLLIN}, {p.w.get(), select::POLLOUT}};
    std::sort(expected.begin(), expected.end());
    CHECK(events == expected);
}

TEST_CASE("poll: timeouts", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    select::Poll poller;
    poller.register_(p.r.get(), select::POLLIN);
    CHECK(poller.poll(0.0).empty());
    CHECK(poller.poll(10.0).empty());  // milliseconds, as in Python
    CHECK(poller.poll(10ms).empty());
    SECTION("no timeout or a negative one blocks until something is ready") {
        write_byte(p.w.get());
        CHECK(poller.poll().size() == 1);
        CHECK(poller.poll(-1.0).size() == 1);
        CHECK(poller.poll(std::chrono::milliseconds(-1)).size() == 1);
    }
    SECTION("an empty poll object with a timeout just waits") {
        select::Poll empty;
        CHECK(empty.poll(1.0).empty());
    }
}

TEST_CASE("poll: POLLHUP when the writer closes, POLLRDHUP on a shut down socket", "[select]") {
    FdLeakCheck leak_check;
    SECTION("pipe") {
        Pipe p;
        select::Poll poller;
        poller.register_(p.r.get(), select::POLLIN);
        p.w.close();
        auto events = poller.poll(0.0);
        REQUIRE(events.size() == 1);
        CHECK(events[0].first == p.r.get());
        CHECK((events[0].second & select::POLLHUP) != 0);
    }
    SECTION("socket pair") {
        SocketPair s;
        select::Poll poller;
        poller.register_(s.a.get(), select::POLLIN | select::POLLRDHUP);
        REQUIRE(::shutdown(s.b.get(), SHUT_WR) == 0);
        auto events = poller.poll(0.0);
        REQUIRE(events.size() == 1);
        CHECK((events[0].second & select::POLLRDHUP) != 0);
    }
}

TEST_CASE("poll: POLLNVAL for a registered fd that was closed", "[select]") {
    FdLeakCheck leak_check;
    select::Poll poller;
    int fd = closed_fd();
    poller.register_(fd, select::POLLIN);
    CHECK(poller.poll(0.0) == std::vector<std::pair<int, int>>{{fd, select::POLLNVAL}});
}

TEST_CASE("poll: register, modify and unregister", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    select::Poll poller;
    poller.register_(p.w.get(), select::POLLIN);
    CHECK(poller.poll(0.0).empty());
    SECTION("modify changes the mask") {
        poller.modify(p.w.get(), select::POLLOUT);
        CHECK(poller.poll(0.0).size() == 1);
    }
    SECTION("registering again replaces the mask") {
        poller.register_(p.w.get(), select::POLLOUT);
        CHECK(poller.size() == 1);
        CHECK(poller.poll(0.0).size() == 1);
    }
    SECTION("unregister removes it") {
        poller.unregister(p.w.get());
        CHECK(poller.size() == 0);
        CHECK(poller.poll(0.0).empty());
    }
    SECTION("objects with fileno()") {
        FileObject w{p.w.get()};
        poller.modify(w, select::POLLOUT);
        CHECK(poller.poll(0.0).size() == 1);
        poller.unregister(&w);
        CHECK(poller.size() == 0);
    }
}

TEST_CASE("poll: errors", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    select::Poll poller;
    try {
        poller.modify(p.r.get(), select::POLLIN);
        FAIL("modify of an unregistered fd did not throw");
    } catch (const tulip::FileNotFoundError& e) {
        CHECK(e.errno_value() == ENOENT);
        CHECK_THAT(e.what(), Contains("poll.modify(fd " + std::to_string(p.r.get()) + ")"));
    }
    CHECK_THROWS_MATCHES(poller.unregister(p.r.get()), tulip::KeyError,
                         Catch::Message("fd " + std::to_string(p.r.get()) + " is not registered in this poll object"));
    CHECK_THROWS_MATCHES(poller.register_(-1), tulip::ValueError,
                         Catch::Message("file descriptor cannot be a negative integer (-1)"));
    CHECK_THROWS_AS(poller.register_(p.r.get(), 0x10000), tulip::ValueError);
    CHECK_THROWS_AS(poller.register_(p.r.get(), -1), tulip::ValueError);
    CHECK(poller.size() == 0);
}

TEST_CASE("poll: a wait interrupted by signals is retried (PEP 475)", "[select]") {
    FdLeakCheck leak_check;
    std::initializer_list<long> syscalls = {
#ifdef SYS_poll
        SYS_poll,
#endif
        SYS_ppoll};
    auto wait_on = [](select::Timeout timeout) {
        return [timeout](int fd) {
            select::Poll poller;
            poller.register_(fd, select::POLLIN);
            std::vector<int> fds;
            for (auto [ready, events] : poller.poll(timeout)) fds.push_back(ready);
            return fds;
        };
    };
    SECTION("without a timeout") { tulip::testing::check_wait_survives_signals(wait_on({}), syscalls); }
    SECTION("with a timeout, recomputed after each signal") {
        tulip::testing::check_wait_survives_signals(wait_on(600s), syscalls);
    }
}

// ---------------------------------------------------------------------------------------------
// epoll objects
// ---------------------------------------------------------------------------------------------

TEST_CASE("epoll: create, fileno, close", "[select]") {
    FdLeakCheck leak_check;
    select::Epoll ep;
    CHECK_FALSE(ep.closed());
    int fd = ep.fileno();
    CHECK(fd >= 0);
    CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);  // close-on-exec, as Python's
    ep.close();
    CHECK(ep.closed());
    CHECK(::fcntl(fd, F_GETFD) == -1);  // the fd is released
    ep.close();                         // a second close does nothing
    CHECK(ep.closed());

    select::Epoll with_args(1, select::EPOLL_CLOEXEC);
    CHECK_FALSE(with_args.closed());
    CHECK_THROWS_MATCHES(select::Epoll(0), tulip::ValueError, Catch::Message("negative sizehint"));
    CHECK_THROWS_MATCHES(select::Epoll(-2), tulip::ValueError, Catch::Message("negative sizehint"));
    try {
        select::Epoll bad(-1, 1);
        FAIL("epoll(flags=1) did not throw");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == EINVAL);
    }
}

TEST_CASE("epoll: every operation on a closed epoll object raises ValueError", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    select::Epoll ep;
    ep.close();
    auto message = Catch::Message("I/O operation on closed epoll object");
    CHECK_THROWS_MATCHES(ep.fileno(), tulip::ValueError, message);
    CHECK_THROWS_MATCHES(ep.register_(p.r.get()), tulip::ValueError, message);
    CHECK_THROWS_MATCHES(ep.modify(p.r.get(), select::EPOLLIN), tulip::ValueError, message);
    CHECK_THROWS_MATCHES(ep.unregister(p.r.get()), tulip::ValueError, message);
    CHECK_THROWS_MATCHES(ep.poll(0.0), tulip::ValueError, message);
}

TEST_CASE("epoll: level-triggered readiness is reported on every poll", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    select::Epoll ep;
    ep.register_(p.r.get(), select::EPOLLIN);
    ep.register_(p.w.get(), select::EPOLLOUT);
    CHECK(ep.poll(0.0) == std::vector<std::pair<int, std::uint32_t>>{{p.w.get(), select::EPOLLOUT}});
    ep.unregister(p.w.get());

    write_byte(p.w.get());
    using Events = std::vector<std::pair<int, std::uint32_t>>;
    CHECK(ep.poll(0.0) == Events{{p.r.get(), select::EPOLLIN}});
    CHECK(ep.poll(0.0) == Events{{p.r.get(), select::EPOLLIN}});  // still readable, reported again
    read_byte(p.r.get());
    CHECK(ep.poll(0.0).empty());
}

TEST_CASE("epoll: EPOLLET delivers once per edge", "[select]") {
    FdLeakCheck leak_check;
    using Events = std::vector<std::pair<int, std::uint32_t>>;
    SECTION("pipe") {
        Pipe p;
        select::Epoll ep;
        ep.register_(p.r.get(), select::EPOLLIN | select::EPOLLET);
        CHECK(ep.poll(0.0).empty());
        write_byte(p.w.get());
        CHECK(ep.poll(0.0) == Events{{p.r.get(), select::EPOLLIN}});
        CHECK(ep.poll(0.0).empty());  // not read, but no new edge
        write_byte(p.w.get());        // more data: a new edge, without reading the first byte
        CHECK(ep.poll(0.0) == Events{{p.r.get(), select::EPOLLIN}});
        CHECK(ep.poll(0.0).empty());
    }
    SECTION("eventfd") {
        OwnedFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        REQUIRE(efd.get() >= 0);
        select::Epoll ep;
        ep.register_(efd.get(), select::EPOLLIN | select::EPOLLET);
        std::uint64_t one = 1;
        REQUIRE(::write(efd.get(), &one, sizeof one) == sizeof one);
        CHECK(ep.poll(0.0) == Events{{efd.get(), select::EPOLLIN}});
        CHECK(ep.poll(0.0).empty());
        REQUIRE(::write(efd.get(), &one, sizeof one) == sizeof one);
        CHECK(ep.poll(0.0) == Events{{efd.get(), select::EPOLLIN}});
    }
}

TEST_CASE("epoll: EPOLLONESHOT reports once until modify() re-arms it", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    select::Epoll ep;
    ep.register_(p.r.get(), select::EPOLLIN | select::EPOLLONESHOT);
    write_byte(p.w.get());
    CHECK(ep.poll(0.0).size() == 1);
    CHECK(ep.poll(0.0).empty());
    ep.modify(p.r.get(), select::EPOLLIN | select::EPOLLONESHOT);
    CHECK(ep.poll(0.0).size() == 1);
}

TEST_CASE("epoll: EPOLLHUP when the writer closes, EPOLLRDHUP on a shut down socket", "[select]") {
    FdLeakCheck leak_check;
    select::Epoll ep;
    SECTION("pipe") {
        Pipe p;
        ep.register_(p.r.get(), select::EPOLLIN);
        p.w.close();
        auto events = ep.poll(0.0);
        REQUIRE(events.size() == 1);
        CHECK((events[0].second & select::EPOLLHUP) != 0);
    }
    SECTION("socket pair") {
        SocketPair s;
        ep.register_(s.a.get(), select::EPOLLIN | select::EPOLLRDHUP);
        REQUIRE(::shutdown(s.b.get(), SHUT_WR) == 0);
        auto events = ep.poll(0.0);
        REQUIRE(events.size() == 1);
        CHECK((events[0].second & select::EPOLLRDHUP) != 0);
    }
}

TEST_CASE("epoll: timeouts and maxevents", "[select]") {
    FdLeakCheck leak_check;
    Pipe a, b, c;
    select::Epoll ep;
    for (Pipe* p : {&a, &b, &c}) ep.register_(p->r.get(), select::EPOLLIN);
    CHECK(ep.poll(0.0).empty());
    CHECK(ep.poll(0.01).empty());  // seconds, as in Python
    CHECK(ep.poll(10ms).empty());
    SECTION("an empty epoll object with a timeout just waits") {
        select::Epoll empty;
        CHECK(empty.poll(1ms).empty());
    }
    SECTION("maxevents bounds the batch") {
        for (Pipe* p : {&a, &b, &c}) write_byte(p->w.get());
        CHECK(ep.poll(0.0, 1).size() == 1);
        CHECK(ep.poll(0.0, 2).size() == 2);
        CHECK(ep.poll(0.0).size() == 3);
        CHECK(ep.poll(std::nullopt, 3).size() == 3);  // no timeout: something is ready
        CHECK(ep.poll(-1.0, 3).size() == 3);  // negative: blocks, as in Python
        CHECK_THROWS_MATCHES(ep.poll(0.0, 0), tulip::ValueError,
                             Catch::Message("maxevents must be greater than 0, got 0"));
        CHECK_THROWS_MATCHES(ep.poll(0.0, -2), tulip::ValueError,
                             Catch::Message("maxevents must be greater than 0, got -2"));
    }
}

TEST_CASE("epoll: the kernel's errors as Python raises them", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    select::Epoll ep;
    ep.register_(p.r.get(), select::EPOLLIN);
    auto expect_errno = [](auto&& call, int err, const std::string& text) {
        try {
            call();
            FAIL("no exception; expected errno " << err);
        } catch (const tulip::OSError& e) {
            CHECK(e.errno_value() == err);
            CHECK_THAT(e.what(), Contains(text));
        }
    };
    std::string r = std::to_string(p.r.get()), w = std::to_string(p.w.get());
    CHECK_THROWS_AS(ep.register_(p.r.get()), tulip::FileExistsError);
    expect_errno([&] { ep.register_(p.r.get()); }, EEXIST, "epoll.register(fd " + r + ")");
    CHECK_THROWS_AS(ep.modify(p.w.get(), select::EPOLLOUT), tulip::FileNotFoundError);
    expect_errno([&] { ep.modify(p.w.get(), select::EPOLLOUT); }, ENOENT, "epoll.modify(fd " + w + ")");
    expect_errno([&] { ep.unregister(p.w.get()); }, ENOENT, "epoll.unregister(fd " + w + ")");
    int closed = closed_fd();
    expect_errno([&] { ep.register_(closed); }, EBADF, "epoll.register");
    OwnedFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(devnull.get() >= 0);
    CHECK_THROWS_AS(ep.register_(devnull.get()), tulip::PermissionError);  // EPERM: not pollable
    CHECK_THROWS_MATCHES(ep.register_(-1), tulip::ValueError,
                         Catch::Message("file descriptor cannot be a negative integer (-1)"));
}

TEST_CASE("epoll: move-only ownership closes the fd exactly once", "[select]") {
    FdLeakCheck leak_check;
    select::Epoll a;
    int fd = a.fileno();
    select::Epoll b(std::move(a));
    CHECK(a.closed());  // NOLINT(bugprone-use-after-move): a moved-from Epoll is closed
    CHECK(b.fileno() == fd);

    select::Epoll c;
    int c_fd = c.fileno();
    c = std::move(b);  // closes c's own fd, takes b's
    CHECK(b.closed());  // NOLINT(bugprone-use-after-move)
    CHECK(c.fileno() == fd);
    CHECK(::fcntl(c_fd, F_GETFD) == -1);

    select::Epoll adopted = select::Epoll::fromfd(::epoll_create1(EPOLL_CLOEXEC));
    Pipe p;
    adopted.register_(p.w.get(), select::EPOLLOUT);
    CHECK(adopted.poll(0.0).size() == 1);
    CHECK_THROWS_AS(select::Epoll::fromfd(-1), tulip::ValueError);
}

TEST_CASE("epoll: objects with fileno()", "[select]") {
    FdLeakCheck leak_check;
    Pipe p;
    FileObject w{p.w.get()};
    select::Epoll ep;
    ep.register_(w, select::EPOLLIN);
    CHECK(ep.poll(0.0).empty());
    ep.modify(&w, select::EPOLLOUT);
    CHECK(ep.poll(0.0).size() == 1);
    ep.unregister(w);
    CHECK(ep.poll(0.0).empty());
}

TEST_CASE("epoll: a wait interrupted by signals is retried (PEP 475)", "[select]") {
    FdLeakCheck leak_check;
    std::initializer_list<long> syscalls = {
#ifdef SYS_epoll_wait
        SYS_epoll_wait,
#endif
        SYS_epoll_pwait};
    auto wait_on = [](select::Timeout timeout) {
        return [timeout](int fd) {
            select::Epoll ep;
            ep.register_(fd, select::EPOLLIN);
            std::vector<int> fds;
            for (auto [ready, events] : ep.poll(timeout)) fds.push_back(ready);
            return fds;
        };
    };
    SECTION("without a timeout") { tulip::testing::check_wait_survives_signals(wait_on({}), syscalls); }
    SECTION("with a timeout, recomputed after each signal") {
        tulip::testing::check_wait_survives_signals(wait_on(600s), syscalls);
    }
}
