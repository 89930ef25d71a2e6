// Socket: send and receive.
#include <poll.h>

#include <cerrno>

#include "sock_call.hpp"
#include "tulip/socket.hpp"

namespace tulip::socket {

using detail::Deadline;
using detail::sock_call;

namespace {

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span<const char>(s.data(), s.size())); }

std::size_t checked_nbytes(std::span<std::byte> buffer, std::size_t nbytes, const char* call) {
    if (nbytes == 0) return buffer.size();
    if (nbytes > buffer.size())
        throw ValueError(std::string(call) + ": buffer too small for requested bytes (" + std::to_string(nbytes) +
                         " > " + std::to_string(buffer.size()) + ")");
    return nbytes;
}

}  // namespace

std::size_t Socket::recv_into(std::span<std::byte> buffer, std::size_t nbytes, int flags) {
    int fd = checked_fd("recv_into");
    nbytes = checked_nbytes(buffer, nbytes, "recv_into");
    Deadline deadline(timeout_);
    auto n = sock_call(
        fd, deadline, POLLIN, [&] { return ::recv(fd, buffer.data(), nbytes, flags); },
        [] { return std::string("recv_into"); });
    return static_cast<std::size_t>(n);
}

std::string Socket::recv(std::size_t bufsize, int flags) {
    int fd = checked_fd("recv");
    std::string data(bufsize, '\0');
    Deadline deadline(timeout_);
    auto n = sock_call(
        fd, deadline, POLLIN, [&] { return ::recv(fd, data.data(), bufsize, flags); },
        [] { return std::string("recv"); });
    data.resize(static_cast<std::size_t>(n));
    return data;
}

namespace {

std::pair<std::size_t, Address> recvfrom_impl(int fd, double timeout, std::span<std::byte> buffer, int flags,
                                              const char* call) {
    Deadline deadline(timeout);
    ::sockaddr_storage ss{};
    ::socklen_t len = 0;
    auto n = sock_call(
        fd, deadline, POLLIN,
        [&] {
            len = sizeof ss;
            return ::recvfrom(fd, buffer.data(), buffer.size(), flags, reinterpret_cast<::sockaddr*>(&ss), &len);
        },
        [call] { return std::string(call); });
    return {static_cast<std::size_t>(n), Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len)};
}

}  // namespace

std::pair<std::size_t, Address> Socket::recvfrom_into(std::span<std::byte> buffer, std::size_t nbytes, int flags) {
    int fd = checked_fd("recvfrom_into");
    nbytes = checked_nbytes(buffer, nbytes, "recvfrom_into");
    return recvfrom_impl(fd, timeout_, buffer.first(nbytes), flags, "recvfrom_into");
}

std::pair<std::string, Address> Socket::recvfrom(std::size_t bufsize, int flags) {
    int fd = checked_fd("recvfrom");
    std::string data(bufsize, '\0');
    auto [n, address] =
        recvfrom_impl(fd, timeout_, std::as_writable_bytes(std::span<char>(data.data(), data.size())), flags, "recvfrom");
    data.resize(n);
    return {std::move(data), std::move(address)};
}

std::size_t Socket::send(std::span<const std::byte> data, int flags) {
    int fd = checked_fd("send");
    Deadline deadline(timeout_);
    auto n = sock_call(
        fd, deadline, POLLOUT, [&] { return ::send(fd, data.data(), data.size(), flags | MSG_NOSIGNAL); },
        [] { return std::string("send"); });
    return static_cast<std::size_t>(n);
}

std::size_t Socket::send(std::string_view data, int flags) { return send(bytes_of(data), flags); }

// Python 3.5's rule: in timeout mode the timeout bounds the whole sendall, not each send().
void Socket::sendall(std::span<const std::byte> data, int flags) {
    int fd = checked_fd("sendall");
    Deadline deadline(timeout_);
    deadline.start();
    std::size_t sent = 0;
    do {  // at least once, so that an empty datagram is still sent, as CPython does
        auto n = sock_call(
            fd, deadline, POLLOUT,
            [&] { return ::send(fd, data.data() + sent, data.size() - sent, flags | MSG_NOSIGNAL); },
            [&] { return "sendall (" + std::to_string(sent) + " of " + std::to_string(data.size()) + " bytes sent)"; });
        sent += static_cast<std::size_t>(n);
    } while (sent < data.size());
}

void Socket::sendall(std::string_view data, int flags) { sendall(bytes_of(data), flags); }

std::size_t Socket::sendto(std::span<const std::byte> data, const Address& address, int flags) {
    int fd = checked_fd("sendto");
    ::sockaddr_storage ss;
    ::socklen_t len = address.to_sockaddr(ss);
    Deadline deadline(timeout_);
    auto n = sock_call(
        fd, deadline, POLLOUT,
        [&] {
            return ::sendto(fd, data.data(), data.size(), flags | MSG_NOSIGNAL, reinterpret_cast<::sockaddr*>(&ss), len);
        },
        [&] { return "sendto " + address.to_string(); });
    return static_cast<std::size_t>(n);
}

std::size_t Socket::sendto(std::string_view data, const Address& address, int flags) {
    return sendto(bytes_of(data), address, flags);
}

}  // namespace tulip::socket
