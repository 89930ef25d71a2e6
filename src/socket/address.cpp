// socket addresses: the typed value and its sockaddr form.
#include <net/if.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include <fmt/format.h>

#include "tulip/socket.hpp"

namespace tulip::socket {

namespace {

constexpr std::size_t kSunPathSize = sizeof(::sockaddr_un{}.sun_path);

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

Address Address::ipv4(std::string_view host, std::uint16_t port) {
    Address a;
    a.family_ = AF_INET;
    a.port_ = port;
    ::in_addr in{};
    if (host.empty()) {
        in.s_addr = htonl(INADDR_ANY);
    } else if (host == "<broadcast>") {
        in.s_addr = htonl(INADDR_BROADCAST);
    } else if (::inet_pton(AF_INET, std::string(host).c_str(), &in) != 1) {
        throw ValueError("Address::ipv4: not a numeric IPv4 address: " + quoted(host));
    }
    std::memcpy(a.addr_.data(), &in, sizeof in);
    return a;
}

Address Address::ipv6(std::string_view host, std::uint16_t port, std::uint32_t flowinfo, std::uint32_t scope_id) {
    Address a;
    a.family_ = AF_INET6;
    a.port_ = port;
    a.flowinfo_ = flowinfo;
    a.scope_id_ = scope_id;
    std::string text(host);
    if (auto percent = text.find('%'); percent != std::string::npos) {
        std::string zone = text.substr(percent + 1);
        text.resize(percent);
        unsigned index = ::if_nametoindex(zone.c_str());
        if (index == 0) {
            char* end = nullptr;
            unsigned long n = std::strtoul(zone.c_str(), &end, 10);
            if (zone.empty() || *end != '\0' || n > UINT32_MAX)
                throw ValueError("Address::ipv6: unknown zone in " + quoted(host));
            index = static_cast<unsigned>(n);
        }
        a.scope_id_ = index;
    }
    ::in6_addr in6 = in6addr_any;
    if (!text.empty() && ::inet_pton(AF_INET6, text.c_str(), &in6) != 1)
        throw ValueError("Address::ipv6: not a numeric IPv6 address: " + quoted(host));
    std::memcpy(a.addr_.data(), &in6, sizeof in6);
    return a;
}

Address Address::unix_path(std::string_view path) {
    if (path.size() > kSunPathSize)
        raise_os_error(ENAMETOOLONG, "AF_UNIX path too long (" + std::to_string(path.size()) + " bytes)");
    Address a;
    a.family_ = AF_UNIX;
    a.path_ = std::string(path);
    return a;
}

Address Address::unix_abstract(std::string_view name) {
    std::string path(1, '\0');
    path.append(name);
    return unix_path(path);
}

Address Address::from_sockaddr(const ::sockaddr* addr, ::socklen_t len) {
    Address a;
    if (addr == nullptr || len < static_cast<::socklen_t>(sizeof(::sa_family_t))) return a;
    switch (addr->sa_family) {
    case AF_INET: {
        ::sockaddr_in in{};
        std::memcpy(&in, addr, std::min<std::size_t>(len, sizeof in));
        a.family_ = AF_INET;
        a.port_ = ntohs(in.sin_port);
        std::memcpy(a.addr_.data(), &in.sin_addr, sizeof in.sin_addr);
        break;
    }
    case AF_INET6: {
        ::sockaddr_in6 in6{};
        std::memcpy(&in6, addr, std::min<std::size_t>(len, sizeof in6));
        a.family_ = AF_INET6;
        a.port_ = ntohs(in6.sin6_port);
        a.flowinfo_ = ntohl(in6.sin6_flowinfo);
        a.scope_id_ = in6.sin6_scope_id;
        std::memcpy(a.addr_.data(), &in6.sin6_addr, sizeof in6.sin6_addr);
        break;
    }
    case AF_UNIX: {
        a.family_ = AF_UNIX;
        auto un = reinterpret_cast<const ::sockaddr_un*>(addr);
        std::size_t offset = offsetof(::sockaddr_un, sun_path);
        std::size_t n = len > offset ? std::min<std::size_t>(len - offset, kSunPathSize) : 0;
        if (n > 0 && un->sun_path[0] != '\0') n = ::strnlen(un->sun_path, n);  // a path ends at NUL
        a.path_.assign(un->sun_path, n);                                        // an abstract name does not
        break;
    }
    default:
        a.family_ = addr->sa_family;
        break;
    }
    return a;
}

::socklen_t Address::to_sockaddr(::sockaddr_storage& storage) const {
    std::memset(&storage, 0, sizeof storage);
    switch (family_) {
    case AF_INET: {
        auto in = reinterpret_cast<::sockaddr_in*>(&storage);
        in->sin_family = AF_INET;
        in->sin_port = htons(port_);
        std::memcpy(&in->sin_addr, addr_.data(), sizeof in->sin_addr);
        return sizeof(::sockaddr_in);
    }
    case AF_INET6: {
        auto in6 = reinterpret_cast<::sockaddr_in6*>(&storage);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port_);
        in6->sin6_flowinfo = htonl(flowinfo_);
        in6->sin6_scope_id = scope_id_;
        std::memcpy(&in6->sin6_addr, addr_.data(), sizeof in6->sin6_addr);
        return sizeof(::sockaddr_in6);
    }
    case AF_UNIX: {
        auto un = reinterpret_cast<::sockaddr_un*>(&storage);
        un->sun_family = AF_UNIX;
        std::memcpy(un->sun_path, path_.data(), path_.size());
        // As CPython: the length covers the name exactly (the kernel terminates a path itself),
        // which is what an abstract name needs.
        return static_cast<::socklen_t>(offsetof(::sockaddr_un, sun_path) + path_.size());
    }
    default:
        storage.ss_family = static_cast<::sa_family_t>(family_);
        return sizeof(::sa_family_t);
    }
}

std::string Address::host() const {
    char text[INET6_ADDRSTRLEN] = {};
    if (family_ == AF_INET || family_ == AF_INET6) ::inet_ntop(family_, addr_.data(), text, sizeof text);
    return text;
}

std::string Address::to_string() const {
    switch (family_) {
    case AF_INET:
        return fmt::format("{}:{}", host(), port_);
    case AF_INET6: {
        std::string zone;
        if (scope_id_ != 0) {
            char name[IF_NAMESIZE] = {};
            zone = ::if_indextoname(scope_id_, name) ? fmt::format("%{}", name) : fmt::format("%{}", scope_id_);
        }
        return fmt::format("[{}{}]:{}", host(), zone, port_);
    }
    case AF_UNIX:
        if (is_abstract()) return fmt::format("@{}", std::string_view(path_).substr(1));
        return path_;
    case AF_UNSPEC:
        return "<unspecified>";
    default:
        return fmt::format("<family {}>", family_);
    }
}

}  // namespace tulip::socket
