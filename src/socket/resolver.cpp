// The resolver and address-text functions: getaddrinfo, getnameinfo, gethostname,
// gethostbyname, getservbyname, inet_pton, inet_ntop.
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

#include "resolve.hpp"
#include "tulip/socket.hpp"

namespace tulip::socket {

namespace {

// The error of a failed getaddrinfo()/getnameinfo(): EAI_SYSTEM is errno's OSError, as in CPython.
[[noreturn]] void raise_gai_error(int code, const std::string& what) {
    if (code == EAI_SYSTEM) raise_last_os_error(what);
    throw gaierror(code, what);
}

std::string describe_host(std::optional<std::string_view> host, std::string_view port) {
    std::string text = host ? std::string(*host) : std::string("None");
    if (host && host->find(':') != std::string_view::npos) text = "[" + text + "]";  // an IPv6 literal
    return text + ":" + std::string(port);
}

// `what` names the call in error messages.
std::vector<AddrInfo> getaddrinfo_impl(std::optional<std::string_view> host, const char* service,
                                       const std::string& what, int family, int type, int proto, int flags) {
    ::addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = type;
    hints.ai_protocol = proto;
    hints.ai_flags = flags;
    std::string host_text = host ? std::string(*host) : std::string();
    ::addrinfo* result = nullptr;
    int rc;
    do {
        rc = ::getaddrinfo(host ? host_text.c_str() : nullptr, service, &hints, &result);
    } while (rc == EAI_SYSTEM && errno == EINTR);
    if (rc != 0) raise_gai_error(rc, what);
    std::unique_ptr<::addrinfo, decltype(&::freeaddrinfo)> owner(result, &::freeaddrinfo);
    std::vector<AddrInfo> entries;
    for (auto ai = result; ai != nullptr; ai = ai->ai_next) {
        entries.push_back(AddrInfo{ai->ai_family, ai->ai_socktype, ai->ai_protocol,
                                   ai->ai_canonname ? ai->ai_canonname : "",
                                   Address::from_sockaddr(ai->ai_addr, ai->ai_addrlen)});
    }
    return entries;
}

}  // namespace

std::vector<AddrInfo> getaddrinfo(std::optional<std::string_view> host, int port, int family, int type, int proto,
                                  int flags) {
    std::string port_text = std::to_string(port);
    if (port < 0 || port > 65535) throw ValueError("getaddrinfo: port must be 0-65535 (got " + port_text + ")");
    // A numeric port never needs the services database.
    return getaddrinfo_impl(host, port_text.c_str(), "getaddrinfo " + describe_host(host, port_text), family, type,
                            proto, flags | AI_NUMERICSERV);
}

std::vector<AddrInfo> getaddrinfo(std::optional<std::string_view> host, std::nullopt_t, int family, int type,
                                  int proto, int flags) {
    return getaddrinfo_impl(host, nullptr, "getaddrinfo " + describe_host(host, "None"), family, type, proto, flags);
}

std::vector<AddrInfo> getaddrinfo(std::optional<std::string_view> host, std::string_view service, int family, int type,
                                  int proto, int flags) {
    std::string service_text(service);
    return getaddrinfo_impl(host, service_text.c_str(), "getaddrinfo " + describe_host(host, service_text), family,
                            type, proto, flags);
}

std::pair<std::string, std::string> getnameinfo(const Address& address, int flags) {
    ::sockaddr_storage ss;
    ::socklen_t len = address.to_sockaddr(ss);
    char host[NI_MAXHOST] = {};
    char serv[NI_MAXSERV] = {};
    int rc;
    do {
        rc = ::getnameinfo(reinterpret_cast<::sockaddr*>(&ss), len, host, sizeof host, serv, sizeof serv, flags);
    } while (rc == EAI_SYSTEM && errno == EINTR);
    if (rc != 0) raise_gai_error(rc, "getnameinfo " + address.to_string());
    return {host, serv};
}

std::string gethostname() {
    char name[HOST_NAME_MAX + 1] = {};
    if (::gethostname(name, sizeof name) < 0) raise_last_os_error("gethostname");
    return name;
}

std::string gethostbyname(std::string_view hostname) {
    // CPython resolves with getaddrinfo() too, so failures are gaierror there as well.
    auto entries = getaddrinfo_impl(hostname, nullptr, "gethostbyname " + std::string(hostname), AF_INET,
                                    SOCK_STREAM, 0, 0);
    return entries.front().address.host();
}

std::uint16_t getservbyname(std::string_view service_name, std::string_view protocol_name) {
    std::string name(service_name), proto(protocol_name);
    ::servent entry{};
    ::servent* found = nullptr;
    char buffer[4096];
    int rc = ::getservbyname_r(name.c_str(), proto.empty() ? nullptr : proto.c_str(), &entry, buffer, sizeof buffer,
                               &found);
    if (rc != 0) raise_os_error(rc, "getservbyname " + name + (proto.empty() ? "" : "/" + proto));
    if (found == nullptr)
        raise_os_error(ENOENT, "getservbyname " + name + (proto.empty() ? "" : "/" + proto) + ": service/proto not found");
    return ntohs(static_cast<std::uint16_t>(found->s_port));
}

std::string inet_pton(int family, std::string_view ip_string) {
    unsigned char packed[sizeof(::in6_addr)];
    std::size_t size;
    if (family == AF_INET)
        size = sizeof(::in_addr);
    else if (family == AF_INET6)
        size = sizeof(::in6_addr);
    else
        raise_os_error(EAFNOSUPPORT, "inet_pton family " + std::to_string(family));
    std::string text(ip_string);
    if (::inet_pton(family, text.c_str(), packed) != 1)
        raise_os_error(EINVAL, "inet_pton '" + text + "': illegal IP address string");
    return std::string(reinterpret_cast<const char*>(packed), size);
}

std::string inet_ntop(int family, std::string_view packed_ip) {
    std::size_t size;
    if (family == AF_INET)
        size = sizeof(::in_addr);
    else if (family == AF_INET6)
        size = sizeof(::in6_addr);
    else
        throw ValueError("inet_ntop: unknown address family " + std::to_string(family));
    if (packed_ip.size() != size)
        throw ValueError("inet_ntop: invalid length of packed IP address string (" + std::to_string(packed_ip.size()) +
                         " bytes)");
    unsigned char packed[sizeof(::in6_addr)];
    std::memcpy(packed, packed_ip.data(), size);
    char text[INET6_ADDRSTRLEN] = {};
    if (::inet_ntop(family, packed, text, sizeof text) == nullptr) raise_last_os_error("inet_ntop");
    return text;
}

namespace detail {

Address resolve_for(int family, std::string_view host, std::uint16_t port, const char* call) {
    if (family != AF_INET && family != AF_INET6)
        throw ValueError(std::string(call) + ": a (host, port) address needs an AF_INET or AF_INET6 socket");
    if (host.empty()) return family == AF_INET ? Address::ipv4("", port) : Address::ipv6("", port);
    if (host == "<broadcast>" && family == AF_INET) return Address::ipv4(host, port);
    auto entries = getaddrinfo_impl(host, nullptr, std::string(call) + " " + describe_host(host, std::to_string(port)),
                                    family, SOCK_STREAM, 0, 0);
    Address first = entries.front().address;  // getaddrinfo never succeeds with an empty list
    return family == AF_INET ? Address::ipv4(first.host(), port)
                             : Address::ipv6(first.host(), port, first.flowinfo(), first.scope_id());
}

}  // namespace detail
}  // namespace tulip::socket
