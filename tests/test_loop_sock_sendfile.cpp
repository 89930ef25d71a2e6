// EventLoop::sock_sendfile (Python's loop.sock_sendfile), on every backend: sendfile(2) with
// waits for writability, offset and count, the read-and-send fallback, errors and cancellation.
#include <fcntl.h>
#include <unistd.h>

#include <random>
#include <string>

#include "loop_fixture.hpp"
#include "socket_helpers.hpp"
#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using tulip::socket::Socket;
using tulip::testing::LoopFixture;
using tulip::testing::OwnedFd;
using tulip::testing::TempDir;

namespace {

std::string pattern(std::size_t size) {
    std::mt19937 gen(4);
    std::string data(size, '\0');
    for (auto& c : data) c = static_cast<char>(gen());
    return data;
}

// A regular file holding `content`, opened read-only.
OwnedFd file_with(const TempDir& dir, const std::string& content) {
    std::string path = dir.file("data");
    OwnedFd w(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    REQUIRE(w.get() >= 0);
    REQUIRE(::write(w.get(), content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    OwnedFd r(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(r.get() >= 0);
    return r;
}

::off_t position(const OwnedFd& fd) { return ::lseek(fd.get(), 0, SEEK_CUR); }

// A connected pair of non-blocking AF_UNIX stream sockets.
std::pair<Socket, Socket> nonblocking_pair() {
    auto pair = tulip::socket::socketpair();
    pair.first.setblocking(false);
    pair.second.setblocking(false);
    return pair;
}

// Reads from a non-blocking socket on the loop until end of stream, `chunk` bytes at a time,
// letting the other tasks run between reads (a slow reader).
asyncio::Coro<std::string> read_to_eof(asyncio::EventLoop& loop, Socket& s, std::size_t chunk) {
    std::string data;
    for (;;) {
        std::string part = co_await loop.sock_recv(s, chunk);
        if (part.empty()) co_return data;
        data += part;
        co_await asyncio::sleep(0);
    }
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "loop sock_sendfile: 8 MiB over TCP to a slow reader", "[loop_sock][sendfile]") {
    TempDir dir;
    const std::string content = pattern(8 << 20);
    OwnedFd file = file_with(dir, content);
    Socket listener = tulip::socket::create_server("127.0.0.1", 0);
    listener.setsockopt(SOL_SOCKET, SO_RCVBUF, 16384);  // accepted sockets inherit it
    Socket sender(AF_INET, SOCK_STREAM);
    sender.setsockopt(SOL_SOCKET, SO_SNDBUF, 16384);  // so the sender must wait, many times
    sender.connect(listener.getsockname());
    sender.setblocking(false);
    auto [receiver, peer] = listener.accept();
    receiver.setblocking(false);
    auto body = [&]() -> asyncio::Coro<std::string> {
        auto reading = asyncio::create_task(read_to_eof(loop(), receiver, 4096));
        std::size_t sent = co_await loop().sock_sendfile(sender, file.get());
        CHECK(sent == content.size());
        sender.shutdown(SHUT_WR);
        co_return co_await reading;
    };
    std::string received = run(body());
    CHECK(received.size() == content.size());
    CHECK(received == content);
    CHECK(position(file) == static_cast<::off_t>(content.size()));  // Python: just after what was sent
}

TEST_CASE_METHOD(LoopFixture, "loop sock_sendfile: offset and count", "[loop_sock][sendfile]") {
    TempDir dir;
    const std::string content = pattern(100000);
    OwnedFd file = file_with(dir, content);
    auto [a, b] = nonblocking_pair();
    auto body = [&]() -> asyncio::Coro<> {
        auto reading = asyncio::create_task(read_to_eof(loop(), b, 65536));
        std::size_t n1 = co_await loop().sock_sendfile(a, file.get(), 10, 100);
        CHECK(n1 == 100);
        CHECK(position(file) == 110);
        std::size_t n2 = co_await loop().sock_sendfile(a, file.get(), 99000);  // to the end
        CHECK(n2 == 1000);
        CHECK(position(file) == 100000);
        ::lseek(file.get(), 5, SEEK_SET);
        std::size_t n3 = co_await loop().sock_sendfile(a, file.get(), 200000);  // past the end
        CHECK(n3 == 0);
        CHECK(position(file) == 5);  // nothing sent: the position is left alone, as in Python
        std::size_t n4 = co_await loop().sock_sendfile(a, file.get(), 99990, 500);  // count past the end
        CHECK(n4 == 10);
        a.shutdown(SHUT_WR);
        std::string received = co_await reading;
        CHECK(received == content.substr(10, 100) + content.substr(99000) + content.substr(99990));
    };
    run(body());
}

TEST_CASE_METHOD(LoopFixture, "loop sock_sendfile: a pipe falls back to reading and sending", "[loop_sock][sendfile]") {
    const std::string content = pattern(300000);  // more than a pipe holds: the reads must wait
    auto [a, b] = nonblocking_pair();
    SECTION("non-blocking pipe: read on the loop, waiting for data") {
        tulip::testing::Pipe pipe;
        auto writer = [&]() -> asyncio::Coro<> {
            std::size_t off = 0;
            while (off < content.size()) {
                std::size_t piece = std::min<std::size_t>(content.size() - off, 50000);
                ssize_t n = ::write(pipe.w.get(), content.data() + off, piece);
                if (n > 0) off += static_cast<std::size_t>(n);
                co_await asyncio::sleep(0);
            }
            pipe.w.close();
        };
        auto body = [&]() -> asyncio::Coro<> {
            auto reading = asyncio::create_task(read_to_eof(loop(), b, 65536));
            auto writing = asyncio::create_task(writer());
            std::size_t sent = co_await loop().sock_sendfile(a, pipe.r.get());
            CHECK(sent == content.size());
            co_await writing;
            a.shutdown(SHUT_WR);
            std::string received = co_await reading;
            CHECK(received == content);
        };
        run(body());
    }
    SECTION("blocking pipe: read on the executor, stopping at count") {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        OwnedFd r(fds[0]), w(fds[1]);
        const std::string small = content.substr(0, 60000);  // fits in the pipe: written up front
        REQUIRE(::write(w.get(), small.data(), small.size()) == static_cast<ssize_t>(small.size()));
        w.close();
        auto body = [&]() -> asyncio::Coro<> {
            auto reading = asyncio::create_task(read_to_eof(loop(), b, 65536));
            std::size_t sent = co_await loop().sock_sendfile(a, r.get(), 0, 40000);
            CHECK(sent == 40000);
            std::size_t rest = co_await loop().sock_sendfile(a, r.get());
            CHECK(rest == 20000);
            a.shutdown(SHUT_WR);
            std::string received = co_await reading;
            CHECK(received == small);
        };
        run(body());
    }
    SECTION("fallback = false: SendfileNotAvailableError, nothing read") {
        tulip::testing::Pipe pipe;
        REQUIRE(::write(pipe.w.get(), "abc", 3) == 3);
        auto body = [&]() -> asyncio::Coro<> {
            co_await loop().sock_sendfile(a, pipe.r.get(), 0, std::nullopt, /*fallback=*/false);
        };
        CHECK_THROWS_AS(run(body()), asyncio::SendfileNotAvailableError);
        CHECK_THROWS_WITH(run(body()), Catch::Matchers::Contains("not a regular file"));
        char buf[4];
        CHECK(::read(pipe.r.get(), buf, sizeof buf) == 3);
    }
    SECTION("an offset in an unseekable file is an error") {
        tulip::testing::Pipe pipe;
        auto body = [&]() -> asyncio::Coro<> { co_await loop().sock_sendfile(a, pipe.r.get(), 5); };
        CHECK_THROWS_AS(run(body()), tulip::OSError);
        CHECK_THROWS_WITH(run(body()), Catch::Matchers::Contains("unseekable"));
    }
}

TEST_CASE_METHOD(LoopFixture, "loop sock_sendfile: bad arguments are refused", "[loop_sock][sendfile]") {
    TempDir dir;
    OwnedFd file = file_with(dir, "data");
    auto [a, b] = nonblocking_pair();
    auto send = [&](Socket& s, std::optional<std::size_t> count) -> asyncio::Coro<std::size_t> {
        co_return co_await loop().sock_sendfile(s, file.get(), 0, count);
    };
    CHECK_THROWS_WITH(run(send(a, 0)), "sock_sendfile: count must be a positive integer (got 0)");
    Socket udp(AF_INET, SOCK_DGRAM);
    udp.setblocking(false);
    CHECK_THROWS_WITH(run(send(udp, 1)), "sock_sendfile: only SOCK_STREAM type sockets are supported");
    auto [c, d] = tulip::socket::socketpair();
    CHECK_THROWS_AS(run(send(c, 1)), tulip::ValueError);  // blocking
    auto bad_fd = [&]() -> asyncio::Coro<> { co_await loop().sock_sendfile(a, -1); };
    CHECK_THROWS_AS(run(bad_fd()), tulip::OSError);
}

TEST_CASE_METHOD(LoopFixture, "loop sock_sendfile: a peer that has gone gives an error, not SIGPIPE",
                 "[loop_sock][sendfile]") {
    TempDir dir;
    OwnedFd file = file_with(dir, pattern(1 << 20));
    auto [a, b] = nonblocking_pair();
    b.close();
    auto body = [&]() -> asyncio::Coro<> { co_await loop().sock_sendfile(a, file.get()); };
    CHECK_THROWS_AS(run(body()), tulip::BrokenPipeError);  // the process is still alive
}

TEST_CASE_METHOD(LoopFixture, "loop sock_sendfile: cancelled mid-transfer", "[loop_sock][sendfile][cancel]") {
    TempDir dir;
    const std::string content = pattern(4 << 20);  // far more than the socket pair buffers
    OwnedFd file = file_with(dir, content);
    auto [a, b] = nonblocking_pair();
    auto body = [&]() -> asyncio::Coro<> {
        auto sending = asyncio::create_task(loop().sock_sendfile(a, file.get(), 1000));
        co_await asyncio::sleep(0);  // it has filled the buffers and waits for writability
        CHECK_FALSE(sending.done());
        sending.cancel();
        CHECK_THROWS_AS(co_await sending, asyncio::CancelledError);
        // The position says how much went; the socket is still usable, and the reader gets
        // exactly that prefix, then what is sent next.
        ::off_t at = position(file);
        REQUIRE(at > 1000);
        REQUIRE(at < static_cast<::off_t>(content.size()));
        auto reading = asyncio::create_task(read_to_eof(loop(), b, 65536));
        co_await loop().sock_sendall(a, std::string_view("tail"));
        a.shutdown(SHUT_WR);
        std::string received = co_await reading;
        CHECK(received.size() == static_cast<std::size_t>(at - 1000) + 4);
        CHECK(received == content.substr(1000, static_cast<std::size_t>(at - 1000)) + "tail");
    };
    run(body());
}
