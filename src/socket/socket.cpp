// Socket: lifetime, modes, options, names, bind/listen/connect/accept/shutdown.
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <utility>

#include "resolve.hpp"
#include "sock_call.hpp"
#include "tulip/socket.hpp"

namespace tulip::socket {

using detail::Deadline;
using detail::sock_call;

namespace {

constexpr int kTypeFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;

// Python's socket timeout checks (_PyTime_FromSecondsObject and "Timeout value out of range").
double checked_timeout(std::optional<double> seconds, const char* call) {
    if (!seconds) return -1.0;
    if (std::isnan(*seconds)) throw ValueError(std::string(call) + ": Invalid value NaN (not a number)");
    if (*seconds < 0) throw ValueError(std::string(call) + ": Timeout value must be non-negative");
    return *seconds;
}

// Socket::open_id(): 32-bit values that are never 0, so that a loop can pack one beside an fd.
std::uint64_t next_open_id() noexcept {
    static std::atomic<std::uint32_t> counter{0};
    std::uint32_t id;
    do {
        id = counter.fetch_add(1, std::memory_order_relaxed) + 1;
    } while (id == 0);
    return id;
}

void close_quietly(int fd) noexcept {
    if (fd >= 0) ::close(fd);  // Linux frees the fd even when close() reports EINTR or EIO
}

}  // namespace

Socket::Socket(int family, int type, int proto) {
    int fd = ::socket(family, type | SOCK_CLOEXEC, proto);
    if (fd < 0)
        raise_last_os_error("socket(family=" + std::to_string(family) + ", type=" + std::to_string(type) +
                            ", proto=" + std::to_string(proto) + ")");
    fd_ = fd;
    open_id_ = next_open_id();
    family_ = family;
    type_ = type & ~kTypeFlags;
    proto_ = proto;
    try {
        // As CPython's init_sockobject: SOCK_NONBLOCK means non-blocking mode, else the default.
        if (type & SOCK_NONBLOCK)
            timeout_ = 0.0;  // already O_NONBLOCK
        else if (auto t = getdefaulttimeout())
            apply_timeout(*t);
    } catch (...) {
        close_quietly(std::exchange(fd_, -1));
        throw;
    }
}

Socket::Socket(Fileno fileno) {
    auto get = [&](int optname, const char* name) {
        int value = 0;
        ::socklen_t len = sizeof value;
        if (::getsockopt(fileno.fd, SOL_SOCKET, optname, &value, &len) < 0)
            raise_last_os_error("socket(fileno=" + std::to_string(fileno.fd) + "): getsockopt " + name);
        return value;
    };
    // Nothing is owned until all three are known: on a failure the fd stays the caller's.
    int family = get(SO_DOMAIN, "SO_DOMAIN");
    int type = get(SO_TYPE, "SO_TYPE");
    int proto = get(SO_PROTOCOL, "SO_PROTOCOL");
    *this = Socket(fileno.fd, family, type, proto);
}

Socket::Socket(int fd, int family, int type, int proto)
    : fd_(fd), family_(family), type_(type & ~kTypeFlags), proto_(proto), open_id_(next_open_id()) {
    try {
        if (auto t = getdefaulttimeout()) apply_timeout(*t);
    } catch (...) {
        close_quietly(std::exchange(fd_, -1));
        throw;
    }
}

Socket::Socket(Socket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      family_(other.family_),
      type_(other.type_),
      proto_(other.proto_),
      timeout_(other.timeout_),
      open_id_(other.open_id_) {}

Socket& Socket::operator=(Socket&& other) noexcept {
    if (this != &other) {
        close_quietly(std::exchange(fd_, std::exchange(other.fd_, -1)));
        family_ = other.family_;
        type_ = other.type_;
        proto_ = other.proto_;
        timeout_ = other.timeout_;
        open_id_ = other.open_id_;
    }
    return *this;
}

Socket::~Socket() { close_quietly(fd_); }

int Socket::checked_fd(const char* call) const {
    if (fd_ < 0) raise_os_error(EBADF, std::string(call) + " on a closed socket");
    return fd_;
}

void Socket::close() {
    int fd = std::exchange(fd_, -1);
    if (fd < 0) return;
    // The fd is released whatever close() reports (Linux), so it is never closed twice. ECONNRESET
    // is ignored as CPython 3.6 does: the peer reset a connection we were done with.
    if (::close(fd) < 0 && errno != ECONNRESET && errno != EINTR) raise_last_os_error("close");
}

int Socket::detach() noexcept { return std::exchange(fd_, -1); }

// As CPython's socket.dup(): the copy takes this socket's timeout mode.
Socket Socket::dup() const {
    Socket copy = fromfd(checked_fd("dup"), family_, type_, proto_);
    copy.apply_timeout(timeout_);
    return copy;
}

void Socket::apply_timeout(double seconds) {
    int nonblocking = seconds >= 0 ? 1 : 0;
    if (::ioctl(fd_, FIONBIO, &nonblocking) < 0) raise_last_os_error("settimeout: ioctl(FIONBIO)");
    timeout_ = seconds;
}

void Socket::settimeout(std::optional<double> seconds) {
    double t = checked_timeout(seconds, "settimeout");
    checked_fd("settimeout");
    apply_timeout(t);
}

void Socket::setblocking(bool flag) {
    checked_fd("setblocking");
    apply_timeout(flag ? -1.0 : 0.0);
}

// --- options and names ---

int Socket::getsockopt(int level, int optname) const {
    int fd = checked_fd("getsockopt");
    int value = 0;
    ::socklen_t len = sizeof value;
    if (::getsockopt(fd, level, optname, &value, &len) < 0)
        raise_last_os_error("getsockopt(" + std::to_string(level) + ", " + std::to_string(optname) + ")");
    return value;
}

std::string Socket::getsockopt(int level, int optname, std::size_t buflen) const {
    int fd = checked_fd("getsockopt");
    if (buflen == 0 || buflen > 1024) raise_os_error(EINVAL, "getsockopt: buflen out of range (1..1024)");
    std::string value(buflen, '\0');
    auto len = static_cast<::socklen_t>(buflen);
    if (::getsockopt(fd, level, optname, value.data(), &len) < 0)
        raise_last_os_error("getsockopt(" + std::to_string(level) + ", " + std::to_string(optname) + ")");
    value.resize(len);
    return value;
}

void Socket::setsockopt(int level, int optname, int value) {
    setsockopt(level, optname, std::span<const std::byte>(std::as_bytes(std::span<const int, 1>(&value, 1))));
}

void Socket::setsockopt(int level, int optname, std::span<const std::byte> value) {
    int fd = checked_fd("setsockopt");
    if (::setsockopt(fd, level, optname, value.data(), static_cast<::socklen_t>(value.size())) < 0)
        raise_last_os_error("setsockopt(" + std::to_string(level) + ", " + std::to_string(optname) + ")");
}

Address Socket::getsockname() const {
    int fd = checked_fd("getsockname");
    ::sockaddr_storage ss{};
    ::socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<::sockaddr*>(&ss), &len) < 0) raise_last_os_error("getsockname");
    return Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len);
}

Address Socket::getpeername() const {
    int fd = checked_fd("getpeername");
    ::sockaddr_storage ss{};
    ::socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<::sockaddr*>(&ss), &len) < 0) raise_last_os_error("getpeername");
    return Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len);
}

// --- bind, listen, connect, accept, shutdown ---

void Socket::bind(const Address& address) {
    int fd = checked_fd("bind");
    ::sockaddr_storage ss;
    ::socklen_t len = address.to_sockaddr(ss);
    if (::bind(fd, reinterpret_cast<::sockaddr*>(&ss), len) < 0) raise_last_os_error("bind " + address.to_string());
}

void Socket::bind(std::string_view host, std::uint16_t port) {
    checked_fd("bind");
    bind(detail::resolve_for(family_, host, port, "bind"));
}

void Socket::listen(int backlog) {
    int fd = checked_fd("listen");
    if (::listen(fd, backlog < 0 ? 0 : backlog) < 0) raise_last_os_error("listen");
}

void Socket::connect(const Address& address) { connect_impl(address, true); }

void Socket::connect(std::string_view host, std::uint16_t port) {
    checked_fd("connect");
    connect_impl(detail::resolve_for(family_, host, port, "connect"), true);
}

int Socket::connect_ex(const Address& address) { return connect_impl(address, false); }

// CPython's internal_connect(). connect() is tried once; a connection in progress (EINPROGRESS in
// timeout mode, or EINTR in blocking or timeout mode: the kernel goes on connecting, and a second
// connect() would only say EALREADY) is waited for with poll(), and its outcome read from
// SO_ERROR. The timeout bounds the whole connect.
int Socket::connect_impl(const Address& address, bool raise) {
    int fd = checked_fd("connect");
    Deadline deadline(timeout_);
    deadline.start();
    ::sockaddr_storage ss;
    ::socklen_t len = address.to_sockaddr(ss);
    auto what = [&] { return "connect " + address.to_string(); };

    int err = 0;
    if (::connect(fd, reinterpret_cast<::sockaddr*>(&ss), len) == 0) return 0;
    err = errno;
    bool wait = (err == EINTR && timeout_ != 0) || (err == EINPROGRESS && timeout_ > 0);
    if (wait) {
        for (;;) {
            if (!detail::wait_ready(fd, POLLOUT, deadline.at())) {
                if (raise) detail::raise_timeout(what());
                return EWOULDBLOCK;  // CPython's connect_ex reports a timeout so
            }
            int so_error = 0;
            ::socklen_t so_len = sizeof so_error;
            err = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) < 0 ? errno : so_error;
            if (err != EINTR) break;
        }
        if (err == 0) return 0;
    }
    if (raise) raise_os_error(err, what());
    return err;
}

std::pair<Socket, Address> Socket::accept() {
    int fd = checked_fd("accept");
    Deadline deadline(timeout_);
    ::sockaddr_storage ss{};
    ::socklen_t len = 0;
    int conn_fd;
    try {
        conn_fd = sock_call(
            fd, deadline, POLLIN,
            [&] {
                len = sizeof ss;
                return ::accept4(fd, reinterpret_cast<::sockaddr*>(&ss), &len, SOCK_CLOEXEC);
            },
            [] { return std::string("accept"); });
    } catch (const OSError& e) {
        // Out of fds: say so plainly. The connection is still queued, and the listener is fine.
        if (e.errno_value() == EMFILE)
            raise_os_error(EMFILE, "accept (the process's open-file limit, RLIMIT_NOFILE, is reached; the "
                                   "connection stays queued until an fd is free)");
        if (e.errno_value() == ENFILE)
            raise_os_error(ENFILE, "accept (the system's open-file limit is reached; the connection stays "
                                   "queued until an fd is free)");
        throw;
    }
    // The new socket takes the default timeout mode (CPython's socket.accept()), not ours.
    Socket conn(conn_fd, family_, type_, proto_);
    return {std::move(conn), Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len)};
}

void Socket::shutdown(int how) {
    int fd = checked_fd("shutdown");
    if (::shutdown(fd, how) < 0) raise_last_os_error("shutdown");
}

}  // namespace tulip::socket
