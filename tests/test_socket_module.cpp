// tulip::socket module functions: the resolver, address text, create_connection, create_server,
// socketpair (after CPython's test_socket GeneralModuleTests, NetworkConnectionAttributesTest and
// CreateServerTest/CreateServerFunctionalTest). Loopback and local names only.
#include "tulip/socket.hpp"

#include <cerrno>
#include <thread>

#include "socket_helpers.hpp"

namespace {
namespace socket = tulip::socket;  // not at global scope, where the C function ::socket lives
}  // namespace
using socket::Address;
using socket::Socket;
using tulip::testing::NoFdLeak;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;

TEST_CASE("socket: getaddrinfo of localhost gives typed entries", "[socket]") {
    auto entries = socket::getaddrinfo("localhost", 80, AF_INET, SOCK_STREAM);
    REQUIRE_FALSE(entries.empty());
    for (const auto& e : entries) {
        CHECK(e.family == AF_INET);
        CHECK(e.type == SOCK_STREAM);
        CHECK(e.address.port() == 80);
    }
    CHECK(entries.front().address == Address::ipv4("127.0.0.1", 80));
    auto numeric = socket::getaddrinfo("::1", "8080", AF_INET6, SOCK_DGRAM, 0, AI_NUMERICHOST);
    REQUIRE(numeric.size() == 1);
    CHECK(numeric[0].address == Address::ipv6("::1", 8080));
    auto passive = socket::getaddrinfo(std::nullopt, 0, AF_INET, SOCK_STREAM, 0, AI_PASSIVE);
    REQUIRE_FALSE(passive.empty());
    CHECK(passive[0].address.host() == "0.0.0.0");
    auto canon = socket::getaddrinfo("127.0.0.1", std::nullopt, AF_INET, SOCK_STREAM, 0, AI_CANONNAME);
    CHECK_FALSE(canon.at(0).canonname.empty());
}

TEST_CASE("socket: resolver failures raise gaierror with the resolver's words and the host", "[socket]") {
    SECTION("a name that cannot be a number, with AI_NUMERICHOST (no resolver involved)") {
        try {
            socket::getaddrinfo("not-an-address", 80, 0, 0, 0, AI_NUMERICHOST);
            FAIL("resolved");
        } catch (const socket::gaierror& e) {
            CHECK(e.errno_value() == EAI_NONAME);
            CHECK(e.code().category() == socket::gai_category());
            CHECK_THAT(e.what(), Equals("getaddrinfo not-an-address:80: Name or service not known"));
        }
    }
    SECTION("a reserved name that never exists (RFC 2606)") {
        // EAI_NONAME with a resolver, EAI_AGAIN without one; either way a gaierror naming the host.
        try {
            socket::getaddrinfo("nohost.invalid", 80);
            FAIL("resolved");
        } catch (const socket::gaierror& e) {
            CHECK_THAT(e.what(), StartsWith("getaddrinfo nohost.invalid:80: "));
        }
    }
    SECTION("gaierror is an OSError, and connect(host) raises it too") {
        Socket s(AF_INET, SOCK_STREAM);
        CHECK_THROWS_AS(s.connect("nohost.invalid", 80), tulip::OSError);
        CHECK_THROWS_AS(socket::gethostbyname("nohost.invalid"), socket::gaierror);
        CHECK_THROWS_AS(socket::create_connection("nohost.invalid", 80), socket::gaierror);
    }
}

TEST_CASE("socket: getnameinfo, gethostname, gethostbyname, getservbyname", "[socket]") {
    auto [host, port] = socket::getnameinfo(Address::ipv4("127.0.0.1", 80), NI_NUMERICHOST | NI_NUMERICSERV);
    CHECK(host == "127.0.0.1");
    CHECK(port == "80");
    CHECK_FALSE(socket::gethostname().empty());
    CHECK(socket::gethostbyname("localhost") == "127.0.0.1");
    CHECK(socket::gethostbyname("127.0.0.1") == "127.0.0.1");
    CHECK(socket::getservbyname("http", "tcp") == 80);
    CHECK(socket::getservbyname("domain") == 53);
    CHECK_THROWS_WITH(socket::getservbyname("no-such-service", "tcp"), Contains("service/proto not found"));
}

TEST_CASE("socket: inet_pton and inet_ntop", "[socket]") {
    CHECK(socket::inet_pton(AF_INET, "1.2.3.4") == std::string("\x01\x02\x03\x04", 4));
    CHECK(socket::inet_ntop(AF_INET, std::string("\x7f\x00\x00\x01", 4)) == "127.0.0.1");
    auto packed = socket::inet_pton(AF_INET6, "::1");
    CHECK(packed.size() == 16);
    CHECK(socket::inet_ntop(AF_INET6, packed) == "::1");
    try {
        socket::inet_pton(AF_INET, "1.2.3");
        FAIL("parsed");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == EINVAL);
        CHECK_THAT(e.what(), Contains("illegal IP address string"));
    }
    CHECK_THROWS_AS(socket::inet_pton(AF_UNIX, "x"), tulip::OSError);
    CHECK_THROWS_AS(socket::inet_ntop(AF_INET, "abc"), tulip::ValueError);
    CHECK(htons(0x1234) == (std::endian::native == std::endian::little ? 0x3412 : 0x1234));
    CHECK(ntohl(htonl(0xdeadbeef)) == 0xdeadbeef);
}

TEST_CASE("socket: create_connection connects to a listener by name", "[socket]") {
    NoFdLeak no_leak;
    Socket listener(AF_INET, SOCK_STREAM);
    listener.bind(Address::ipv4("127.0.0.1", 0));
    listener.listen();
    auto port = listener.getsockname().port();
    SECTION("default timeout") {
        Socket c = socket::create_connection("localhost", port);
        CHECK_FALSE(c.gettimeout().has_value());
        CHECK(c.getpeername() == listener.getsockname());
    }
    SECTION("timeout and source address") {
        Socket c = socket::create_connection("127.0.0.1", port, 10.0, Address::ipv4("127.0.0.1", 0));
        CHECK(c.gettimeout() == 10.0);  // the timeout stays on the socket
        auto [conn, peer] = listener.accept();
        CHECK(peer == c.getsockname());
    }
}

TEST_CASE("socket: create_connection raises the last error, naming the address", "[socket]") {
    NoFdLeak no_leak;
    tulip::testing::RefusingPort closed;
    auto where = closed.address();
    try {
        socket::create_connection("127.0.0.1", where.port(), 30.0);
        FAIL("connected");
    } catch (const tulip::ConnectionRefusedError& e) {
        CHECK_THAT(e.what(), Equals("connect " + where.to_string() + ": Connection refused"));
    }
}

namespace {

// For create_connection(None, port): the loopback addresses getaddrinfo(None) gives (::1, then
// 127.0.0.1), all on one port, every one bound (so that a connect() is refused, and nobody else
// can take the port meanwhile), and the last one also listening when `last_listens`.
struct LoopbackTargets {
    std::vector<Address> addresses;
    std::vector<Socket> sockets;
    std::uint16_t port = 0;

    explicit LoopbackTargets(bool last_listens) {
        auto entries = socket::getaddrinfo(std::nullopt, 1, 0, SOCK_STREAM);
        REQUIRE(entries.size() >= 2);
        for (int attempt = 0; attempt < 20 && !bind_all(entries, last_listens); ++attempt) {
        }
        REQUIRE(sockets.size() == entries.size());
    }

private:
    // Binds the last address on a fresh port, then the others on that port; false if one of
    // them is taken there (another process's socket), to try another port.
    bool bind_all(const std::vector<socket::AddrInfo>& entries, bool last_listens) {
        sockets.clear();
        addresses.clear();
        auto with_port = [](const Address& a, std::uint16_t p) {
            return a.family() == AF_INET ? Address::ipv4(a.host(), p) : Address::ipv6(a.host(), p);
        };
        Socket last(entries.back().family, SOCK_STREAM);
        last.bind(with_port(entries.back().address, 0));
        port = last.getsockname().port();
        if (last_listens) last.listen();
        for (std::size_t i = 0; i + 1 < entries.size(); ++i) {
            Socket s(entries[i].family, SOCK_STREAM);
            if (entries[i].family == AF_INET6) s.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1);
            try {
                s.bind(with_port(entries[i].address, port));
            } catch (const tulip::OSError&) {
                return false;
            }
            addresses.push_back(s.getsockname());
            sockets.push_back(std::move(s));
        }
        addresses.push_back(last.getsockname());
        sockets.push_back(std::move(last));
        return true;
    }
};

}  // namespace

TEST_CASE("socket: create_connection falls through refused addresses to one that listens", "[socket]") {
    NoFdLeak no_leak;
    if (!tulip::testing::have_ipv6_loopback()) {
        WARN("skipped: ::1 cannot be bound here, and getaddrinfo(None) gives it first");
        return;
    }
    LoopbackTargets targets(/*last_listens=*/true);
    CHECK(targets.addresses.front().family() == AF_INET6);  // ::1 first: refused
    Socket c = socket::create_connection(std::nullopt, targets.port, 10.0, std::nullopt, true);
    CHECK(c.getpeername() == targets.addresses.back());
    auto [conn, peer] = targets.sockets.back().accept();
    CHECK(peer == c.getsockname());
}

TEST_CASE("socket: create_connection with all_errors raises an ExceptionGroup of every attempt", "[socket]") {
    NoFdLeak no_leak;
    if (!tulip::testing::have_ipv6_loopback()) {
        WARN("skipped: ::1 cannot be bound here");
        return;
    }
    LoopbackTargets targets(/*last_listens=*/false);
    try {
        socket::create_connection(std::nullopt, targets.port, 10.0, std::nullopt, true);
        FAIL("connected");
    } catch (const tulip::ExceptionGroup& group) {
        CHECK(group.message() == "create_connection failed");
        REQUIRE(group.exceptions().size() == targets.addresses.size());
        std::string expected = "create_connection failed (" + std::to_string(targets.addresses.size()) +
                               " sub-exceptions)";
        for (std::size_t i = 0; i < targets.addresses.size(); ++i) {
            expected += i == 0 ? ": " : "; ";
            expected += "connect " + targets.addresses[i].to_string() + ": Connection refused";
            CHECK_THROWS_AS(std::rethrow_exception(group.exceptions()[i]), tulip::ConnectionRefusedError);
        }
        CHECK_THAT(group.what(), Equals(expected));
    }
    // Without all_errors: the last address's error alone.
    try {
        socket::create_connection(std::nullopt, targets.port, 10.0);
        FAIL("connected");
    } catch (const tulip::ConnectionRefusedError& e) {
        CHECK_THAT(e.what(), StartsWith("connect " + targets.addresses.back().to_string()));
    }
}

TEST_CASE("socket: gethostbyaddr and gethostbyname_ex read the hosts database", "[socket]") {
    auto entry = socket::gethostbyaddr("127.0.0.1");
    CHECK_FALSE(entry.hostname.empty());
    CHECK(entry.ipaddrlist == std::vector<std::string>{"127.0.0.1"});
    // The same database that getnameinfo() reads, so the same name.
    CHECK(entry.hostname == socket::getnameinfo(Address::ipv4("127.0.0.1", 0), NI_NAMEREQD).first);
    auto by_name = socket::gethostbyname_ex("localhost");
    CHECK_THAT(by_name.ipaddrlist, Catch::Matchers::VectorContains(std::string("127.0.0.1")));
    // A name is resolved first, as in Python.
    CHECK(socket::gethostbyaddr("localhost").ipaddrlist == std::vector<std::string>{"127.0.0.1"});
}

TEST_CASE("socket: resolver failures of the host database are herror, of a name gaierror", "[socket]") {
    try {
        socket::gethostbyname_ex("nohost.invalid");
        FAIL("resolved");
    } catch (const socket::herror& e) {
        CHECK(e.code().category() == socket::herror_category());
        CHECK((e.errno_value() == HOST_NOT_FOUND || e.errno_value() == TRY_AGAIN || e.errno_value() == NO_DATA));
        CHECK_THAT(e.what(), StartsWith("gethostbyname_ex nohost.invalid: "));
        CHECK_THAT(e.what(), Contains(::hstrerror(e.errno_value())));
    }
    socket::herror made(HOST_NOT_FOUND, "gethostbyaddr 192.0.2.1");
    CHECK_THAT(made.what(), Equals("gethostbyaddr 192.0.2.1: Unknown host"));
    const tulip::OSError& as_os_error = made;  // Python: herror is an OSError
    CHECK(as_os_error.errno_value() == HOST_NOT_FOUND);
    try {
        socket::gethostbyaddr("nohost.invalid");
        FAIL("resolved");
    } catch (const socket::gaierror& e) {
        CHECK_THAT(e.what(), StartsWith("gethostbyaddr nohost.invalid: "));
    }
}

TEST_CASE("socket: getservbyport", "[socket]") {
    CHECK(socket::getservbyport(socket::getservbyname("ssh", "tcp"), "tcp") == "ssh");
    CHECK(socket::getservbyport(80) == "http");
    CHECK_THROWS_WITH(socket::getservbyport(65536), "getservbyport: port must be 0-65535 (got 65536)");
    try {
        socket::getservbyport(1, "nosuchproto");
        FAIL("found");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == ENOENT);
        CHECK_THAT(e.what(), StartsWith("getservbyport 1/nosuchproto: port/proto not found"));
    }
}

TEST_CASE("socket: create_server listens with SO_REUSEADDR", "[socket]") {
    NoFdLeak no_leak;
    Socket server = socket::create_server("127.0.0.1", 0, {.backlog = 5});
    CHECK(server.getsockopt(SOL_SOCKET, SO_REUSEADDR) != 0);
    CHECK(server.getsockopt(SOL_SOCKET, SO_ACCEPTCONN) != 0);
    Socket reuse = socket::create_server("127.0.0.1", 0, {.reuse_port = true});
    CHECK(reuse.getsockopt(SOL_SOCKET, SO_REUSEPORT) != 0);
    Socket c = socket::create_connection("127.0.0.1", server.getsockname().port());
    auto [conn, peer] = server.accept();
    conn.sendall("hi");
    CHECK(tulip::testing::recv_exactly(c, 2) == "hi");
    // Binding a port that is listening fails, and says which address.
    try {
        socket::create_server("127.0.0.1", server.getsockname().port());
        FAIL("bound twice");
    } catch (const tulip::OSError& e) {
        CHECK(e.errno_value() == EADDRINUSE);
        CHECK_THAT(e.what(), Equals("bind " + server.getsockname().to_string() + ": Address already in use"));
    }
    CHECK_THROWS_AS(socket::create_server("", 0, {.family = AF_INET, .dualstack_ipv6 = true}), tulip::ValueError);
}

TEST_CASE("socket: create_server with dualstack_ipv6 accepts IPv4 and IPv6", "[socket]") {
    if (!tulip::testing::have_ipv6_loopback() || !socket::has_dualstack_ipv6()) {
        WARN("skipped: no dual-stack IPv6 loopback");
        return;
    }
    NoFdLeak no_leak;
    Socket server = socket::create_server("", 0, {.family = AF_INET6, .dualstack_ipv6 = true});
    CHECK(server.getsockopt(IPPROTO_IPV6, IPV6_V6ONLY) == 0);
    auto port = server.getsockname().port();
    Socket v4 = socket::create_connection("127.0.0.1", port);
    auto [conn4, peer4] = server.accept();
    CHECK(peer4.family() == AF_INET6);
    CHECK(peer4.host() == "::ffff:127.0.0.1");  // a v4-mapped address
    Socket v6 = socket::create_connection("::1", port);
    auto [conn6, peer6] = server.accept();
    CHECK(peer6.host() == "::1");
    conn4.sendall("4");
    conn6.sendall("6");
    CHECK(v4.recv(1) == "4");
    CHECK(v6.recv(1) == "6");

    Socket v6only = socket::create_server("::1", 0, {.family = AF_INET6});
    CHECK(v6only.getsockopt(IPPROTO_IPV6, IPV6_V6ONLY) != 0);
}

TEST_CASE("socket: socketpair ends are connected, close-on-exec and unnamed", "[socket]") {
    NoFdLeak no_leak;
    auto [a, b] = socket::socketpair();
    CHECK(a.family() == AF_UNIX);
    CHECK(a.getsockname().path().empty());
    CHECK(a.getsockname().to_string().empty());
    a.sendall("x");
    CHECK(b.recv(1) == "x");
    auto [c, d] = socket::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK);
    CHECK(c.gettimeout() == 0.0);
    CHECK(d.type() == SOCK_DGRAM);
    CHECK_THROWS_AS(d.recv(1), tulip::BlockingIOError);
}
