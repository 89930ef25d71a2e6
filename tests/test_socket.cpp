// tulip::socket: Address and the Socket object over loopback (after CPython's test_socket:
// GeneralModuleTests, BasicTCPTest, BasicUDPTest, BasicSocketPairTest, NetworkConnectionNoServer,
// TCPTimeoutTest, UDPTimeoutTest, SCMRightsTest).
//
// Everything is loopback: 127.0.0.1, ::1 (skipped where IPv6 is off), Unix paths in a temporary
// directory and abstract names. Nothing waits with a sleep; timeouts are tested on sockets that
// nobody will ever make ready, and no test asserts on elapsed time.
#include "tulip/socket.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <thread>

#include "socket_helpers.hpp"

namespace {
namespace socket = tulip::socket;  // not at global scope, where the C function ::socket lives
}  // namespace
using socket::Address;
using socket::Socket;
using tulip::testing::NoFdLeak;
using tulip::testing::recv_exactly;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;

namespace {

// A connected (client, server-side) pair through a listener bound to `where`.
std::pair<Socket, Socket> connected_pair(int family, const Address& where) {
    Socket listener(family, SOCK_STREAM);
    listener.bind(where);
    listener.listen();
    Socket client(family, SOCK_STREAM);
    client.connect(listener.getsockname());  // completes from the backlog, before accept()
    auto [server, peer] = listener.accept();
    CHECK(peer == client.getsockname());
    return {std::move(client), std::move(server)};
}

void check_echo(Socket& client, Socket& server) {
    client.sendall("Hello, world");
    std::string got = recv_exactly(server, 12);
    CHECK(got == "Hello, world");
    server.sendall(got);
    CHECK(recv_exactly(client, 12) == "Hello, world");
}

}  // namespace

// --- Address ---

TEST_CASE("socket: Address prints, compares and round-trips through sockaddr", "[socket]") {
    auto v4 = Address::ipv4("127.0.0.1", 80);
    CHECK(v4.family() == AF_INET);
    CHECK(v4.host() == "127.0.0.1");
    CHECK(v4.port() == 80);
    CHECK(v4.to_string() == "127.0.0.1:80");
    auto v6 = Address::ipv6("::1", 8080);
    CHECK(v6.to_string() == "[::1]:8080");
    CHECK(Address::ipv6("fe80::1%1", 1).scope_id() == 1);
    CHECK(Address::unix_path("/tmp/x.sock").to_string() == "/tmp/x.sock");
    auto abstract = Address::unix_abstract("tulip");
    CHECK(abstract.is_abstract());
    CHECK(abstract.path() == std::string("\0tulip", 6));
    CHECK(abstract.to_string() == "@tulip");
    CHECK(Address::ipv4("", 1).host() == "0.0.0.0");
    CHECK(Address::ipv4("<broadcast>", 1).host() == "255.255.255.255");
    CHECK(Address().to_string() == "<unspecified>");

    // Numeric order, not text order: 9.0.0.1 < 10.0.0.1.
    CHECK(Address::ipv4("9.0.0.1", 1) < Address::ipv4("10.0.0.1", 1));
    CHECK(Address::ipv4("10.0.0.1", 1) < Address::ipv4("10.0.0.1", 2));
    CHECK(Address::ipv4("127.0.0.1", 80) == v4);
    CHECK(v4 != v6);

    for (const auto& a : {v4, v6, Address::ipv6("fe80::1", 5, 7, 1), Address::unix_path("/a/b"), abstract}) {
        ::sockaddr_storage ss;
        auto len = a.to_sockaddr(ss);
        CHECK(Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len) == a);
    }
}

TEST_CASE("socket: Address rejects what it cannot hold", "[socket]") {
    CHECK_THROWS_AS(Address::ipv4("localhost", 80), tulip::ValueError);
    CHECK_THROWS_AS(Address::ipv4("::1", 80), tulip::ValueError);
    CHECK_THROWS_AS(Address::ipv6("127.0.0.1", 80), tulip::ValueError);
    try {
        Address::unix_path(std::string(200, 'x'));
        FAIL("no error");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == ENAMETOOLONG);
        CHECK_THAT(e.what(), Contains("AF_UNIX path too long"));
    }
}

// --- echo over every stream family ---

TEST_CASE("socket: TCP echo over IPv4", "[socket]") {
    NoFdLeak no_leak;
    auto [client, server] = connected_pair(AF_INET, Address::ipv4("127.0.0.1", 0));
    CHECK(client.family() == AF_INET);
    CHECK(client.type() == SOCK_STREAM);
    CHECK(server.getpeername() == client.getsockname());
    check_echo(client, server);
}

TEST_CASE("socket: TCP echo over IPv6", "[socket]") {
    if (!tulip::testing::have_ipv6_loopback()) {
        WARN("skipped: no IPv6 loopback");
        return;
    }
    NoFdLeak no_leak;
    auto [client, server] = connected_pair(AF_INET6, Address::ipv6("::1", 0));
    CHECK(client.getpeername().host() == "::1");
    check_echo(client, server);
}

TEST_CASE("socket: stream echo over a Unix path and an abstract name", "[socket]") {
    NoFdLeak no_leak;
    tulip::testing::TempDir dir;
    SECTION("path") {
        auto path = dir.file("echo.sock");
        auto [client, server] = connected_pair(AF_UNIX, Address::unix_path(path));
        CHECK(client.getpeername().path() == path);
        CHECK(server.getsockname().to_string() == path);
        CHECK(server.getpeername().path().empty());  // an unbound client is unnamed
        check_echo(client, server);
    }
    SECTION("abstract") {
        auto name = "tulip-test-" + std::to_string(::getpid());
        auto [client, server] = connected_pair(AF_UNIX, Address::unix_abstract(name));
        CHECK(client.getpeername() == Address::unix_abstract(name));
        CHECK(client.getpeername().to_string() == "@" + name);
        check_echo(client, server);
    }
}

TEST_CASE("socket: bind and connect resolve a host name for the socket's family", "[socket]") {
    NoFdLeak no_leak;
    Socket listener(AF_INET, SOCK_STREAM);
    listener.bind("localhost", 0);
    listener.listen();
    CHECK(listener.getsockname().host() == "127.0.0.1");
    Socket client(AF_INET, SOCK_STREAM);
    client.connect("localhost", listener.getsockname().port());
    auto [conn, peer] = listener.accept();
    CHECK(peer == client.getsockname());
}

// --- datagrams and packets ---

TEST_CASE("socket: UDP sendto and recvfrom", "[socket]") {
    NoFdLeak no_leak;
    Socket server(AF_INET, SOCK_DGRAM);
    server.bind(Address::ipv4("127.0.0.1", 0));
    Socket client(AF_INET, SOCK_DGRAM);
    client.bind(Address::ipv4("127.0.0.1", 0));
    CHECK(client.sendto("ping", server.getsockname()) == 4);
    auto [data, from] = server.recvfrom(1024);
    CHECK(data == "ping");
    CHECK(from == client.getsockname());
    server.sendto(std::string_view("pong"), from);
    std::array<std::byte, 16> buffer{};
    auto [n, from2] = client.recvfrom_into(buffer);
    CHECK(n == 4);
    CHECK(std::string(reinterpret_cast<const char*>(buffer.data()), n) == "pong");
    CHECK(from2 == server.getsockname());
    // An empty datagram is a datagram.
    client.sendto("", server.getsockname());
    CHECK(server.recvfrom(16).first.empty());
}

TEST_CASE("socket: SOCK_SEQPACKET keeps message boundaries", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair(AF_UNIX, SOCK_SEQPACKET);
    CHECK(a.type() == SOCK_SEQPACKET);
    a.send("abc");
    a.send("defg");
    a.sendall("hijkl");
    CHECK(b.recv(100) == "abc");
    CHECK(b.recv(100) == "defg");
    // A short read takes the start of one message and drops the rest (MSG_TRUNC says so).
    auto msg = b.recvmsg(2);
    CHECK(msg.data == "hi");
    CHECK((msg.msg_flags & MSG_TRUNC) != 0);
    a.shutdown(SHUT_WR);
    CHECK(b.recv(100).empty());
}

// --- timeouts and modes ---

TEST_CASE("socket: modes follow settimeout and setblocking", "[socket]") {
    NoFdLeak no_leak;
    Socket s(AF_INET, SOCK_STREAM);
    CHECK_FALSE(s.gettimeout().has_value());
    CHECK(s.getblocking());
    CHECK((::fcntl(s.fileno(), F_GETFL) & O_NONBLOCK) == 0);
    s.settimeout(2.5);
    CHECK(s.gettimeout() == 2.5);
    CHECK(s.getblocking());
    CHECK((::fcntl(s.fileno(), F_GETFL) & O_NONBLOCK) != 0);  // timeout mode polls a non-blocking fd
    s.setblocking(false);
    CHECK(s.gettimeout() == 0.0);
    CHECK_FALSE(s.getblocking());
    s.settimeout(std::chrono::milliseconds(1500));
    CHECK(s.gettimeout() == 1.5);
    s.setblocking(true);
    CHECK_FALSE(s.gettimeout().has_value());
    CHECK((::fcntl(s.fileno(), F_GETFL) & O_NONBLOCK) == 0);
    CHECK_THROWS_AS(s.settimeout(-1.0), tulip::ValueError);
    CHECK_THROWS_AS(s.settimeout(std::nan("")), tulip::ValueError);
    Socket nonblocking(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
    CHECK(nonblocking.gettimeout() == 0.0);
    CHECK(nonblocking.type() == SOCK_STREAM);
    CHECK((::fcntl(nonblocking.fileno(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("socket: recv on an idle socket with a timeout raises TimeoutError", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    b.settimeout(0.01);
    try {
        (void)b.recv(10);
        FAIL("recv returned");
    } catch (const tulip::TimeoutError& e) {
        CHECK(e.errno_value() == ETIMEDOUT);
        CHECK(e.code() == std::errc::timed_out);
        CHECK_THAT(e.what(), Equals("recv: timed out"));
    }
    // socket.timeout is the same type, and the socket is still usable afterwards.
    CHECK_THROWS_WITH(b.recvfrom(10), "recvfrom: timed out");  // socket::timeout is TimeoutError
    CHECK_THROWS_AS(b.recv(10), socket::timeout);
    a.sendall("late");
    CHECK(b.recv(10) == "late");
}

TEST_CASE("socket: a non-blocking socket raises BlockingIOError instead of waiting", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    b.setblocking(false);
    CHECK_THROWS_AS(b.recv(10), tulip::BlockingIOError);
    Socket listener(AF_INET, SOCK_STREAM);
    listener.bind(Address::ipv4("127.0.0.1", 0));
    listener.listen();
    listener.setblocking(false);
    CHECK_THROWS_AS(listener.accept(), tulip::BlockingIOError);
}

TEST_CASE("socket: accept with a timeout raises TimeoutError", "[socket]") {
    NoFdLeak no_leak;
    Socket listener(AF_INET, SOCK_STREAM);
    listener.bind(Address::ipv4("127.0.0.1", 0));
    listener.listen();
    listener.settimeout(0.01);
    CHECK_THROWS_WITH(listener.accept(), "accept: timed out");
}

// Linux drops a SYN to a listener whose accept queue is full (tcp_abort_on_overflow=0), so a
// connect() to it stays in SYN_SENT: the connect timeout is then the only way out. listen(0)
// queues a single connection; the loop fills the queue, however many that takes.
TEST_CASE("socket: connect with a timeout to a full backlog raises TimeoutError", "[socket]") {
    NoFdLeak no_leak;
    Socket listener(AF_INET, SOCK_STREAM);
    listener.bind(Address::ipv4("127.0.0.1", 0));
    listener.listen(0);
    std::vector<Socket> clients;
    bool timed_out = false;
    for (int i = 0; i < 16 && !timed_out; ++i) {
        Socket& c = clients.emplace_back(AF_INET, SOCK_STREAM);
        c.settimeout(0.2);
        try {
            c.connect(listener.getsockname());
        } catch (const tulip::TimeoutError& e) {
            timed_out = true;
            CHECK_THAT(e.what(), Equals("connect " + listener.getsockname().to_string() + ": timed out"));
        }
    }
    CHECK(timed_out);
    // connect_ex reports the timeout as EWOULDBLOCK, as CPython's does.
    Socket late(AF_INET, SOCK_STREAM);
    late.settimeout(0.01);
    CHECK(late.connect_ex(listener.getsockname()) == EWOULDBLOCK);
}

TEST_CASE("socket: the default timeout applies to new and accepted sockets", "[socket]") {
    NoFdLeak no_leak;
    Socket listener(AF_INET, SOCK_STREAM);  // made before the default changes: blocking
    listener.bind(Address::ipv4("127.0.0.1", 0));
    listener.listen();
    struct Restore {
        ~Restore() { socket::setdefaulttimeout(std::nullopt); }
    } restore;
    socket::setdefaulttimeout(3.0);
    CHECK(socket::getdefaulttimeout() == 3.0);
    Socket client(AF_INET, SOCK_STREAM);
    CHECK(client.gettimeout() == 3.0);
    client.connect(listener.getsockname());
    CHECK(listener.accept().first.gettimeout() == 3.0);
    socket::setdefaulttimeout(std::nullopt);
    // Python's rule: an accepted socket takes the default mode, not the listener's.
    listener.settimeout(5.0);
    Socket client2(AF_INET, SOCK_STREAM);
    client2.connect(listener.getsockname());
    auto [conn, peer] = listener.accept();
    CHECK_FALSE(conn.gettimeout().has_value());
    CHECK((::fcntl(conn.fileno(), F_GETFL) & O_NONBLOCK) == 0);
    CHECK((::fcntl(conn.fileno(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK_THROWS_AS(socket::setdefaulttimeout(-2.0), tulip::ValueError);
}

// --- errors ---

TEST_CASE("socket: connect to a closed port", "[socket]") {
    NoFdLeak no_leak;
    tulip::testing::RefusingPort closed;
    auto where = closed.address();
    SECTION("connect_ex returns ECONNREFUSED") {
        Socket s(AF_INET, SOCK_STREAM);
        CHECK(s.connect_ex(where) == ECONNREFUSED);
    }
    SECTION("connect raises ConnectionRefusedError naming the address") {
        Socket s(AF_INET, SOCK_STREAM);
        try {
            s.connect(where);
            FAIL("connected");
        } catch (const tulip::ConnectionRefusedError& e) {
            CHECK(e.errno_value() == ECONNREFUSED);
            CHECK_THAT(e.what(), Equals("connect " + where.to_string() + ": Connection refused"));
        }
    }
    SECTION("in timeout mode too") {
        Socket s(AF_INET, SOCK_STREAM);
        s.settimeout(30.0);
        CHECK_THROWS_AS(s.connect(where), tulip::ConnectionRefusedError);
    }
}

TEST_CASE("socket: a peer that resets the connection raises ConnectionResetError", "[socket]") {
    NoFdLeak no_leak;
    auto [client, server] = connected_pair(AF_INET, Address::ipv4("127.0.0.1", 0));
    client.setsockopt(SOL_SOCKET, SO_LINGER, ::linger{1, 0});
    client.close();  // SO_LINGER {1, 0}: close sends RST
    try {
        (void)server.recv(10);  // blocks until the RST has arrived, if it has not yet
        FAIL("recv returned");
    } catch (const tulip::ConnectionResetError& e) {
        CHECK_THAT(e.what(), Equals("recv: Connection reset by peer"));
    }
}

TEST_CASE("socket: writing to a reset connection raises without SIGPIPE", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    b.close();
    CHECK_THROWS_AS(a.sendall("x"), tulip::BrokenPipeError);  // the process is still here
}

TEST_CASE("socket: half-close with shutdown(SHUT_WR)", "[socket]") {
    NoFdLeak no_leak;
    auto [client, server] = connected_pair(AF_INET, Address::ipv4("127.0.0.1", 0));
    client.sendall("request");
    client.shutdown(SHUT_WR);
    CHECK(tulip::testing::recv_all(server) == "request");
    CHECK(server.recv(10).empty());  // end of stream stays end of stream
    // The other direction is still open.
    std::string reply(1 << 20, 'r');
    std::thread writer([&server, &reply] {
        server.sendall(reply);
        server.shutdown(SHUT_WR);
    });
    std::string got = tulip::testing::recv_all(client);
    writer.join();
    CHECK(got == reply);
}

TEST_CASE("socket: a closed socket raises EBADF and forgets its fd", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    int old_fd = a.fileno();
    a.close();
    CHECK(a.fileno() == -1);
    a.close();  // a second close does nothing
    // Something else gets the old fd number; the closed socket must never touch it.
    int reused = ::fcntl(b.fileno(), F_DUPFD_CLOEXEC, old_fd);
    REQUIRE(reused == old_fd);
    try {
        a.sendall("x");
        FAIL("sent");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == EBADF);
        CHECK_THAT(e.what(), Equals("sendall on a closed socket: Bad file descriptor"));
    }
    CHECK_THROWS_AS(a.recv(1), tulip::OSError);
    CHECK_THROWS_AS(a.getsockname(), tulip::OSError);
    CHECK_THROWS_AS(a.settimeout(1.0), tulip::OSError);
    CHECK_THROWS_AS(a.connect_ex(Address::ipv4("127.0.0.1", 1)), tulip::OSError);
    CHECK(::fcntl(reused, F_GETFD) != -1);  // still open
    ::close(reused);
    Socket never;
    CHECK(never.fileno() == -1);
    CHECK_THROWS_AS(never.listen(), tulip::OSError);
}

TEST_CASE("socket: moves transfer ownership and never close twice", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    int fd = a.fileno();
    Socket moved(std::move(a));
    CHECK(a.fileno() == -1);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    CHECK(moved.fileno() == fd);
    Socket target(AF_INET, SOCK_STREAM);
    target = std::move(moved);  // closes the socket target had
    CHECK(target.fileno() == fd);
    CHECK(moved.fileno() == -1);  // NOLINT(bugprone-use-after-move)
    Socket& same = target;
    target = std::move(same);  // self-move keeps the socket
    CHECK(target.fileno() == fd);
    target.sendall("still open");
    CHECK(recv_exactly(b, 10) == "still open");
    int raw = b.detach();
    CHECK(b.fileno() == -1);
    Socket adopted(Socket::Fileno{raw});  // family, type and proto come from the fd
    CHECK(adopted.family() == AF_UNIX);
    CHECK(adopted.type() == SOCK_STREAM);
}

// --- options, dup, fromfd ---

TEST_CASE("socket: getsockopt and setsockopt, int and raw forms", "[socket]") {
    NoFdLeak no_leak;
    Socket s(AF_INET, SOCK_STREAM);
    s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
    CHECK(s.getsockopt(SOL_SOCKET, SO_REUSEADDR) != 0);
    CHECK(s.getsockopt(SOL_SOCKET, SO_TYPE) == SOCK_STREAM);
    s.setsockopt(SOL_SOCKET, SO_LINGER, ::linger{1, 5});
    std::string raw = s.getsockopt(SOL_SOCKET, SO_LINGER, sizeof(::linger));
    REQUIRE(raw.size() == sizeof(::linger));
    ::linger value{};
    std::memcpy(&value, raw.data(), sizeof value);
    CHECK(value.l_onoff != 0);
    CHECK(value.l_linger == 5);
    CHECK_THROWS_AS(s.setsockopt(SOL_SOCKET, 12345, 1), tulip::OSError);
}

TEST_CASE("socket: dup and fromfd make independent sockets on one connection", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    Socket copy = socket::fromfd(a.fileno(), AF_UNIX, SOCK_STREAM);
    CHECK(copy.fileno() != a.fileno());
    CHECK((::fcntl(copy.fileno(), F_GETFD) & FD_CLOEXEC) != 0);
    a.close();
    copy.sendall("via the copy");
    CHECK(recv_exactly(b, 12) == "via the copy");
    b.settimeout(7.0);
    Socket second = b.dup();
    CHECK(second.gettimeout() == 7.0);  // dup() keeps the mode, as Python's does
    b.close();
    second.sendall("back");
    CHECK(recv_exactly(copy, 4) == "back");
}

// --- bulk transfer, fd passing, sendfile ---

TEST_CASE("socket: sendall of several MB through a socket pair", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    std::string data(8 << 20, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7919) >> 3);
    std::string received;
    std::thread reader([&b, &received] { received = tulip::testing::recv_all(b); });
    SECTION("blocking") { a.sendall(data); }
    SECTION("with a timeout") {
        a.settimeout(60.0);
        a.sendall(data);
    }
    a.shutdown(SHUT_WR);
    reader.join();
    CHECK(received.size() == data.size());
    CHECK(received == data);
}

TEST_CASE("socket: send_fds and recv_fds pass descriptors over a Unix socket", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    int fds[] = {pipe_fds[1], pipe_fds[0]};
    CHECK(socket::send_fds(a, {"fds", "!"}, fds) == 4);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    auto got = socket::recv_fds(b, 16, 4);
    CHECK(got.data == "fds!");
    REQUIRE(got.fds.size() == 2);
    CHECK((got.msg_flags & MSG_CTRUNC) == 0);
    for (int fd : got.fds) CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    REQUIRE(::write(got.fds[0], "xyz", 3) == 3);  // the write end, received
    char buf[3];
    REQUIRE(::read(got.fds[1], buf, 3) == 3);  // the read end, received
    CHECK(std::string(buf, 3) == "xyz");
    for (int fd : got.fds) ::close(fd);
}

TEST_CASE("socket: recvmsg and sendmsg carry ancillary data", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair(AF_UNIX, SOCK_DGRAM);
    b.setsockopt(SOL_SOCKET, SO_PASSCRED, 1);
    CHECK(a.sendmsg({"head", "er"}) == 6);
    auto msg = b.recvmsg(64, CMSG_SPACE(sizeof(::ucred)));
    CHECK(msg.data == "header");
    REQUIRE(msg.ancdata.size() == 1);
    CHECK(msg.ancdata[0].cmsg_level == SOL_SOCKET);
    CHECK(msg.ancdata[0].cmsg_type == SCM_CREDENTIALS);
    REQUIRE(msg.ancdata[0].cmsg_data.size() == sizeof(::ucred));
    ::ucred cred{};
    std::memcpy(&cred, msg.ancdata[0].cmsg_data.data(), sizeof cred);
    CHECK(cred.pid == ::getpid());
}

TEST_CASE("socket: recv_fds with too small a control buffer reports MSG_CTRUNC and leaks nothing", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    int fds[] = {pipe_fds[0], pipe_fds[1], pipe_fds[0], pipe_fds[1]};
    socket::send_fds(a, {"x"}, fds);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    auto got = socket::recv_fds(b, 16, 1);
    CHECK((got.msg_flags & MSG_CTRUNC) != 0);
    CHECK(got.fds.size() <= 2);  // CMSG_SPACE(sizeof(int)) is padded: it may hold a second one
    for (int fd : got.fds) ::close(fd);
}

TEST_CASE("socket: sendfile sends a file, or a slice of it, and moves its position", "[socket]") {
    NoFdLeak no_leak;
    tulip::testing::TempDir dir;
    auto path = dir.file("data.bin");
    std::string content(3 << 20, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i % 251);
    int file = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(file >= 0);
    REQUIRE(::write(file, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    auto [a, b] = socket::socketpair();
    std::string received;
    std::thread reader([&b, &received] { received = tulip::testing::recv_all(b); });
    std::size_t expected_size = 0;
    std::string expected;
    off_t expected_position = 0;
    SECTION("whole file") {
        a.settimeout(60.0);
        expected_size = a.sendfile(file);
        expected = content;
        expected_position = static_cast<off_t>(content.size());
    }
    SECTION("offset and count") {
        expected_size = a.sendfile(file, 1000, 100000);
        expected = content.substr(1000, 100000);
        expected_position = 1000 + 100000;
    }
    a.shutdown(SHUT_WR);
    reader.join();
    CHECK(expected_size == expected.size());
    CHECK(received == expected);
    CHECK(::lseek(file, 0, SEEK_CUR) == expected_position);
    ::close(file);
}

TEST_CASE("socket: sendfile refuses what Python refuses", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair(AF_UNIX, SOCK_DGRAM);
    CHECK_THROWS_AS(a.sendfile(0), tulip::ValueError);
    auto [c, d] = socket::socketpair();
    c.setblocking(false);
    CHECK_THROWS_AS(c.sendfile(0), tulip::ValueError);
}

TEST_CASE("socket: a blocking socket sharing its file description with a non-blocking dup still blocks",
          "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    Socket copy = b.dup();
    copy.setblocking(false);  // O_NONBLOCK is a flag of the open file description: b has it too
    CHECK(b.gettimeout() == std::nullopt);
    std::thread writer([&a] { a.sendall("eventually"); });  // before or after b waits: either works
    CHECK(recv_exactly(b, 10) == "eventually");
    writer.join();
}

TEST_CASE("socket: the kernel's SO_RCVTIMEO on a blocking socket is reported, not waited out", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    b.setsockopt(SOL_SOCKET, SO_RCVTIMEO, ::timeval{0, 1000});
    CHECK_THROWS_AS(b.recv(1), tulip::BlockingIOError);
}

TEST_CASE("socket: sendall to a peer that never reads times out, saying how much went", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    std::string data(16 << 20, 'x');  // far more than the socket buffers hold
    a.settimeout(0.05);
    try {
        a.sendall(data);
        FAIL("sent everything");
    } catch (const tulip::TimeoutError& e) {
        CHECK_THAT(e.what(), Contains("sendall (") && Contains(" of 16777216 bytes sent): timed out"));
    }
    a.setblocking(false);
    CHECK_THROWS_AS(a.sendall(data), tulip::BlockingIOError);
}

TEST_CASE("socket: Socket(Fileno) of something that is not a socket leaves the fd to its owner", "[socket]") {
    NoFdLeak no_leak;
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    try {
        Socket s(Socket::Fileno{pipe_fds[0]});
        FAIL("adopted a pipe");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == ENOTSOCK);
        CHECK_THAT(e.what(), StartsWith("socket(fileno="));
    }
    CHECK(::fcntl(pipe_fds[0], F_GETFD) != -1);  // not closed
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

TEST_CASE("socket: open_id names each open socket, moves with it, and is 0 once closed", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    CHECK(a.open_id() != 0);
    CHECK(b.open_id() != 0);
    CHECK(a.open_id() != b.open_id());
    const auto id = a.open_id();
    Socket moved(std::move(a));
    CHECK(moved.open_id() == id);
    CHECK(a.open_id() == 0);  // NOLINT(bugprone-use-after-move): a moved-from socket is closed
    Socket copy = moved.dup();
    CHECK(copy.open_id() != id);  // another fd on the same file: another open socket
    moved.close();
    CHECK(moved.open_id() == 0);
    Socket next(AF_INET, SOCK_STREAM);  // likely on the number just closed: a new id all the same
    CHECK(next.open_id() != id);
    int raw = b.detach();
    CHECK(b.open_id() == 0);
    ::close(raw);
}
