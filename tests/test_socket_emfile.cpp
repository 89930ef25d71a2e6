// Out of fds on accept (reliability check 6, the part below transports): with the process's
// RLIMIT_NOFILE reached, Socket::accept and loop.sock_accept raise OSError(EMFILE) with a message
// that says so, at once (no busy wait), and the listener accepts the queued connections once the
// limit is raised again. The limit is lowered in a forked child, so this test process keeps its own.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <string>
#include <vector>

#include "socket_helpers.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Socket;

namespace {

// Runs body() in a forked child and returns what it returned: "" for success, else what went
// wrong. No Catch2 macros run in the child; it reports through a pipe and _exit()s.
std::string in_child(const std::function<std::string()>& body) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    tulip::testing::OwnedFd r(fds[0]), w(fds[1]);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        r.close();
        std::string report;
        try {
            report = body();
        } catch (const std::exception& e) {
            report = std::string("unexpected exception: ") + e.what();
        } catch (...) {
            report = "unexpected exception";
        }
        std::size_t off = 0;
        while (off < report.size()) {
            ssize_t n = ::write(w.get(), report.data() + off, report.size() - off);
            if (n <= 0) break;
            off += static_cast<std::size_t>(n);
        }
        ::_exit(0);
    }
    w.close();
    std::string report;
    char buf[512];
    for (;;) {
        ssize_t n = ::read(r.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        report.append(buf, static_cast<std::size_t>(n));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    CHECK(WIFEXITED(status));
    return report;
}

// Lowers the soft RLIMIT_NOFILE to the lowest free fd number: every fd below it is in use, so
// the next fd anyone asks for fails with EMFILE. The destructor puts the old limit back.
class NoFreeFd {
public:
    NoFreeFd() {
        ::getrlimit(RLIMIT_NOFILE, &old_);
        int lowest = ::dup(0);
        ::close(lowest);
        ::rlimit low = old_;
        low.rlim_cur = static_cast<rlim_t>(lowest);
        ok_ = lowest >= 0 && ::setrlimit(RLIMIT_NOFILE, &low) == 0;
    }
    ~NoFreeFd() { raise_again(); }
    NoFreeFd(const NoFreeFd&) = delete;
    NoFreeFd& operator=(const NoFreeFd&) = delete;
    bool ok() const { return ok_; }
    void raise_again() { ::setrlimit(RLIMIT_NOFILE, &old_); }

private:
    ::rlimit old_{};
    bool ok_ = false;
};

// "" if `accept` throws OSError(EMFILE) with the clear message, else what it did instead.
std::string expect_emfile(const std::function<void()>& accept) {
    try {
        accept();
        return "accept succeeded with no fd free";
    } catch (const tulip::OSError& e) {
        std::string what = e.what();
        if (e.errno_value() != EMFILE) return "accept raised errno " + std::to_string(e.errno_value()) + ": " + what;
        if (what.rfind("accept (the process's open-file limit, RLIMIT_NOFILE, is reached", 0) != 0 ||
            what.find("Too many open files") == std::string::npos)
            return "unclear message: " + what;
        return "";
    }
}

}  // namespace

TEST_CASE("socket: accept with no fd free raises EMFILE, and the listener recovers", "[socket][emfile]") {
    tulip::testing::NoFdLeak no_leak;
    std::string report = in_child([]() -> std::string {
        Socket listener = tulip::socket::create_server("127.0.0.1", 0);
        listener.settimeout(30.0);  // a hang would be a TimeoutError, not a stuck test
        Socket client = tulip::socket::create_connection("127.0.0.1", listener.getsockname().port());
        NoFreeFd limit;
        if (!limit.ok()) return "could not lower RLIMIT_NOFILE";
        if (auto failure = expect_emfile([&] { listener.accept(); }); !failure.empty()) return failure;
        if (auto failure = expect_emfile([&] { listener.accept(); }); !failure.empty()) return "again: " + failure;
        limit.raise_again();
        auto [conn, peer] = listener.accept();  // the same connection, still queued
        if (peer != client.getsockname()) return "accepted " + peer.to_string() + ", not the client";
        conn.sendall("ok");
        if (client.recv(2) != "ok") return "the accepted connection does not work";
        return "";
    });
    CHECK(report == "");
}

TEST_CASE("loop sock_accept: no fd free raises EMFILE at once, and the listener recovers",
          "[loop_sock][emfile]") {
    tulip::testing::NoFdLeak no_leak;
    std::string report = in_child([]() -> std::string {
        asyncio::EventLoop loop;  // the child's own loop, on TULIP_BACKEND's backend
        Socket listener = tulip::socket::create_server("127.0.0.1", 0);
        listener.setblocking(false);
        Socket client = tulip::socket::create_connection("127.0.0.1", listener.getsockname().port());
        std::string failure;
        {
            NoFreeFd limit;
            if (!limit.ok()) return "could not lower RLIMIT_NOFILE";
            auto accept = [&]() -> asyncio::Coro<> { co_await loop.sock_accept(listener); };
            failure = expect_emfile([&] { loop.run_until_complete(accept()); });
            if (!failure.empty()) return failure;
            if (loop.stats().pending_ops != 0 || loop.stats().live_tasks != 0)
                return "the failed accept left work behind";
        }
        // run_until_complete copies its result, so the accepted Socket (move-only) is kept here.
        std::vector<Socket> accepted;
        auto accept = [&]() -> asyncio::Coro<tulip::socket::Address> {
            auto [conn, peer] = co_await loop.sock_accept(listener);
            accepted.push_back(std::move(conn));
            co_return peer;
        };
        tulip::socket::Address peer = loop.run_until_complete(accept());
        if (peer != client.getsockname()) return "accepted " + peer.to_string() + ", not the client";
        // And a connection made after the limit was raised is accepted too.
        Socket second = tulip::socket::create_connection("127.0.0.1", listener.getsockname().port());
        tulip::socket::Address peer2 = loop.run_until_complete(accept());
        if (peer2 != second.getsockname()) return "second accept got " + peer2.to_string();
        loop.close();
        return "";
    });
    CHECK(report == "");
}
