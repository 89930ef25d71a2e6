// Socket: recvmsg/sendmsg with ancillary data, and send_fds/recv_fds (SCM_RIGHTS).
#include <poll.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#include "sock_call.hpp"
#include "tulip/socket.hpp"

namespace tulip::socket {

using detail::Deadline;
using detail::sock_call;

namespace {

// A control buffer aligned for cmsghdr, zeroed.
class ControlBuffer {
public:
    explicit ControlBuffer(std::size_t size) : words_((size + sizeof(Word) - 1) / sizeof(Word)), size_(size) {}
    void* data() { return size_ ? words_.data() : nullptr; }
    std::size_t size() const { return size_; }

private:
    using Word = std::max_align_t;
    std::vector<Word> words_;
    std::size_t size_;
};

}  // namespace

RecvMsg Socket::recvmsg(std::size_t bufsize, std::size_t ancbufsize, int flags) {
    int fd = checked_fd("recvmsg");
    RecvMsg out;
    out.data.resize(bufsize);
    ControlBuffer control(ancbufsize);
    ::sockaddr_storage ss{};
    ::iovec iov{out.data.data(), bufsize};
    ::msghdr msg{};
    Deadline deadline(timeout_);
    // Received fds are close-on-exec, like every fd tulip makes.
    auto n = sock_call(
        fd, deadline, POLLIN,
        [&] {
            msg = ::msghdr{};
            msg.msg_name = &ss;
            msg.msg_namelen = sizeof ss;
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.data();
            msg.msg_controllen = control.size();
            return ::recvmsg(fd, &msg, flags | MSG_CMSG_CLOEXEC);
        },
        [] { return std::string("recvmsg"); });
    out.data.resize(static_cast<std::size_t>(n));
    out.msg_flags = msg.msg_flags;
    out.address = Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), msg.msg_namelen);
    if (msg.msg_controllen > 0) {
        auto begin = static_cast<const unsigned char*>(msg.msg_control);
        auto end = begin + msg.msg_controllen;
        for (::cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            auto payload = reinterpret_cast<const unsigned char*>(CMSG_DATA(c));
            if (payload > end) break;
            // With MSG_CTRUNC the last header may claim more than the buffer holds.
            std::size_t claimed = c->cmsg_len >= CMSG_LEN(0) ? c->cmsg_len - CMSG_LEN(0) : 0;
            std::size_t length = std::min<std::size_t>(claimed, static_cast<std::size_t>(end - payload));
            out.ancdata.push_back(
                AncData{c->cmsg_level, c->cmsg_type, std::string(reinterpret_cast<const char*>(payload), length)});
        }
    }
    return out;
}

std::size_t Socket::sendmsg(const std::vector<std::string_view>& buffers, const std::vector<AncData>& ancdata,
                            int flags, const std::optional<Address>& address) {
    int fd = checked_fd("sendmsg");
    std::vector<::iovec> iov;
    iov.reserve(buffers.size());
    for (auto b : buffers) iov.push_back(::iovec{const_cast<char*>(b.data()), b.size()});

    std::size_t control_size = 0;
    for (const auto& item : ancdata) control_size += CMSG_SPACE(item.cmsg_data.size());
    ControlBuffer control(control_size);

    ::sockaddr_storage ss{};
    ::msghdr msg{};
    if (address) {
        msg.msg_name = &ss;
        msg.msg_namelen = address->to_sockaddr(ss);
    }
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    if (control_size > 0) {
        ::cmsghdr* c = CMSG_FIRSTHDR(&msg);
        for (const auto& item : ancdata) {
            c->cmsg_level = item.cmsg_level;
            c->cmsg_type = item.cmsg_type;
            c->cmsg_len = CMSG_LEN(item.cmsg_data.size());
            std::memcpy(CMSG_DATA(c), item.cmsg_data.data(), item.cmsg_data.size());
            c = CMSG_NXTHDR(&msg, c);
        }
    }
    Deadline deadline(timeout_);
    auto n = sock_call(
        fd, deadline, POLLOUT, [&] { return ::sendmsg(fd, &msg, flags | MSG_NOSIGNAL); },
        [&] { return address ? "sendmsg " + address->to_string() : std::string("sendmsg"); });
    return static_cast<std::size_t>(n);
}

std::size_t send_fds(Socket& sock, const std::vector<std::string_view>& buffers, std::span<const int> fds, int flags,
                     const std::optional<Address>& address) {
    std::string rights(reinterpret_cast<const char*>(fds.data()), fds.size_bytes());
    return sock.sendmsg(buffers, {AncData{SOL_SOCKET, SCM_RIGHTS, std::move(rights)}}, flags, address);
}

RecvFds recv_fds(Socket& sock, std::size_t bufsize, std::size_t maxfds, int flags) {
    RecvMsg msg = sock.recvmsg(bufsize, CMSG_SPACE(maxfds * sizeof(int)), flags);
    RecvFds out{std::move(msg.data), {}, msg.msg_flags, std::move(msg.address)};
    for (const auto& item : msg.ancdata) {
        if (item.cmsg_level != SOL_SOCKET || item.cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = item.cmsg_data.size() / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, item.cmsg_data.data() + i * sizeof(int), sizeof fd);
            out.fds.push_back(fd);
        }
    }
    return out;
}

}  // namespace tulip::socket
