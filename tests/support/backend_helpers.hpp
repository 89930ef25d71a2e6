// Helpers of the backend contract tests: an operation that records its completions, a loop
// that drives Backend::wait() until a condition holds, and raw non-blocking sockets.
#pragma once

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../../src/backend/backend.hpp"

namespace tulip::testing::backend_ops {

namespace backend = asyncio::detail;

// An operation that records what the backend tells it. Bytes of provided buffers are copied
// out and given back at once, or held (keep_buffers) until the test gives them back.
struct Probe : backend::Operation {
    backend::Backend* owner = nullptr;
    std::vector<int> results;
    std::vector<bool> mores;
    std::string data;
    bool keep_buffers = false;
    struct Slice {
        std::uint16_t id;
        std::uint32_t offset;
        int bytes;
    };
    std::vector<Slice> held;
    int finals = 0;                                    // completions with more == false

    explicit Probe(backend::Backend& b) : owner(&b) { complete = &Probe::on_complete; }

    static void on_complete(Operation& op, int r) noexcept {
        auto& p = static_cast<Probe&>(op);
        p.results.push_back(r);
        p.mores.push_back(op.more);
        if (!op.more) ++p.finals;
        if ((op.flags & backend::kProvidedBuffer) && r > 0) {
            if (p.keep_buffers) {
                p.held.push_back({op.buffer_id, op.buffer_offset, r});
            } else {
                p.data.append(reinterpret_cast<const char*>(p.owner->provided_buffer(op.buffer_id) + op.buffer_offset), r);
                p.owner->give_back(op.buffer_id);
            }
        }
    }

    // Copies the held buffers' bytes out, in order, and gives the buffers back.
    void give_back_held(std::size_t at_most = SIZE_MAX) {
        std::size_t n = std::min(at_most, held.size());
        for (std::size_t i = 0; i < n; ++i) {
            auto [id, offset, bytes] = held[i];
            data.append(reinterpret_cast<const char*>(owner->provided_buffer(id) + offset), bytes);
            owner->give_back(id);
        }
        held.erase(held.begin(), held.begin() + static_cast<std::ptrdiff_t>(n));
    }

    int last() const { return results.empty() ? 0 : results.back(); }
};

// Calls wait() until done() holds; fails after a generous time (a hang, not a timing check).
template <class Done>
void drive(backend::Backend& b, Done&& done, const char* what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) FAIL("timed out waiting for " << what);
        b.wait(50'000'000);
    }
}

// An fd that the backend forgets and that is closed at the end of the test.
class BackendFd {
public:
    BackendFd() = default;
    BackendFd(backend::Backend& b, int fd) : b_(&b), fd_(fd) {}
    BackendFd(BackendFd&& o) noexcept : b_(o.b_), fd_(std::exchange(o.fd_, -1)) {}
    BackendFd& operator=(BackendFd&& o) noexcept {
        reset();
        b_ = o.b_;
        fd_ = std::exchange(o.fd_, -1);
        return *this;
    }
    ~BackendFd() { reset(); }
    int get() const { return fd_; }
    void reset() {
        if (fd_ < 0) return;
        if (b_) b_->forget(fd_);
        ::close(std::exchange(fd_, -1));
    }

private:
    backend::Backend* b_ = nullptr;
    int fd_ = -1;
};

inline std::pair<int, int> unix_stream_pair() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    return {sv[0], sv[1]};
}

inline sockaddr_in loopback(std::uint16_t port = 0) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

inline sockaddr_in local_address(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    return a;
}

inline int new_socket(int type) {
    int fd = ::socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    return fd;
}

inline int tcp_listener() {
    int fd = new_socket(SOCK_STREAM);
    sockaddr_in a = loopback();
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 4096) == 0);
    return fd;
}

// A connected TCP pair on loopback, made without the backend: (client, server).
inline std::pair<int, int> tcp_pair(int listener) {
    int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(client >= 0);
    sockaddr_in a = local_address(listener);
    REQUIRE(::connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    pollfd p{listener, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10'000) == 1);
    int server = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    REQUIRE(server >= 0);
    REQUIRE(::fcntl(client, F_SETFL, ::fcntl(client, F_GETFL) | O_NONBLOCK) == 0);
    return {client, server};
}

inline void prepare_recv(Probe& p, int fd, void* buf, std::size_t len) {
    p.kind = backend::OpKind::recv;
    p.fd = fd;
    p.buf = buf;
    p.len = len;
}

inline void prepare_multishot_recv(Probe& p, int fd) {
    p.kind = backend::OpKind::recv;
    p.fd = fd;
    p.flags = backend::kMultishot | backend::kProvidedBuffer;
}

inline void prepare_send(Probe& p, int fd, iovec* iov, std::size_t count) {
    p.kind = backend::OpKind::send;
    p.fd = fd;
    p.msg = {};
    p.msg.msg_iov = iov;
    p.msg.msg_iovlen = count;
}

// Everything readable on fd now, read directly.
inline std::string drain_now(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace tulip::testing::backend_ops
