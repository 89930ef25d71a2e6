// The waits of the loop's sock_* methods (detail::FdReadyAwaiter) and the registration epoll
// keeps for them between waits (docs/backends.md, "The loop's sock_* operations"): a steady
// loop stays registered and keeps delivering; a cancelled wait consumes nothing; a closed fd
// whose number is reused, even while a duplicate keeps the old file, gets the new file's
// events; add_reader after such waits is level-triggered again. Every case runs on every
// backend; what /proc says about the epoll set is checked on epoll only.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "loop_fixture.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Socket;
using tulip::testing::LoopFixture;
using namespace std::chrono_literals;

namespace {

constexpr auto kHang = 10s;  // only to turn a hang into a failure

// One item of an epoll interest list, as /proc/self/fdinfo/<epfd> shows it.
struct EpollItem {
    std::uint32_t events = 0;
    std::uint64_t data = 0;
};

// The items for `fd` in every epoll set of this process (the fixture's loop has one).
std::vector<EpollItem> epoll_items(int fd) {
    std::vector<EpollItem> found;
    for (const auto& link : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        if (std::filesystem::read_symlink(link.path(), ec).string() != "anon_inode:[eventpoll]") continue;
        std::ifstream info("/proc/self/fdinfo/" + link.path().filename().string());
        for (std::string line; std::getline(info, line);) {
            std::istringstream in(line);
            std::string key, events_key, data_key;
            int tfd = -1;
            EpollItem item;
            if (!(in >> key >> tfd >> events_key >> std::hex >> item.events >> data_key >> item.data)) continue;
            if (key == "tfd:" && tfd == fd) found.push_back(item);
        }
    }
    return found;
}

bool on_epoll(asyncio::EventLoop& loop) { return loop.backend_name() == "epoll"; }

std::uint32_t token_of(const EpollItem& item) { return static_cast<std::uint32_t>(item.data >> 32); }

// Lets the loop run a few iterations (each sleep(0) is one), so that it asks the kernel.
asyncio::Coro<> iterations(int n) {
    for (int i = 0; i < n; ++i) co_await asyncio::sleep(0);
}

// Moves sock's file to fd number `number` (closing what the number held) and returns it there.
Socket move_to_number(Socket sock, int number) {
    REQUIRE(sock.fileno() != number);
    REQUIRE(::dup3(sock.fileno(), number, O_CLOEXEC) == number);
    Socket moved(Socket::Fileno{number});
    moved.setblocking(false);
    return moved;
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "fd wait: a steady sock_recv loop stays registered and delivers", "[fd_wait]") {
    auto [client, server] = tulip::socket::socketpair();
    client.setblocking(false);
    server.setblocking(false);
    constexpr int kRounds = 200;
    int registered_between_waits = 0;
    auto serve = [&]() -> asyncio::Coro<> {
        for (int i = 0; i < kRounds; ++i) {
            std::string data = co_await loop().sock_recv(server, 64);
            REQUIRE(data == "ping " + std::to_string(i));
            if (i > 0 && on_epoll(loop())) {
                // No wait is pending now: the registration of the last one (every recv after the
                // first waits, since the client sends only once it has the reply) stayed,
                // edge-triggered and naming this socket.
                auto items = epoll_items(server.fileno());
                CHECK(items.size() == 1);
                if (items.size() == 1 && (items[0].events & (1u << 31)) != 0 &&
                    token_of(items[0]) == static_cast<std::uint32_t>(server.open_id()))
                    ++registered_between_waits;
            }
            co_await loop().sock_sendall(server, "pong " + std::to_string(i));
        }
    };
    auto body = [&]() -> asyncio::Coro<> {
        auto serving = asyncio::create_task(serve());
        for (int i = 0; i < kRounds; ++i) {
            co_await loop().sock_sendall(client, "ping " + std::to_string(i));
            std::string reply = co_await asyncio::wait_for(loop().sock_recv(client, 64), kHang);
            REQUIRE(reply == "pong " + std::to_string(i));
        }
        co_await serving;
    };
    run(body());
    if (on_epoll(loop())) CHECK(registered_between_waits == kRounds - 1);  // EPOLLET and the token
}

TEST_CASE_METHOD(LoopFixture, "fd wait: a cancelled wait consumes nothing, and the next wait is woken",
                 "[fd_wait]") {
    auto [a, b] = tulip::socket::socketpair();
    a.setblocking(false);
    b.setblocking(false);
    auto body = [&]() -> asyncio::Coro<> {
        auto waiting = asyncio::create_task(loop().sock_recv(b, 64));
        co_await iterations(2);  // the recv is waiting now
        REQUIRE_FALSE(waiting.done());
        waiting.cancel();
        bool cancelled = false;
        try {
            co_await waiting;
        } catch (const asyncio::CancelledError&) {
            cancelled = true;
        }
        CHECK(cancelled);

        // Data comes while no one waits: epoll reports the kept registration with no wait on it.
        a.sendall(std::string_view("first"));
        co_await iterations(3);
        char peek[16];
        CHECK(::recv(b.fileno(), peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT) == 5);  // still there
        auto got1 = co_await asyncio::wait_for(loop().sock_recv(b, 64), kHang);
        CHECK(got1 == "first");

        // A new wait on the drained socket is woken by the next message.
        auto next = asyncio::create_task(loop().sock_recv(b, 64));
        co_await iterations(3);
        REQUIRE_FALSE(next.done());
        a.sendall(std::string_view("second"));
        auto got2 = co_await asyncio::wait_for(next, kHang);
        CHECK(got2 == "second");
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "fd wait: a closed fd's number reused by a new socketpair gets the new socket's events",
                 "[fd_wait]") {
    auto [a1, b1] = tulip::socket::socketpair();
    a1.setblocking(false);
    b1.setblocking(false);
    const int number = b1.fileno();
    auto body = [&]() -> asyncio::Coro<> {
        // b1 waits once and is left registered (on epoll), then closed: the kernel drops it.
        auto first = asyncio::create_task(loop().sock_recv(b1, 64));
        co_await iterations(2);
        a1.sendall(std::string_view("old"));
        auto got3 = co_await asyncio::wait_for(first, kHang);
        CHECK(got3 == "old");
        // The new pair is made while b1 holds the number, so that only b2 is moved onto it.
        auto [a2, fresh] = tulip::socket::socketpair();
        a2.setblocking(false);
        b1.close();
        a1.close();
        Socket b2 = move_to_number(std::move(fresh), number);
        CHECK(b2.open_id() != 0);
        auto waiting = asyncio::create_task(loop().sock_recv(b2, 64));
        co_await iterations(3);
        REQUIRE_FALSE(waiting.done());  // no stale event woke it with nothing to read
        a2.sendall(std::string_view("new"));
        auto got4 = co_await asyncio::wait_for(waiting, kHang);
        CHECK(got4 == "new");
        if (on_epoll(loop())) {
            auto items = epoll_items(number);
            REQUIRE(items.size() == 1);
            CHECK(token_of(items[0]) == static_cast<std::uint32_t>(b2.open_id()));
        }
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "fd wait: a number reused while a duplicate keeps the old file registered",
                 "[fd_wait]") {
    auto [a1, b1] = tulip::socket::socketpair();
    a1.setblocking(false);
    b1.setblocking(false);
    const int number = b1.fileno();
    const auto old_token = static_cast<std::uint32_t>(b1.open_id());
    int keep = -1;
    auto body = [&]() -> asyncio::Coro<> {
        auto first = asyncio::create_task(loop().sock_recv(b1, 64));
        co_await iterations(2);
        a1.sendall(std::string_view("old"));
        auto got5 = co_await asyncio::wait_for(first, kHang);
        CHECK(got5 == "old");
        keep = ::fcntl(b1.fileno(), F_DUPFD_CLOEXEC, 0);  // the old file outlives b1's close
        REQUIRE(keep >= 0);
        auto [a2, fresh] = tulip::socket::socketpair();
        a2.setblocking(false);
        b1.close();
        Socket b2 = move_to_number(std::move(fresh), number);
        auto waiting = asyncio::create_task(loop().sock_recv(b2, 64));
        co_await iterations(3);
        // The old file gets data: its item (still in the set, under the same number) reports
        // it, and the new socket's wait must not take that for its own.
        a1.sendall(std::string_view("stale"));
        co_await iterations(3);
        REQUIRE_FALSE(waiting.done());
        a2.sendall(std::string_view("new"));
        auto got6 = co_await asyncio::wait_for(waiting, kHang);
        CHECK(got6 == "new");
        if (on_epoll(loop())) {
            // The new file's registration names b2; what is left of the old one is edge-triggered,
            // so it cannot keep the loop busy (libuv #1148).
            bool found_new = false;
            for (const EpollItem& item : epoll_items(number)) {
                if (token_of(item) == static_cast<std::uint32_t>(b2.open_id())) found_new = true;
                if (token_of(item) == old_token) CHECK((item.events & (1u << 31)) != 0);
            }
            CHECK(found_new);
        }
        char buf[16];
        CHECK(::recv(keep, buf, sizeof buf, MSG_DONTWAIT) == 5);  // the old file kept its bytes
    };
    run(body());
    ::close(keep);
}

TEST_CASE_METHOD(LoopFixture, "fd wait: add_reader after sock_* waits, remove_reader, then waits again",
                 "[fd_wait]") {
    auto [a, b] = tulip::socket::socketpair();
    a.setblocking(false);
    b.setblocking(false);
    const int fd = b.fileno();
    auto body = [&]() -> asyncio::Coro<> {
        // A wait woken by "12" reads one byte: "2" stays, and its edge has been reported.
        auto first = asyncio::create_task(loop().sock_recv(b, 1));
        co_await iterations(2);
        a.sendall(std::string_view("12"));
        auto got1 = co_await asyncio::wait_for(first, kHang);
        CHECK(got1 == "1");

        // add_reader with that byte waiting: level-triggered, it must fire at once (the edge
        // registration kept from the wait above would never report it again).
        auto fired = loop().create_future<int>();
        int calls = 0;
        loop().add_reader(fd, [&] {
            if (++calls == 1) fired.set_result(1);
        });
        auto fired_with = co_await asyncio::wait_for(fired, kHang);
        CHECK(fired_with == 1);
        CHECK(loop().remove_reader(fd));
        CHECK_FALSE(loop().remove_reader(fd));
        std::string second = co_await loop().sock_recv(b, 64);
        CHECK(second == "2");  // add_reader read nothing

        // Back to sock_* waits on the same fd.
        auto again = asyncio::create_task(loop().sock_recv(b, 64));
        co_await iterations(3);
        REQUIRE_FALSE(again.done());
        a.sendall(std::string_view("3"));
        auto got9 = co_await asyncio::wait_for(again, kHang);
        CHECK(got9 == "3");

        // And add_reader once more on an fd that is idle, then fed.
        auto fired2 = loop().create_future<int>();
        int calls2 = 0;
        loop().add_reader(fd, [&] {
            if (++calls2 == 1) fired2.set_result(2);
        });
        co_await iterations(2);
        CHECK(calls2 == 0);
        a.sendall(std::string_view("4"));
        auto got10 = co_await asyncio::wait_for(fired2, kHang);
        CHECK(got10 == 2);
        CHECK(loop().remove_reader(fd));
        auto got11 = co_await loop().sock_recv(b, 64);
        CHECK(got11 == "4");
    };
    run(body());
}
