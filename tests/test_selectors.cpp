// tulip::selectors: every case runs against SelectSelector, PollSelector and EpollSelector (after
// CPython's test_selectors, whose BaseSelectorTestCase is mixed into one class per selector).
#include "tulip/selectors.hpp"

#include <sys/syscall.h>

#include <any>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "select_helpers.hpp"
#include "tulip/exceptions.hpp"

using namespace std::chrono_literals;
namespace selectors = tulip::selectors;
using selectors::EVENT_READ;
using selectors::EVENT_WRITE;
using selectors::SelectorKey;
using tulip::testing::FdLeakCheck;
using tulip::testing::OwnedFd;
using tulip::testing::Pipe;
using tulip::testing::SocketPair;
using tulip::testing::read_byte;
using tulip::testing::write_byte;

namespace {

struct FileObject {
    int fd;
    int fileno() const { return fd; }
};

// (fd, events) of a select() result, sorted, for comparisons.
std::vector<std::pair<int, int>> summary(const std::vector<std::pair<SelectorKey, int>>& ready) {
    std::vector<std::pair<int, int>> out;
    for (const auto& [key, events] : ready) out.emplace_back(key.fd, events);
    std::sort(out.begin(), out.end());
    return out;
}

using Ready = std::vector<std::pair<int, int>>;

}  // namespace

#define SELECTOR_CLASSES selectors::SelectSelector, selectors::PollSelector, selectors::EpollSelector

TEMPLATE_TEST_CASE("selectors: register returns the key; get_key and get_map find it", "[selectors]",
                   SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    Pipe p;
    TestType sel;
    const SelectorKey& key = sel.register_(p.r.get(), EVENT_READ, std::string("reader"));
    CHECK(key.fileobj == p.r.get());
    CHECK(key.fd == p.r.get());
    CHECK(key.events == EVENT_READ);
    CHECK(std::any_cast<std::string>(key.data) == "reader");

    sel.register_(p.w.get(), EVENT_WRITE);
    CHECK_FALSE(sel.get_key(p.w.get()).data.has_value());  // data=None
    CHECK(sel.get_key(p.r.get()).events == EVENT_READ);
    CHECK(sel.get_map().size() == 2);
    CHECK(sel.get_map().at(p.w.get()).events == EVENT_WRITE);

    SelectorKey removed = sel.unregister(p.r.get());
    CHECK(std::any_cast<std::string>(removed.data) == "reader");
    CHECK(sel.get_map().size() == 1);
}

TEMPLATE_TEST_CASE("selectors: select reports the ready events among those registered", "[selectors]",
                   SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    Pipe p;
    SocketPair s;
    TestType sel;
    sel.register_(p.r.get(), EVENT_READ);
    sel.register_(p.w.get(), EVENT_WRITE);
    sel.register_(s.a.get(), EVENT_READ | EVENT_WRITE);
    CHECK(summary(sel.select(0.0)) == Ready{{p.w.get(), EVENT_WRITE}, {s.a.get(), EVENT_WRITE}});

    write_byte(p.w.get());
    write_byte(s.b.get());
    std::vector<std::pair<int, int>> expected{
        {p.r.get(), EVENT_READ}, {p.w.get(), EVENT_WRITE}, {s.a.get(), EVENT_READ | EVENT_WRITE}};
    std::sort(expected.begin(), expected.end());
    CHECK(summary(sel.select(0.0)) == expected);
    CHECK(summary(sel.select()) == expected);  // no timeout: returns since something is ready

    read_byte(p.r.get());
    sel.unregister(p.w.get());
    sel.unregister(s.a.get());
    CHECK(sel.select(0.0).empty());
}

TEMPLATE_TEST_CASE("selectors: timeouts", "[selectors]", SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    Pipe p;
    TestType sel;
    SECTION("an empty selector with a timeout just waits") {
        CHECK(sel.select(0.001).empty());
        CHECK(sel.select(1ms).empty());
    }
    sel.register_(p.r.get(), EVENT_READ);
    SECTION("a zero timeout returns at once with nothing") { CHECK(sel.select(0.0).empty()); }
    SECTION("a negative timeout does not wait") { CHECK(sel.select(-1.0).empty()); }
    SECTION("a positive timeout with nothing ready returns empty") { CHECK(sel.select(10ms).empty()); }
    SECTION("a huge timeout does not overflow") {
        write_byte(p.w.get());
        CHECK(sel.select(1e300).size() == 1);
    }
}

TEMPLATE_TEST_CASE("selectors: a closed writer wakes the reader", "[selectors]", SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    Pipe p;
    TestType sel;
    sel.register_(p.r.get(), EVENT_READ);
    p.w.close();
    CHECK(summary(sel.select(0.0)) == Ready{{p.r.get(), EVENT_READ}});
}

TEMPLATE_TEST_CASE("selectors: Python's errors and messages", "[selectors]", SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    Pipe p;
    TestType sel;
    const std::string fd = std::to_string(p.r.get());
    sel.register_(p.r.get(), EVENT_READ);
    CHECK_THROWS_MATCHES(sel.register_(p.r.get(), EVENT_WRITE), tulip::KeyError,
                         Catch::Message(fd + " (FD " + fd + ") is already registered"));
    CHECK(sel.get_key(p.r.get()).events == EVENT_READ);  // unchanged

    const std::string other = std::to_string(p.w.get());
    CHECK_THROWS_MATCHES(sel.unregister(p.w.get()), tulip::KeyError, Catch::Message(other + " is not registered"));
    CHECK_THROWS_MATCHES(sel.get_key(p.w.get()), tulip::KeyError, Catch::Message(other + " is not registered"));
    CHECK_THROWS_MATCHES(sel.modify(p.w.get(), EVENT_READ), tulip::KeyError,
                         Catch::Message(other + " is not registered"));

    CHECK_THROWS_MATCHES(sel.register_(p.w.get(), 0), tulip::ValueError, Catch::Message("Invalid events: 0"));
    CHECK_THROWS_MATCHES(sel.register_(p.w.get(), 4), tulip::ValueError, Catch::Message("Invalid events: 4"));
    CHECK_THROWS_MATCHES(sel.modify(p.r.get(), 8), tulip::ValueError, Catch::Message("Invalid events: 8"));
    CHECK_THROWS_MATCHES(sel.register_(-1, EVENT_READ), tulip::ValueError,
                         Catch::Message("Invalid file descriptor: -1"));
    FileObject bad{-3};
    CHECK_THROWS_MATCHES(sel.register_(bad, EVENT_READ), tulip::ValueError,
                         Catch::Message("Invalid file descriptor: -3"));
    CHECK_THROWS_MATCHES(sel.unregister(-1), tulip::ValueError, Catch::Message("Invalid file descriptor: -1"));
    CHECK(sel.get_map().size() == 1);
}

TEMPLATE_TEST_CASE("selectors: modify changes events and data", "[selectors]", SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    Pipe p;
    TestType sel;
    sel.register_(p.w.get(), EVENT_READ, 1);
    CHECK(sel.select(0.0).empty());
    const SelectorKey& key = sel.modify(p.w.get(), EVENT_WRITE, 2);
    CHECK(key.events == EVENT_WRITE);
    CHECK(std::any_cast<int>(key.data) == 2);
    auto ready = sel.select(0.0);
    REQUIRE(ready.size() == 1);
    CHECK(std::any_cast<int>(ready[0].first.data) == 2);
    CHECK(ready[0].second == EVENT_WRITE);

    SECTION("data only") {
        CHECK(std::any_cast<int>(sel.modify(p.w.get(), EVENT_WRITE, 3).data) == 3);
        CHECK(sel.select(0.0).size() == 1);
    }
    SECTION("left out, data is reset, as in Python") {
        CHECK_FALSE(sel.modify(p.w.get(), EVENT_WRITE).data.has_value());
    }
}

TEMPLATE_TEST_CASE("selectors: unregister of an fd that was already closed", "[selectors]", SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    TestType sel;
    Pipe p;
    int fd = p.r.get();
    sel.register_(fd, EVENT_READ);
    p.r.close();
    CHECK(sel.unregister(fd).fd == fd);
    CHECK(sel.get_map().empty());
}

TEMPLATE_TEST_CASE("selectors: keys reported by select stay valid when a handler unregisters", "[selectors]",
                   SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    Pipe a, b;
    TestType sel;
    std::vector<int> calls;
    using Callback = std::function<void(int)>;
    // Each handler unregisters its own fd, which destroys the key (and the std::function) held in
    // the map while that function runs from the key select() returned.
    Callback handler = [&](int fd) {
        sel.unregister(fd);
        calls.push_back(fd);
    };
    sel.register_(a.r.get(), EVENT_READ, handler);
    sel.register_(b.r.get(), EVENT_READ, handler);
    write_byte(a.w.get());
    write_byte(b.w.get());
    for (auto& [key, mask] : sel.select(0.0)) std::any_cast<const Callback&>(key.data)(key.fd);
    std::sort(calls.begin(), calls.end());
    CHECK(calls == std::vector<int>{std::min(a.r.get(), b.r.get()), std::max(a.r.get(), b.r.get())});
    CHECK(sel.get_map().empty());
}

TEMPLATE_TEST_CASE("selectors: objects with fileno()", "[selectors]", SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    Pipe p;
    FileObject w{p.w.get()};
    TestType sel;
    CHECK(sel.register_(w, EVENT_WRITE).fileobj == p.w.get());
    CHECK(sel.get_key(&w).events == EVENT_WRITE);
    CHECK(sel.modify(w, EVENT_READ | EVENT_WRITE).events == (EVENT_READ | EVENT_WRITE));
    CHECK(sel.select(0.0).size() == 1);
    sel.unregister(&w);
    CHECK(sel.get_map().empty());
}

TEMPLATE_TEST_CASE("selectors: close releases everything; a closed selector says so", "[selectors]",
                   SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    Pipe p;
    {
        TestType sel;
        sel.register_(p.r.get(), EVENT_READ);
        sel.close();
        CHECK(sel.get_map().empty());
        auto closed = Catch::Message("Selector is closed");
        CHECK_THROWS_MATCHES(sel.get_key(p.r.get()), tulip::RuntimeError, closed);
        CHECK_THROWS_MATCHES(sel.register_(p.r.get(), EVENT_READ), tulip::RuntimeError, closed);
        CHECK_THROWS_MATCHES(sel.unregister(p.r.get()), tulip::RuntimeError, closed);
        CHECK_THROWS_MATCHES(sel.modify(p.r.get(), EVENT_READ), tulip::RuntimeError, closed);
        CHECK_THROWS_MATCHES(sel.select(0.0), tulip::RuntimeError, closed);
        sel.close();  // again: nothing happens
    }
    {
        TestType sel;  // destroyed while open, with a key registered
        sel.register_(p.r.get(), EVENT_READ);
    }
}

TEMPLATE_TEST_CASE("selectors: a wait interrupted by signals is retried (PEP 475)", "[selectors]",
                   SELECTOR_CLASSES) {
    FdLeakCheck leak_check;
    std::initializer_list<long> syscalls = {
#ifdef SYS_select
        SYS_select,
#endif
#ifdef SYS_poll
        SYS_poll,
#endif
#ifdef SYS_epoll_wait
        SYS_epoll_wait,
#endif
        SYS_pselect6, SYS_ppoll, SYS_epoll_pwait};
    tulip::testing::check_wait_survives_signals(
        [](int fd) {
            TestType sel;
            sel.register_(fd, EVENT_READ);
            std::vector<int> fds;
            for (auto& [key, mask] : sel.select()) fds.push_back(key.fd);
            return fds;
        },
        syscalls);
}

TEST_CASE("selectors: DefaultSelector is EpollSelector on Linux", "[selectors]") {
    STATIC_REQUIRE(std::is_same_v<selectors::DefaultSelector, selectors::EpollSelector>);
}

TEST_CASE("selectors: SelectSelector refuses an fd select() cannot take, when selecting", "[selectors]") {
    selectors::SelectSelector sel;
    sel.register_(5000, EVENT_READ);  // as in Python, accepted here, refused by select()
    CHECK_THROWS_MATCHES(sel.select(0.0), tulip::ValueError, Catch::Message("filedescriptor out of range in select()"));
}

TEST_CASE("selectors: EpollSelector releases its fd on close and keeps no key the kernel refused",
          "[selectors]") {
    FdLeakCheck leak_check;
    selectors::EpollSelector sel;
    int epfd = sel.fileno();
    CHECK(::fcntl(epfd, F_GETFD) != -1);

    OwnedFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    REQUIRE(devnull.get() >= 0);
    CHECK_THROWS_AS(sel.register_(devnull.get(), EVENT_READ), tulip::PermissionError);
    CHECK(sel.get_map().empty());

    Pipe p;
    sel.register_(p.r.get(), EVENT_READ);
    int fd = p.r.get();
    p.r.close();
    CHECK_THROWS_AS(sel.modify(fd, EVENT_WRITE), tulip::OSError);  // EBADF: the key is dropped
    CHECK(sel.get_map().empty());

    sel.close();
    CHECK(::fcntl(epfd, F_GETFD) == -1);
    CHECK_THROWS_AS(sel.fileno(), tulip::ValueError);
}
