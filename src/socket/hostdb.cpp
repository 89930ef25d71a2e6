// The host and services databases of the old netdb interface: gethostbyaddr, gethostbyname_ex
// (with herror, their error), getservbyport.
#include <arpa/inet.h>
#include <netdb.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "tulip/socket.hpp"

namespace tulip::socket {

namespace {

class HerrorCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "netdb"; }
    std::string message(int code) const override { return ::hstrerror(code); }
};

// The reentrant netdb calls want a scratch buffer and say ERANGE when it is too small.
template <class Call>
HostEntry lookup_host(Call call, const std::string& what) {
    std::vector<char> buffer(2048);
    ::hostent entry{};
    ::hostent* found = nullptr;
    int h_err = 0;
    for (;;) {
        int rc = call(&entry, buffer.data(), buffer.size(), &found, &h_err);
        if (rc == ERANGE && buffer.size() < (std::size_t{1} << 20)) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (found != nullptr) break;
        if (h_err == NETDB_INTERNAL) raise_os_error(rc != 0 ? rc : errno, what);
        throw herror(h_err, what);
    }
    HostEntry result{found->h_name ? found->h_name : "", {}, {}};
    for (char** alias = found->h_aliases; alias && *alias; ++alias) result.aliaslist.emplace_back(*alias);
    for (char** addr = found->h_addr_list; addr && *addr; ++addr) {
        char text[INET6_ADDRSTRLEN] = {};
        if (::inet_ntop(found->h_addrtype, *addr, text, sizeof text)) result.ipaddrlist.emplace_back(text);
    }
    return result;
}

// CPython's setipaddr(AF_UNSPEC): a numeric address as it is, else the first address of the name.
Address address_of(std::string_view host, const std::string& what) {
    std::string text(host);
    unsigned char packed[sizeof(::in6_addr)];
    if (::inet_pton(AF_INET, text.c_str(), packed) == 1) return Address::ipv4(host, 0);
    if (::inet_pton(AF_INET6, text.c_str(), packed) == 1) return Address::ipv6(host, 0);
    try {
        return getaddrinfo(host, std::nullopt, 0, SOCK_STREAM).front().address;
    } catch (const gaierror& e) {
        throw gaierror(e.errno_value(), what);  // named after the call the user made
    }
}

}  // namespace

const std::error_category& herror_category() noexcept {
    static const HerrorCategory category;
    return category;
}

herror::herror(int h_errno_code, const std::string& what)
    : OSError(std::error_code(h_errno_code, herror_category()), what) {}

HostEntry gethostbyaddr(std::string_view ip_address) {
    std::string what = "gethostbyaddr " + std::string(ip_address);
    Address address = address_of(ip_address, what);
    ::sockaddr_storage ss;
    address.to_sockaddr(ss);
    const void* raw;
    ::socklen_t raw_len;
    if (address.family() == AF_INET) {
        raw = &reinterpret_cast<const ::sockaddr_in*>(&ss)->sin_addr;
        raw_len = sizeof(::in_addr);
    } else {
        raw = &reinterpret_cast<const ::sockaddr_in6*>(&ss)->sin6_addr;
        raw_len = sizeof(::in6_addr);
    }
    int family = address.family();
    return lookup_host(
        [&](::hostent* entry, char* buf, std::size_t len, ::hostent** found, int* h_err) {
            return ::gethostbyaddr_r(raw, raw_len, family, entry, buf, len, found, h_err);
        },
        what);
}

HostEntry gethostbyname_ex(std::string_view hostname) {
    std::string name(hostname);
    return lookup_host(
        [&](::hostent* entry, char* buf, std::size_t len, ::hostent** found, int* h_err) {
            return ::gethostbyname_r(name.c_str(), entry, buf, len, found, h_err);
        },
        "gethostbyname_ex " + name);
}

std::string getservbyport(int port, std::string_view protocol_name) {
    if (port < 0 || port > 65535)
        throw ValueError("getservbyport: port must be 0-65535 (got " + std::to_string(port) + ")");
    std::string proto(protocol_name);
    ::servent entry{};
    ::servent* found = nullptr;
    char buffer[4096];
    int rc = ::getservbyport_r(static_cast<int>(htons(static_cast<std::uint16_t>(port))),
                               proto.empty() ? nullptr : proto.c_str(), &entry, buffer, sizeof buffer, &found);
    std::string what = "getservbyport " + std::to_string(port) + (proto.empty() ? "" : "/" + proto);
    if (rc != 0) raise_os_error(rc, what);
    if (found == nullptr) raise_os_error(ENOENT, what + ": port/proto not found");
    return found->s_name;
}

}  // namespace tulip::socket
