// tulip::socket: Python's socket module (Python 3 semantics), blocking and timeout modes.
//
//     namespace socket = tulip::socket;   // in a function or a namespace: at global scope the
//     socket::Socket s(AF_INET, SOCK_STREAM);  // name `socket` is the C function's
//     s.settimeout(5.0);
//     s.connect("localhost", 8080);
//     s.sendall("hello");
//     std::string reply = s.recv(1024);
//
// Constants. Python's socket module takes AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR,
// SHUT_RDWR, MSG_PEEK, AI_PASSIVE, EAI_NONAME, ... from the C headers, and so does tulip: this
// header includes them, and they are used unqualified, spelled as in Python. Most of them are
// preprocessor macros in the C library, so they cannot be redeclared inside a namespace (a
// `tulip::socket::AF_INET` would expand to `tulip::socket::2`); the same goes for htons, ntohs,
// htonl and ntohl, which glibc defines as macros in optimised builds. See docs/socket.md.
//
// Errors. Every failing call throws the tulip::OSError subclass that Python would raise for the
// errno (ConnectionRefusedError, ConnectionResetError, BrokenPipeError, ...), with a message that
// names the call and, where there is one, the address: "connect 127.0.0.1:9: Connection refused".
// A timeout throws tulip::TimeoutError ("recv: timed out"), which socket::timeout names as Python
// 3.10 does. EINTR is retried, never reported. Resolver failures throw socket::gaierror.
// Using a closed socket throws OSError(EBADF); a closed Socket never touches its old fd number.
//
// Signals. Nothing here raises SIGPIPE: sends use MSG_NOSIGNAL, and sendfile() holds SIGPIPE
// blocked in the calling thread while it runs, discarding the one an EPIPE would leave pending.
#pragma once

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tulip/exceptions.hpp"

namespace tulip::socket {

// Python's aliases: socket.error is OSError (3.3), socket.timeout is TimeoutError (3.10).
using error = OSError;
using timeout = TimeoutError;

// socket.gaierror: a getaddrinfo()/getnameinfo() failure. errno_value() is the EAI_* code (as
// Python's e.errno), code() is in gai_category(), and the message is gai_strerror's words after
// the call and the host: "getaddrinfo nohost.invalid:80: Name or service not known".
class gaierror : public OSError {
public:
    gaierror(int eai_code, const std::string& what);
};

// The error category of EAI_* codes; message() is gai_strerror().
const std::error_category& gai_category() noexcept;

// socket.herror: a gethostbyaddr()/gethostbyname_ex() failure. errno_value() is the resolver's
// h_errno (HOST_NOT_FOUND, TRY_AGAIN, NO_RECOVERY, NO_DATA), as Python's e.errno; code() is in
// herror_category(), whose messages are hstrerror()'s: "gethostbyaddr 192.0.2.1: Unknown host".
class herror : public OSError {
public:
    herror(int h_errno_code, const std::string& what);
};

const std::error_category& herror_category() noexcept;

// Whether the platform supports IPv6 at all (Python's socket.has_ipv6, a build-time constant).
inline constexpr bool has_ipv6 = true;

// A socket address: the value Python writes as a tuple or a string.
//   AF_INET:  (host, port)                        to_string() "127.0.0.1:80"
//   AF_INET6: (host, port, flowinfo, scope_id)    to_string() "[::1]:80", "[fe80::1%eth0]:80"
//   AF_UNIX:  a path, or a Linux abstract name    to_string() "/tmp/s", "@name"
// The host is always numeric here: names are resolved by Socket::connect(host, port),
// Socket::bind(host, port) and getaddrinfo(). Addresses compare by family, then by binary address
// and port (IPv4 and IPv6 order numerically), then flowinfo and scope_id; Unix ones by their bytes.
class Address {
public:
    // An empty address (family AF_UNSPEC), as a default-constructed value.
    Address() = default;

    // A numeric IPv4 host ("127.0.0.1"). As in Python, "" is INADDR_ANY and "<broadcast>" is
    // INADDR_BROADCAST. Anything else that is not a dotted quad throws ValueError.
    static Address ipv4(std::string_view host, std::uint16_t port);
    // A numeric IPv6 host ("::1"); "" is in6addr_any. A "%zone" suffix ("fe80::1%lo") sets the
    // scope id from the interface name or number. Throws ValueError otherwise.
    static Address ipv6(std::string_view host, std::uint16_t port, std::uint32_t flowinfo = 0,
                        std::uint32_t scope_id = 0);
    // A Unix socket path; a name that starts with '\0' is a Linux abstract name (Python's
    // b"\0name"). Throws OSError(ENAMETOOLONG) when it does not fit in sun_path.
    static Address unix_path(std::string_view path);
    // An abstract Unix name given without its leading '\0': unix_abstract("x") is "\0x".
    static Address unix_abstract(std::string_view name);

    // From a kernel socket address (as accept, recvfrom and getsockname return them).
    static Address from_sockaddr(const ::sockaddr* addr, ::socklen_t len);
    // Fills `storage` (zeroed first) and returns the length to pass to the kernel.
    ::socklen_t to_sockaddr(::sockaddr_storage& storage) const;

    int family() const noexcept { return family_; }
    // The numeric host of an AF_INET/AF_INET6 address, without a zone ("::1").
    std::string host() const;
    std::uint16_t port() const noexcept { return port_; }
    std::uint32_t flowinfo() const noexcept { return flowinfo_; }
    std::uint32_t scope_id() const noexcept { return scope_id_; }
    // The path of an AF_UNIX address: a file path, "\0name" for an abstract one, "" for an
    // unnamed one (a socketpair end, an unbound client), as in Python.
    const std::string& path() const noexcept { return path_; }
    bool is_abstract() const noexcept { return family_ == AF_UNIX && !path_.empty() && path_[0] == '\0'; }

    // "127.0.0.1:80", "[::1]:80", "/tmp/sock", "@abstract", "" (unnamed Unix), or
    // "<unspecified>" / "<family N>" for what the above cannot show.
    std::string to_string() const;

    friend bool operator==(const Address&, const Address&) = default;
    friend std::strong_ordering operator<=>(const Address&, const Address&) = default;

private:
    // Member order is the comparison order.
    int family_ = AF_UNSPEC;
    std::array<unsigned char, 16> addr_{};  // in_addr or in6_addr bytes, network order
    std::uint16_t port_ = 0;
    std::uint32_t flowinfo_ = 0;
    std::uint32_t scope_id_ = 0;
    std::string path_;
};

// One control message of recvmsg()/sendmsg(): Python's (cmsg_level, cmsg_type, cmsg_data).
struct AncData {
    int cmsg_level = 0;
    int cmsg_type = 0;
    std::string cmsg_data;
};

// What recvmsg() returns: Python's (data, ancdata, msg_flags, address).
struct RecvMsg {
    std::string data;
    std::vector<AncData> ancdata;
    int msg_flags = 0;
    Address address;
};

// What recv_fds() returns: Python's (data, fds, msg_flags, address). The fds are new descriptors
// (close-on-exec) that the caller owns and must close.
class SocketFile;

struct RecvFds {
    std::string data;
    std::vector<int> fds;
    int msg_flags = 0;
    Address address;
};

// Python's socket.socket: an owned, move-only socket.
//
// Modes (Python's "Notes on socket timeouts"): blocking (gettimeout() is nullopt), non-blocking
// (0.0: a call that would block throws BlockingIOError) and timeout (> 0: a call that does not
// complete in time throws TimeoutError). In timeout mode the fd is O_NONBLOCK and waits go
// through poll(). The timeout bounds each call; sendall() and sendfile() are bounded as a whole,
// connect() until the connection completes. A new socket starts in the mode of
// getdefaulttimeout(), an accepted one too (Python's rule: not the listener's mode).
//
// One Socket may be used by one thread at a time; closing it while another thread waits in one
// of its calls is not supported (the fd number could be reused under that thread).
class Socket {
public:
    // A closed socket (fileno() == -1): a placeholder to assign to later.
    Socket() noexcept = default;
    // socket(family, type, proto): a new close-on-exec socket. SOCK_NONBLOCK in `type` selects
    // non-blocking mode, as in Python; type() reports the type without the flags.
    explicit Socket(int family, int type = SOCK_STREAM, int proto = 0);
    // socket(fileno=fd): takes ownership of `fd`, reading family, type and proto from it.
    struct Fileno {
        int fd;
    };
    explicit Socket(Fileno fileno);

    Socket(Socket&& other) noexcept;
    Socket& operator=(Socket&& other) noexcept;
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    ~Socket();  // closes, ignoring errors

    // accept(): the connection and the peer's address. The new socket is close-on-exec.
    std::pair<Socket, Address> accept();
    void bind(const Address& address);
    // bind((host, port)): the host is resolved for this socket's family ("" is the wildcard).
    void bind(std::string_view host, std::uint16_t port);
    // Closes the fd (a second close does nothing). Throws if close(2) fails, except for
    // ECONNRESET, as Python 3.6 does; the fd is released either way.
    void close();
    void connect(const Address& address);
    // connect((host, port)): the host is resolved for this socket's family; the first address is
    // used, as in Python (create_connection() tries them all).
    void connect(std::string_view host, std::uint16_t port);
    // connect() that returns the errno instead of throwing (0 on success). In timeout mode a
    // timeout returns EAGAIN (Python's EWOULDBLOCK). Resolver and closed-socket errors still throw.
    int connect_ex(const Address& address);
    // Gives up the fd without closing it and returns it (-1 if already closed).
    int detach() noexcept;
    // A new Socket on a dup() of this fd (close-on-exec), in this socket's timeout mode.
    Socket dup() const;
    // The fd, or -1 once closed or detached.
    int fileno() const noexcept { return fd_; }
    // A number naming this open socket (a process-wide 32-bit counter, never 0, that repeats
    // only after four billion sockets): each fd a Socket opens or adopts gets a new one, a move
    // carries it along. An event loop that keeps an fd
    // registered between waits compares it to tell the same socket from a new one that reuses
    // a closed fd's number. 0 once closed or detached.
    std::uint64_t open_id() const noexcept { return fd_ < 0 ? 0 : open_id_; }

    Address getpeername() const;
    Address getsockname() const;
    int getsockopt(int level, int optname) const;
    // The raw option value, at most `buflen` bytes.
    std::string getsockopt(int level, int optname, std::size_t buflen) const;
    void setsockopt(int level, int optname, int value);
    void setsockopt(int level, int optname, std::span<const std::byte> value);
    // Any plain struct value: setsockopt(SOL_SOCKET, SO_LINGER, ::linger{1, 0}).
    template <class T>
        requires(std::is_trivially_copyable_v<T> && !std::is_integral_v<T> && !std::is_pointer_v<T> &&
                 !std::is_convertible_v<T, std::span<const std::byte>> && !std::is_convertible_v<T, std::string_view>)
    void setsockopt(int level, int optname, const T& value) {
        setsockopt(level, optname, std::span<const std::byte>(std::as_bytes(std::span<const T, 1>(&value, 1))));
    }

    // listen(backlog); Python's default is min(SOMAXCONN, 128).
    void listen(int backlog = 128);

    // recv(bufsize): at most bufsize bytes; "" at end of stream (or for an empty datagram).
    std::string recv(std::size_t bufsize, int flags = 0);
    // recv_into(buffer, nbytes): fills at most nbytes (0 = the whole buffer); returns the count.
    std::size_t recv_into(std::span<std::byte> buffer, std::size_t nbytes = 0, int flags = 0);
    std::pair<std::string, Address> recvfrom(std::size_t bufsize, int flags = 0);
    std::pair<std::size_t, Address> recvfrom_into(std::span<std::byte> buffer, std::size_t nbytes = 0,
                                                  int flags = 0);
    // recvmsg(bufsize, ancbufsize): ancbufsize is the control buffer size (CMSG_SPACE of what is
    // expected). MSG_CTRUNC in msg_flags says that control data was cut; fds the kernel still
    // passed are in ancdata, and the caller must close them.
    RecvMsg recvmsg(std::size_t bufsize, std::size_t ancbufsize = 0, int flags = 0);

    // send(): the number of bytes sent, possibly fewer than given.
    std::size_t send(std::span<const std::byte> data, int flags = 0);
    std::size_t send(std::string_view data, int flags = 0);
    // sendall(): sends everything or throws (then how much went is unknown, as in Python).
    void sendall(std::span<const std::byte> data, int flags = 0);
    void sendall(std::string_view data, int flags = 0);
    std::size_t sendto(std::span<const std::byte> data, const Address& address, int flags = 0);
    std::size_t sendto(std::string_view data, const Address& address, int flags = 0);
    // sendmsg(buffers, ancdata, flags, address): gathers the buffers into one message.
    std::size_t sendmsg(const std::vector<std::string_view>& buffers, const std::vector<AncData>& ancdata = {},
                        int flags = 0, const std::optional<Address>& address = std::nullopt);
    // sendfile(file, offset, count): sends `count` bytes (nullopt: up to end of file) of the file
    // open on `file_fd` from `offset`, with sendfile(2); returns the bytes sent and, as Python
    // does, leaves the file's position just after them. SOCK_STREAM only, and not in non-blocking
    // mode (ValueError). In timeout mode the timeout bounds the whole transfer, as for sendall.
    std::size_t sendfile(int file_fd, std::uint64_t offset = 0, std::optional<std::size_t> count = std::nullopt);

    // setblocking(true) is settimeout(nullopt), setblocking(false) is settimeout(0.0).
    void setblocking(bool flag);
    // True unless the socket is in non-blocking mode (gettimeout() != 0.0), as in Python.
    bool getblocking() const noexcept { return timeout_ != 0.0; }
    // nullopt: blocking; 0.0: non-blocking; > 0: timeout in seconds. Negative or NaN throws
    // ValueError.
    void settimeout(std::optional<double> seconds);
    template <class Rep, class Period>
    void settimeout(std::chrono::duration<Rep, Period> d) {
        settimeout(std::optional<double>(std::chrono::duration<double>(d).count()));
    }
    std::optional<double> gettimeout() const noexcept {
        return timeout_ < 0 ? std::nullopt : std::optional<double>(timeout_);
    }

    // shutdown(SHUT_RD | SHUT_WR | SHUT_RDWR).
    void shutdown(int how);

    // makefile(mode, buffering): a buffered file object over this socket (see SocketFile). mode
    // is made of 'r', 'w' and 'b' ("r", "w", "rw", "rwb", ...); buffering is the buffer size
    // (nullopt: 8192, Python's io.DEFAULT_BUFFER_SIZE; 0: unbuffered, binary modes only).
    // ValueError for another mode, or in non-blocking mode (Python requires blocking or timeout).
    SocketFile makefile(std::string_view mode = "r", std::optional<std::size_t> buffering = std::nullopt) const;

    int family() const noexcept { return family_; }
    int type() const noexcept { return type_; }
    int proto() const noexcept { return proto_; }

private:
    Socket(int fd, int family, int type, int proto);  // adopts fd, applies the default timeout
    int checked_fd(const char* call) const;
    void apply_timeout(double seconds);
    int connect_impl(const Address& address, bool raise);

    int fd_ = -1;
    int family_ = AF_UNSPEC;
    int type_ = 0;
    int proto_ = 0;
    double timeout_ = -1.0;  // < 0: blocking (None); 0: non-blocking; > 0: seconds
    std::uint64_t open_id_ = 0;

    friend std::pair<Socket, Socket> socketpair(int, int, int);
    friend Socket fromfd(int, int, int, int);
};

// What Socket::makefile() returns: Python's socket.makefile() file object, a BufferedReader /
// BufferedWriter (or BufferedRWPair) over the socket, with the bytes interface only.
//
// It works on its own dup() of the socket, in the socket's timeout mode: closing the file leaves
// the socket open for its owner, and the owner may close the socket first while the file goes on
// (Python keeps the socket open until its files are closed; here the kernel does). Reads that the
// file has buffered are not seen by the owner's own recv(), as in Python.
//
// A timeout loses nothing: what arrived before it stays buffered and the next read returns it.
// (Python's file refuses any read after a timeout, "cannot read from timed out object", because
// its buffer could have lost data.) Likewise flush() drops only what was sent.
//
// Left out: text mode (encoding, errors, newline; 'b' is accepted and every mode reads bytes),
// line buffering (buffering=1 is a 1-byte buffer), readinto, readlines, peek, iteration.
class SocketFile {
public:
    // A closed file.
    SocketFile() = default;
    SocketFile(SocketFile&& other) noexcept = default;
    SocketFile& operator=(SocketFile&& other) noexcept;
    SocketFile(const SocketFile&) = delete;
    SocketFile& operator=(const SocketFile&) = delete;
    // Flushes and closes, ignoring errors, as Python's IOBase does when collected.
    ~SocketFile();

    // read(size): up to `size` bytes, fewer only at end of stream; nullopt (Python's -1) reads to
    // the end of the stream. Unbuffered, read(size) is one recv(): it may return fewer.
    std::string read(std::optional<std::size_t> size = std::nullopt);
    // readline(limit): up to and including the next '\n', or to the end of the stream, or
    // `limit` bytes, whichever comes first. Never consumes past the newline it returns.
    std::string readline(std::optional<std::size_t> limit = std::nullopt);
    // Buffers `data` (sending when the buffer is full) and returns its size. Unbuffered, sends
    // it all at once.
    std::size_t write(std::string_view data);
    // Sends what is buffered.
    void flush();
    // Flushes, then closes the file's fd (the socket stays open). A second close does nothing.
    void close();

    bool closed() const noexcept { return sock_.fileno() < 0; }
    bool readable() const noexcept { return reading_; }
    bool writable() const noexcept { return writing_; }
    const std::string& mode() const noexcept { return mode_; }
    // The file's own fd (a dup of the socket's), -1 once closed.
    int fileno() const noexcept { return sock_.fileno(); }

private:
    friend class Socket;
    SocketFile(Socket sock, std::string mode, std::size_t buffer_size);
    void check_open(const char* call) const;
    void check_readable(const char* call) const;
    // One recv() of up to `want` bytes (more if buffered) into the read buffer; 0 at end of stream.
    std::size_t fill(std::size_t want);
    std::string take(std::size_t n);
    std::size_t buffered() const noexcept { return rbuf_.size() - rpos_; }

    Socket sock_;
    std::string mode_;
    bool reading_ = false;
    bool writing_ = false;
    std::size_t buffer_size_ = 0;  // 0: unbuffered
    std::string rbuf_;             // received, not yet read: rbuf_[rpos_..]
    std::size_t rpos_ = 0;
    std::string wbuf_;             // written, not yet sent
};

// --- module functions ---------------------------------------------------------------------

// The timeout new sockets start with (nullopt: blocking). Process-wide, as in Python.
std::optional<double> getdefaulttimeout() noexcept;
void setdefaulttimeout(std::optional<double> seconds);

// socketpair(family, type, proto): two connected sockets (AF_UNIX by default).
std::pair<Socket, Socket> socketpair(int family = AF_UNIX, int type = SOCK_STREAM, int proto = 0);
// fromfd(fd, family, type, proto): a Socket on a dup() of fd; fd stays the caller's.
Socket fromfd(int fd, int family, int type, int proto = 0);

// create_connection((host, port), timeout, source_address, all_errors): connects a TCP socket to
// every address getaddrinfo() gives for host, in order, until one works. A host of nullopt is
// Python's None: the loopback addresses (::1, then 127.0.0.1). If no address works, the error of
// the last one is thrown, or with all_errors (Python 3.11) an ExceptionGroup("create_connection
// failed") holding every attempt's error in order. The first form uses getdefaulttimeout()
// (Python's _GLOBAL_DEFAULT_TIMEOUT); `timeout` is set on the socket before connecting and stays.
Socket create_connection(std::optional<std::string_view> host, std::uint16_t port);
Socket create_connection(std::optional<std::string_view> host, std::uint16_t port, std::optional<double> timeout,
                         const std::optional<Address>& source_address = std::nullopt, bool all_errors = false);

// create_server's keyword arguments (Python 3.8): create_server("", 8080, {.family = AF_INET6,
// .dualstack_ipv6 = true}).
struct ServerOptions {
    int family = AF_INET;
    std::optional<int> backlog;  // nullopt: listen()'s default
    bool reuse_port = false;
    bool dualstack_ipv6 = false;
};
// create_server((host, port), ...): a bound, listening TCP socket, with SO_REUSEADDR set (as on
// POSIX Python). An AF_INET6 socket is IPV6_V6ONLY unless dualstack_ipv6. ValueError for
// dualstack_ipv6 without AF_INET6 or without platform support, and for reuse_port where the
// platform has none.
Socket create_server(std::string_view host, std::uint16_t port, const ServerOptions& options = {});
// True if one AF_INET6 socket can accept both IPv4 and IPv6 connections.
bool has_dualstack_ipv6();

// One entry of getaddrinfo(): Python's (family, type, proto, canonname, sockaddr).
struct AddrInfo {
    int family = 0;
    int type = 0;
    int proto = 0;
    std::string canonname;
    Address address;
};

// getaddrinfo(host, port, family, type, proto, flags). host nullopt is Python's None (with
// AI_PASSIVE: the wildcard address). The port is a number (0..65535, else ValueError), a service
// name ("http"), or std::nullopt for None. Throws gaierror.
std::vector<AddrInfo> getaddrinfo(std::optional<std::string_view> host, int port, int family = 0, int type = 0,
                                  int proto = 0, int flags = 0);
std::vector<AddrInfo> getaddrinfo(std::optional<std::string_view> host, std::string_view service,
                                  int family = 0, int type = 0, int proto = 0, int flags = 0);
std::vector<AddrInfo> getaddrinfo(std::optional<std::string_view> host, std::nullopt_t no_port, int family = 0,
                                  int type = 0, int proto = 0, int flags = 0);
// getnameinfo(sockaddr, flags): (host, port) as strings. Throws gaierror.
std::pair<std::string, std::string> getnameinfo(const Address& address, int flags = 0);
std::string gethostname();
// The IPv4 address of `hostname` as a dotted quad (IPv4 only, as in Python). Throws gaierror.
std::string gethostbyname(std::string_view hostname);
// The port of a service ("http" -> 80); protocol_name "" matches any ("tcp", "udp").
// Throws OSError ("service/proto not found") when there is none.
std::uint16_t getservbyname(std::string_view service_name, std::string_view protocol_name = "");
// The service name of a port (80 -> "http"). Throws OSError ("port/proto not found") when there
// is none, ValueError for a port outside 0..65535 (Python's OverflowError).
std::string getservbyport(int port, std::string_view protocol_name = "");

// What gethostbyaddr() and gethostbyname_ex() return: Python's (hostname, aliaslist, ipaddrlist).
struct HostEntry {
    std::string hostname;
    std::vector<std::string> aliaslist;
    std::vector<std::string> ipaddrlist;
};
// gethostbyaddr(ip_address): the host's primary name, aliases and addresses. A name is resolved
// first (gaierror if that fails), as in Python; a lookup that finds nothing throws herror.
HostEntry gethostbyaddr(std::string_view ip_address);
// gethostbyname_ex(hostname): the IPv4 entry of a name (IPv4 only, as in Python). Throws herror.
HostEntry gethostbyname_ex(std::string_view hostname);

// inet_pton(family, text): the packed binary address (4 or 16 bytes). Throws OSError(EINVAL)
// for a string that is not an address, OSError(EAFNOSUPPORT) for another family.
std::string inet_pton(int family, std::string_view ip_string);
// inet_ntop(family, packed): the text form. Throws ValueError for a wrong length.
std::string inet_ntop(int family, std::string_view packed_ip);

// send_fds(sock, buffers, fds, flags, address) and recv_fds(sock, bufsize, maxfds, flags), as
// Python 3.9's: SCM_RIGHTS over an AF_UNIX socket. recv_fds's descriptors are close-on-exec.
std::size_t send_fds(Socket& sock, const std::vector<std::string_view>& buffers, std::span<const int> fds,
                     int flags = 0, const std::optional<Address>& address = std::nullopt);
RecvFds recv_fds(Socket& sock, std::size_t bufsize, std::size_t maxfds, int flags = 0);

}  // namespace tulip::socket
