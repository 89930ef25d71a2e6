// Socket::makefile (Python's socket.makefile): reads, lines, buffered writes, closing, timeouts.
#include <cerrno>
#include <string>

#include "socket_helpers.hpp"
#include "tulip/socket.hpp"

namespace {
namespace socket = tulip::socket;
}  // namespace
using socket::Socket;
using socket::SocketFile;
using tulip::testing::NoFdLeak;

TEST_CASE("socket makefile: read, readline and read to the end", "[socket][makefile]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    SocketFile f = a.makefile("rb");
    CHECK(f.readable());
    CHECK_FALSE(f.writable());
    CHECK(f.mode() == "rb");
    b.sendall("line one\nline two\nrest");
    b.shutdown(SHUT_WR);
    CHECK(f.readline() == "line one\n");
    CHECK(f.read(4) == "line");
    CHECK(f.readline() == " two\n");
    CHECK(f.readline(2) == "re");  // the limit cuts the line
    CHECK(f.read() == "st");
    CHECK(f.read() == "");
    CHECK(f.readline() == "");
}

TEST_CASE("socket makefile: read(n) gathers n bytes sent in pieces", "[socket][makefile]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    SocketFile f = a.makefile("r", 4);  // a small buffer: many recv()s
    b.sendall("abc");
    b.sendall("defgh");
    b.sendall("ij");
    CHECK(f.read(10) == "abcdefghij");
    b.close();
    CHECK(f.read(5) == "");  // end of stream
}

TEST_CASE("socket makefile: writes are buffered until flush or close", "[socket][makefile]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    b.setblocking(false);
    SocketFile f = a.makefile("w");
    CHECK(f.write("hello, ") == 7);
    CHECK_THROWS_AS(b.recv(100), tulip::BlockingIOError);  // nothing sent yet
    f.write("file");
    f.flush();
    CHECK(b.recv(100) == "hello, file");
    f.write("bye");
    f.close();
    CHECK(f.closed());
    CHECK(b.recv(100) == "bye");
    f.close();  // a second close does nothing
    SECTION("a write larger than the buffer goes at once") {
        SocketFile g = a.makefile("wb", 16);
        std::string big(100, 'x');
        g.write(big);
        CHECK(b.recv(1000) == big);
    }
    SECTION("the destructor flushes") {
        {
            SocketFile g = a.makefile("w");
            g.write("last words");
        }
        CHECK(b.recv(100) == "last words");
    }
}

TEST_CASE("socket makefile: the socket stays usable for its owner", "[socket][makefile]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    SECTION("closing the file leaves the socket open") {
        SocketFile f = a.makefile("rw");
        f.write("via file");
        f.close();
        a.sendall(" and socket");
        CHECK(tulip::testing::recv_exactly(b, 19) == "via file and socket");
    }
    SECTION("closing the socket first leaves the file working") {
        SocketFile f = a.makefile("rwb");
        a.close();
        f.write("ping");
        f.flush();
        CHECK(tulip::testing::recv_exactly(b, 4) == "ping");
        b.sendall("pong\n");
        CHECK(f.readline() == "pong\n");
    }
    SECTION("unbuffered readline takes nothing past the newline") {
        SocketFile f = a.makefile("rb", 0);
        b.sendall("one\ntwo\n");
        CHECK(f.readline() == "one\n");
        CHECK(tulip::testing::recv_exactly(a, 4) == "two\n");  // still in the socket for the owner
        b.sendall("abcdef");
        CHECK(f.read(100).size() <= 6);  // raw read: one recv
    }
}

TEST_CASE("socket makefile: a timeout loses nothing", "[socket][makefile]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    a.settimeout(0.05);
    SocketFile f = a.makefile("rb");
    b.sendall("par");
    CHECK_THROWS_AS(f.read(10), tulip::TimeoutError);
    b.sendall("tial!!!");
    CHECK(f.read(10) == "partial!!!");
    b.sendall("no newline");
    CHECK_THROWS_AS(f.readline(), tulip::TimeoutError);
    b.sendall(" yet\n");
    CHECK(f.readline() == "no newline yet\n");
}

TEST_CASE("socket makefile: bad modes and misuse are refused", "[socket][makefile]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    CHECK_THROWS_WITH(a.makefile("rx"), "makefile: invalid mode 'rx' (only r, w, b allowed)");
    CHECK_THROWS_AS(a.makefile(""), tulip::ValueError);
    CHECK_THROWS_AS(a.makefile("b"), tulip::ValueError);
    CHECK_THROWS_WITH(a.makefile("r", 0), "makefile: unbuffered streams must be binary");
    SocketFile r = a.makefile("r");
    try {
        r.write("x");
        FAIL("wrote to a read-only file");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == EBADF);
        CHECK_THAT(e.what(), Catch::Matchers::StartsWith("write: File not open for writing"));
    }
    SocketFile w = a.makefile("w");
    CHECK_THROWS_AS(w.read(1), tulip::OSError);
    r.close();
    CHECK_THROWS_WITH(r.read(1), "read: I/O operation on closed file");
    a.setblocking(false);
    CHECK_THROWS_WITH(a.makefile("r"), "makefile: the socket must be in blocking or timeout mode");
    Socket closed;
    CHECK_THROWS_AS(closed.makefile("r"), tulip::OSError);
}
