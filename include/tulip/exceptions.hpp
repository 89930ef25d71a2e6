// Python's built-in OSError hierarchy, as C++ exceptions.
//
// OSError derives from std::system_error and carries errno; the subclasses mirror the ones Python
// picks for each errno (PEP 3151), so `catch (const tulip::ConnectionResetError&)` reads like
// `except ConnectionResetError:`.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace tulip {

class OSError : public std::system_error {
public:
    // `what` names the failing call and its argument, e.g. "connect 127.0.0.1:9".
    OSError(int err, const std::string& what);
    int errno_value() const noexcept { return code().value(); }

protected:
    // For the OSError family members whose code is not an errno, in a category of their own
    // (socket::gaierror carries EAI_* codes, as Python's gaierror.errno does).
    OSError(std::error_code code, const std::string& what);
};

#define TULIP_OSERROR_SUBCLASS(Name, Base)                                                        \
    class Name : public Base {                                                                    \
    public:                                                                                       \
        using Base::Base;                                                                         \
    };

TULIP_OSERROR_SUBCLASS(BlockingIOError, OSError)
TULIP_OSERROR_SUBCLASS(ChildProcessError, OSError)
TULIP_OSERROR_SUBCLASS(ConnectionError, OSError)
TULIP_OSERROR_SUBCLASS(BrokenPipeError, ConnectionError)
TULIP_OSERROR_SUBCLASS(ConnectionAbortedError, ConnectionError)
TULIP_OSERROR_SUBCLASS(ConnectionRefusedError, ConnectionError)
TULIP_OSERROR_SUBCLASS(ConnectionResetError, ConnectionError)
TULIP_OSERROR_SUBCLASS(FileExistsError, OSError)
TULIP_OSERROR_SUBCLASS(FileNotFoundError, OSError)
TULIP_OSERROR_SUBCLASS(InterruptedError, OSError)
TULIP_OSERROR_SUBCLASS(IsADirectoryError, OSError)
TULIP_OSERROR_SUBCLASS(NotADirectoryError, OSError)
TULIP_OSERROR_SUBCLASS(PermissionError, OSError)
TULIP_OSERROR_SUBCLASS(ProcessLookupError, OSError)
// Python 3.11 made asyncio.TimeoutError an alias of this one; tulip does the same.
TULIP_OSERROR_SUBCLASS(TimeoutError, OSError)

#undef TULIP_OSERROR_SUBCLASS

// Python's RuntimeError: misuse of an object in its current state (a closed loop, a second
// running loop in one thread, ...).
class RuntimeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Python's ValueError: a value that the operation cannot take (a negative Semaphore value, a
// BoundedSemaphore released too many times, a negative fd). It is a std::invalid_argument, so code
// that catches the standard type catches it too.
class ValueError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// Python's KeyError: a lookup of a key that is not there (selectors' get_key of an unregistered
// file object). It is a std::out_of_range, as std::map::at would throw.
class KeyError : public std::out_of_range {
public:
    using std::out_of_range::out_of_range;
};

// Python's ExceptionGroup (3.11): several exceptions raised together, as
// socket::create_connection(..., all_errors = true) raises every attempt's error, and a TaskGroup
// its tasks' (asyncio::ExceptionGroup, a subclass). C++ has no `except*`: look at exceptions()
// and rethrow each to catch it by type. what() is the message, the count, and each
// sub-exception's message in order: "create_connection failed (2 sub-exceptions): ...; ...".
class ExceptionGroup : public std::exception {
public:
    ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions)
        : ExceptionGroup(std::move(message), std::move(exceptions), &describe_exception) {}

    const std::string& message() const noexcept { return message_; }
    const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }
    const char* what() const noexcept override { return what_.c_str(); }

protected:
    // `describe` gives each sub-exception's text in what() (a subclass may know more types).
    using Describe = std::string (*)(const std::exception_ptr&);
    ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions, Describe describe)
        : message_(std::move(message)), exceptions_(std::move(exceptions)) {
        what_ = message_ + " (" + std::to_string(exceptions_.size()) + " sub-exception" +
                (exceptions_.size() == 1 ? "" : "s") + ")";
        for (std::size_t i = 0; i < exceptions_.size(); ++i)
            what_ += (i == 0 ? ": " : "; ") + describe(exceptions_[i]);
    }

    static std::string describe_exception(const std::exception_ptr& e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            return x.what();
        } catch (...) {
            return "unknown exception";
        }
    }

private:
    std::string message_;
    std::vector<std::exception_ptr> exceptions_;
    std::string what_;
};

// Throws the OSError subclass that Python would raise for `err`, with the message
// "<what>: <strerror(err)>".
[[noreturn]] void raise_os_error(int err, const std::string& what);

// raise_os_error(errno, what) for a syscall that returned -1.
[[noreturn]] void raise_last_os_error(const std::string& what);

}  // namespace tulip
