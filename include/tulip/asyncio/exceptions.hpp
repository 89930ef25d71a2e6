// asyncio's exceptions (Python's asyncio/exceptions.py).
#pragma once

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tulip/exceptions.hpp"

namespace tulip::asyncio {

// Raised inside a task when it is cancelled.
//
// It deliberately does NOT derive from std::exception, so that a `catch (const std::exception&)`
// in user code cannot swallow a cancellation by accident (Python 3.8 moved CancelledError out of
// Exception for the same reason). Catch it by name, clean up, and rethrow.
class CancelledError {
public:
    CancelledError() = default;
    explicit CancelledError(std::string message) : message_(std::move(message)) {}
    // The message given to cancel(msg), or "" when there was none.
    const std::string& message() const noexcept { return message_; }
    const char* what() const noexcept { return message_.c_str(); }

private:
    std::string message_;
};

// asyncio.TimeoutError is the built-in TimeoutError since Python 3.11.
using TimeoutError = tulip::TimeoutError;

// Base of asyncio's own errors that are not OSErrors.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// An operation on a Future that its state does not allow (result() of a pending future,
// set_result() of a done one).
class InvalidStateError : public Error {
public:
    using Error::Error;
};

// StreamReader.readexactly()/readuntil() hit EOF first. `partial` holds what was read.
class IncompleteReadError : public Error {
public:
    IncompleteReadError(std::string partial, std::size_t expected, bool expected_known = true);
    std::string partial;
    std::size_t expected;  // meaningful when expected_known
    bool expected_known;
};

// The stream's buffer limit was reached before the separator was found. `consumed` bytes are
// still in the buffer.
class LimitOverrunError : public Error {
public:
    LimitOverrunError(const std::string& message, std::size_t consumed)
        : Error(message), consumed(consumed) {}
    std::size_t consumed;
};

class QueueEmpty : public Error {
public:
    QueueEmpty() : Error("queue is empty") {}
};

class QueueFull : public Error {
public:
    QueueFull() : Error("queue is full") {}
};

// Queue.shutdown() (Python 3.13) was called: no more puts, and gets fail once drained.
class QueueShutDown : public Error {
public:
    QueueShutDown() : Error("queue is shut down") {}
};

// The ExceptionGroup a TaskGroup raises, "unhandled errors in a TaskGroup", holding what its
// tasks (and its body) raised. It is a tulip::ExceptionGroup (message(), exceptions(), what())
// whose what() also shows a CancelledError, which is not a std::exception.
class ExceptionGroup : public tulip::ExceptionGroup {
public:
    ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions)
        : tulip::ExceptionGroup(std::move(message), std::move(exceptions), &describe) {}

private:
    static std::string describe(const std::exception_ptr& e) {
        try {
            std::rethrow_exception(e);
        } catch (const CancelledError& x) {
            return "CancelledError(" + x.message() + ")";
        } catch (...) {
            return describe_exception(e);
        }
    }
};

// sock_sendfile could not use sendfile(2) (the file is not a regular file, or the kernel refused
// it before anything was sent) and was told not to fall back to reading and sending.
class SendfileNotAvailableError : public tulip::RuntimeError {
public:
    using tulip::RuntimeError::RuntimeError;
};

}  // namespace tulip::asyncio
