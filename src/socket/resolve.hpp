// Name resolution for Socket::bind(host, port) and Socket::connect(host, port).
#pragma once

#include <cstdint>
#include <string_view>

#include "tulip/socket.hpp"

namespace tulip::socket::detail {

// CPython's setipaddr(): the address of `host` for a socket of `family`. "" is the wildcard
// address, "<broadcast>" INADDR_BROADCAST; otherwise the first getaddrinfo() answer.
// Throws gaierror naming `call`, or ValueError for a family without host addresses.
Address resolve_for(int family, std::string_view host, std::uint16_t port, const char* call);

}  // namespace tulip::socket::detail
