// socket.gaierror and the timeout error.
#include <netdb.h>

#include <cerrno>

#include "sock_call.hpp"
#include "tulip/socket.hpp"

namespace tulip::socket {

namespace {

class GaiCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "getaddrinfo"; }
    std::string message(int code) const override { return ::gai_strerror(code); }
};

// ETIMEDOUT spelt as Python's socket.timeout says it: "timed out". std::system_error appends the
// category's message to the what-string, and strerror(ETIMEDOUT) ("Connection timed out") is not
// what happened; errno and the generic condition stay ETIMEDOUT, so
// `e.code() == std::errc::timed_out` and errno_value() still hold.
class TimedOutCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "socket"; }
    std::string message(int) const override { return "timed out"; }
    std::error_condition default_error_condition(int code) const noexcept override {
        return std::error_condition(code, std::generic_category());
    }
};

const std::error_category& timed_out_category() noexcept {
    static const TimedOutCategory category;
    return category;
}

// A TimeoutError built on that category (the constructor taking a code is protected).
class SocketTimeout final : public TimeoutError {
public:
    explicit SocketTimeout(const std::string& what)
        : TimeoutError(std::error_code(ETIMEDOUT, timed_out_category()), what) {}
};

}  // namespace

const std::error_category& gai_category() noexcept {
    static const GaiCategory category;
    return category;
}

gaierror::gaierror(int eai_code, const std::string& what) : OSError(std::error_code(eai_code, gai_category()), what) {}

namespace detail {

void raise_timeout(const std::string& what) { throw SocketTimeout(what); }

}  // namespace detail
}  // namespace tulip::socket
