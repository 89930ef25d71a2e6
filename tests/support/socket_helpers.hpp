// The tests' fd helpers, in one place: owned fds, pipes and socket pairs that close themselves,
// an fd-leak check, a temporary directory for Unix socket paths, IPv6 detection, exact reads,
// and a listener whose connect()s are known to be refused.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>

#include "loop_fixture.hpp"
#include "tulip/socket.hpp"

namespace tulip::testing {

// Fails the test when it ends with more or fewer open fds than it started with (reliability
// check 2). Declared first in a test, so that everything else is destroyed before it checks.
class NoFdLeak {
public:
    NoFdLeak() : at_start_(open_fd_count()) {}
    ~NoFdLeak() noexcept(false) {
        if (std::uncaught_exceptions() == 0) CHECK(open_fd_count() == at_start_);
    }
    NoFdLeak(const NoFdLeak&) = delete;
    NoFdLeak& operator=(const NoFdLeak&) = delete;

private:
    std::size_t at_start_;
};
// The name the select and selectors tests use.
using FdLeakCheck = NoFdLeak;

// An owned raw fd, closed at scope exit (or by close()).
class OwnedFd {
public:
    OwnedFd() = default;
    explicit OwnedFd(int fd) noexcept : fd_(fd) {}
    OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    OwnedFd& operator=(OwnedFd&& other) noexcept {
        std::swap(fd_, other.fd_);
        return *this;
    }
    ~OwnedFd() { close(); }
    int get() const noexcept { return fd_; }
    // Gives the fd up without closing it.
    int release() noexcept { return std::exchange(fd_, -1); }
    void close() noexcept {
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    }

private:
    int fd_ = -1;
};

// A non-blocking, close-on-exec pipe: `r` the read end, `w` the write end.
struct Pipe {
    OwnedFd r, w;
    Pipe() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
        r = OwnedFd(fds[0]);
        w = OwnedFd(fds[1]);
    }
};

// A connected, non-blocking, close-on-exec AF_UNIX socket pair (SOCK_STREAM by default).
struct SocketPair {
    OwnedFd a, b;
    explicit SocketPair(int type = SOCK_STREAM) {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0);
        a = OwnedFd(fds[0]);
        b = OwnedFd(fds[1]);
    }
};

inline void write_byte(int fd, char c = 'x') { REQUIRE(::write(fd, &c, 1) == 1); }

inline char read_byte(int fd) {
    char c = 0;
    REQUIRE(::read(fd, &c, 1) == 1);
    return c;
}

// A fresh directory under $TMPDIR (or /tmp), removed with its contents at the end.
class TempDir {
public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base && *base ? base : "/tmp") + "/tulip-socket-XXXXXX";
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

// Whether ::1 can be bound here (containers may have IPv6 disabled).
inline bool have_ipv6_loopback() {
    try {
        socket::Socket s(AF_INET6, SOCK_STREAM);
        s.bind(socket::Address::ipv6("::1", 0));
        return true;
    } catch (const OSError&) {
        return false;
    }
}

// Reads exactly n bytes (a stream may deliver them in pieces); fewer only at end of stream.
inline std::string recv_exactly(socket::Socket& s, std::size_t n) {
    std::string data;
    while (data.size() < n) {
        std::string chunk = s.recv(n - data.size());
        if (chunk.empty()) break;
        data += chunk;
    }
    return data;
}

// Reads until end of stream.
inline std::string recv_all(socket::Socket& s) {
    std::string data;
    for (;;) {
        std::string chunk = s.recv(65536);
        if (chunk.empty()) return data;
        data += chunk;
    }
}

// A TCP port on 127.0.0.1 that is bound but not listening, held for the test's lifetime: a
// connect() to it is refused (RST), and no other process can start listening on it meanwhile.
class RefusingPort {
public:
    RefusingPort() : sock_(AF_INET, SOCK_STREAM) { sock_.bind(socket::Address::ipv4("127.0.0.1", 0)); }
    socket::Address address() const { return sock_.getsockname(); }

private:
    socket::Socket sock_;
};

}  // namespace tulip::testing
