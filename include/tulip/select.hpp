// Python's select module (18.3): select(), poll objects and epoll objects, as plain blocking
// wrappers over the OS calls. They do not use the event loop.
//
// Every wait retries on EINTR with the remaining time, as Python does since 3.5 (PEP 475): a
// signal handler runs, but no InterruptedError reaches the caller.
//
// The event constants have Python's names and Linux's values (checked against the system headers
// where they are used). <poll.h> defines POLLIN and friends as macros, so in a file that includes
// it the macros, which have the same values, stand in for tulip::select::POLLIN and the rest. kqueue/kevent (BSD, macOS) and /dev/poll (Solaris) are not built on Linux; see
// docs/select_and_selectors.md.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tulip::select {

// ---------------------------------------------------------------------------------------------
// File objects and timeouts
// ---------------------------------------------------------------------------------------------

// What Python accepts wherever it wants a file: an int fd, or an object with a fileno() method
// (a future tulip::socket::Socket), or a pointer to one.
template <class T>
concept FileLike = std::same_as<std::remove_cvref_t<T>, int> ||
                   requires(const T& f) {
                       { f.fileno() } -> std::convertible_to<int>;
                   } ||
                   requires(const T& f) {
                       { f->fileno() } -> std::convertible_to<int>;
                   };

// The fd of a file object (Python's PyObject_AsFileDescriptor). Throws ValueError for a negative
// fd: "file descriptor cannot be a negative integer (-1)".
template <FileLike T>
int fileno_of(const T& f);

// How long a call may wait: none (block until something is ready) or a duration. What a negative
// duration means is the caller's business, as in Python (select() refuses it, poll() and
// epoll.poll() block, a selector does not wait). Durations are rounded up to what the OS call
// takes and clamped to about 146 years, so a huge one cannot overflow.
class Timeout {
public:
    Timeout() noexcept = default;  // none: block
    Timeout(std::nullopt_t) noexcept {}
    template <class Rep, class Period>
    Timeout(std::chrono::duration<Rep, Period> d) : ns_(clamp(std::chrono::duration<double, std::nano>(d).count())) {}
    template <class Rep, class Period>
    Timeout(std::optional<std::chrono::duration<Rep, Period>> d) {
        if (d) ns_ = clamp(std::chrono::duration<double, std::nano>(*d).count());
    }
    // Python's float timeouts. NaN is a ValueError, as in Python.
    static Timeout seconds(double s);
    static Timeout milliseconds(double ms);

    bool is_none() const noexcept { return !ns_.has_value(); }
    // The duration; only when !is_none().
    std::chrono::nanoseconds value() const noexcept { return ns_.value_or(std::chrono::nanoseconds{0}); }

private:
    static std::chrono::nanoseconds clamp(double ns);
    std::optional<std::chrono::nanoseconds> ns_;
};

// ---------------------------------------------------------------------------------------------
// select()
// ---------------------------------------------------------------------------------------------

// The three lists of select() that are ready, in the order they were given (a file given twice
// is reported twice, as in Python). `auto [r, w, x] = select::select(...)`.
template <class T>
struct SelectResult {
    std::vector<T> rlist, wlist, xlist;
};

// select.select(rlist, wlist, xlist[, timeout]). Throws ValueError for a negative fd or one at or
// above FD_SETSIZE ("filedescriptor out of range in select()"), ValueError("timeout must be
// non-negative"), and OSError (EBADF for a closed fd, ...).
SelectResult<int> select(const std::vector<int>& rlist, const std::vector<int>& wlist,
                         const std::vector<int>& xlist, Timeout timeout = {});
SelectResult<int> select(const std::vector<int>& rlist, const std::vector<int>& wlist,
                         const std::vector<int>& xlist, double timeout_seconds);

// The same over any copyable file objects (Socket*, a struct with fileno(), ...): the ready ones are
// returned as copies of the elements given.
template <FileLike T>
    requires std::copyable<T> && (!std::same_as<T, int>)
SelectResult<T> select(const std::vector<T>& rlist, const std::vector<T>& wlist, const std::vector<T>& xlist,
                       Timeout timeout = {});
template <FileLike T>
    requires std::copyable<T> && (!std::same_as<T, int>)
SelectResult<T> select(const std::vector<T>& rlist, const std::vector<T>& wlist, const std::vector<T>& xlist,
                       double timeout_seconds) {
    return select(rlist, wlist, xlist, Timeout::seconds(timeout_seconds));
}

// ---------------------------------------------------------------------------------------------
// poll objects
// ---------------------------------------------------------------------------------------------

namespace detail {
inline constexpr int poll_in = 0x001, poll_pri = 0x002, poll_out = 0x004, poll_err = 0x008, poll_hup = 0x010,
                     poll_nval = 0x020, poll_rdnorm = 0x040, poll_rdband = 0x080, poll_wrnorm = 0x100,
                     poll_wrband = 0x200, poll_msg = 0x400, poll_rdhup = 0x2000;
}  // namespace detail

#ifndef POLLIN
inline constexpr int POLLIN = detail::poll_in;  // there is data to read
inline constexpr int POLLPRI = detail::poll_pri;  // there is urgent data to read
inline constexpr int POLLOUT = detail::poll_out;  // ready for output: writing will not block
inline constexpr int POLLERR = detail::poll_err;  // error condition (output only)
inline constexpr int POLLHUP = detail::poll_hup;  // hung up (output only)
inline constexpr int POLLNVAL = detail::poll_nval;  // invalid request: fd not open (output only)
inline constexpr int POLLRDNORM = detail::poll_rdnorm;
inline constexpr int POLLRDBAND = detail::poll_rdband;
inline constexpr int POLLWRNORM = detail::poll_wrnorm;
inline constexpr int POLLWRBAND = detail::poll_wrband;
inline constexpr int POLLMSG = detail::poll_msg;
inline constexpr int POLLRDHUP = detail::poll_rdhup;  // stream peer closed or shut down writing (Linux)
#endif

// select.poll(): a set of fds with the events wanted from each, polled with poll(2). It owns no fd
// (closing a registered fd is the caller's business: poll() then reports POLLNVAL for it).
// Not thread-safe: use one object from one thread at a time.
class Poll {
public:
    // Python's default eventmask for register().
    static constexpr int default_mask = detail::poll_in | detail::poll_pri | detail::poll_out;

    // register(fd[, eventmask]); registering an fd again replaces its mask, as in Python. (A
    // trailing underscore, as PEP 8 advises, because `register` is a C++ keyword.) ValueError for a
    // negative fd or a mask that does not fit poll's 16 bits.
    void register_(int fd, int eventmask = default_mask);
    template <FileLike F>
        requires(!std::same_as<F, int>)
    void register_(const F& f, int eventmask = default_mask) {
        register_(fileno_of(f), eventmask);
    }

    // modify(fd, eventmask): FileNotFoundError (ENOENT) for an fd that is not registered, as Python.
    void modify(int fd, int eventmask);
    template <FileLike F>
        requires(!std::same_as<F, int>)
    void modify(const F& f, int eventmask) {
        modify(fileno_of(f), eventmask);
    }

    // unregister(fd): KeyError for an fd that is not registered.
    void unregister(int fd);
    template <FileLike F>
        requires(!std::same_as<F, int>)
    void unregister(const F& f) {
        unregister(fileno_of(f));
    }

    // poll([timeout]): the registered fds that have events, as (fd, revents). Python's float timeout
    // is in milliseconds; none or negative blocks, 0 returns at once.
    std::vector<std::pair<int, int>> poll(Timeout timeout = {});
    std::vector<std::pair<int, int>> poll(double timeout_ms) { return poll(Timeout::milliseconds(timeout_ms)); }

    std::size_t size() const noexcept { return fds_.size(); }

private:
    std::unordered_map<int, int> fds_;  // fd -> eventmask
};

// ---------------------------------------------------------------------------------------------
// epoll objects (Linux)
// ---------------------------------------------------------------------------------------------

#if defined(__linux__)
inline constexpr bool has_epoll = true;

inline constexpr std::uint32_t EPOLLIN = 0x001;
inline constexpr std::uint32_t EPOLLPRI = 0x002;
inline constexpr std::uint32_t EPOLLOUT = 0x004;
inline constexpr std::uint32_t EPOLLERR = 0x008;
inline constexpr std::uint32_t EPOLLHUP = 0x010;
inline constexpr std::uint32_t EPOLLRDNORM = 0x040;
inline constexpr std::uint32_t EPOLLRDBAND = 0x080;
inline constexpr std::uint32_t EPOLLWRNORM = 0x100;
inline constexpr std::uint32_t EPOLLWRBAND = 0x200;
inline constexpr std::uint32_t EPOLLMSG = 0x400;
inline constexpr std::uint32_t EPOLLRDHUP = 0x2000;
inline constexpr std::uint32_t EPOLLEXCLUSIVE = 1u << 28;  // Linux 4.5
inline constexpr std::uint32_t EPOLLWAKEUP = 1u << 29;
inline constexpr std::uint32_t EPOLLONESHOT = 1u << 30;
inline constexpr std::uint32_t EPOLLET = 1u << 31;
inline constexpr int EPOLL_CLOEXEC = 02000000;

// select.epoll: an epoll instance, owned (RAII, move-only; a moved-from Epoll is closed). It is
// always created with EPOLL_CLOEXEC, as Python's is. Every operation on a closed Epoll throws
// ValueError("I/O operation on closed epoll object"). Errors the kernel reports are thrown as the
// matching OSError: FileExistsError (EEXIST) when registering an fd twice, FileNotFoundError
// (ENOENT) when modifying or unregistering one that is not registered, OSError(EBADF) for a
// closed fd, PermissionError (EPERM) for a regular file.
class Epoll {
public:
    static constexpr std::uint32_t default_mask = EPOLLIN | EPOLLPRI | EPOLLOUT;

    // epoll(sizehint=-1, flags=0). sizehint is only checked (-1 or positive, else ValueError);
    // flags must be 0 or EPOLL_CLOEXEC (else OSError EINVAL), as in Python 3.4+.
    explicit Epoll(int sizehint = -1, int flags = 0);
    // epoll.fromfd(fd): adopts an epoll fd; the Epoll closes it.
    static Epoll fromfd(int fd);

    Epoll(Epoll&& other) noexcept : epfd_(std::exchange(other.epfd_, -1)) {}
    Epoll& operator=(Epoll&& other) noexcept;
    Epoll(const Epoll&) = delete;
    Epoll& operator=(const Epoll&) = delete;
    ~Epoll();

    // close(): releases the fd; a second close() does nothing.
    void close() noexcept;
    bool closed() const noexcept { return epfd_ < 0; }
    int fileno() const;

    // register(fd[, eventmask]); a trailing underscore because `register` is a C++ keyword.
    void register_(int fd, std::uint32_t eventmask = default_mask);
    template <FileLike F>
        requires(!std::same_as<F, int>)
    void register_(const F& f, std::uint32_t eventmask = default_mask) {
        register_(fileno_of(f), eventmask);
    }
    void modify(int fd, std::uint32_t eventmask);
    template <FileLike F>
        requires(!std::same_as<F, int>)
    void modify(const F& f, std::uint32_t eventmask) {
        modify(fileno_of(f), eventmask);
    }
    void unregister(int fd);
    template <FileLike F>
        requires(!std::same_as<F, int>)
    void unregister(const F& f) {
        unregister(fileno_of(f));
    }

    // poll(timeout=None, maxevents=-1): up to maxevents (fd, events) pairs. Python's float timeout
    // is in seconds; none or negative blocks, 0 returns at once. maxevents -1 means FD_SETSIZE-1;
    // 0 or below -1 is a ValueError.
    std::vector<std::pair<int, std::uint32_t>> poll(Timeout timeout = {}, int maxevents = -1);
    std::vector<std::pair<int, std::uint32_t>> poll(double timeout_seconds, int maxevents = -1) {
        return poll(Timeout::seconds(timeout_seconds), maxevents);
    }

private:
    struct Adopt {};
    Epoll(Adopt, int fd) noexcept : epfd_(fd) {}
    int checked_fd() const;
    void control(int op, int fd, std::uint32_t eventmask, const char* what);

    int epfd_ = -1;
};
#else
inline constexpr bool has_epoll = false;
#endif  // __linux__

// ---------------------------------------------------------------------------------------------
// Other platforms
// ---------------------------------------------------------------------------------------------

// Which objects this build has. kqueue/kevent and devpoll are not implemented yet; they will be
// declared here, behind these flags, when a BSD, macOS or Solaris build exists to test them.
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
inline constexpr bool has_kqueue = true;
#else
inline constexpr bool has_kqueue = false;
#endif
#if defined(__sun)
inline constexpr bool has_devpoll = true;
#else
inline constexpr bool has_devpoll = false;
#endif
inline constexpr bool has_poll = true;

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

namespace detail {
[[noreturn]] void raise_negative_fd(int fd);
// The indices of the ready entries of each list.
struct ReadyIndices {
    std::vector<std::size_t> r, w, x;
};
ReadyIndices select_fds(const std::vector<int>& r, const std::vector<int>& w, const std::vector<int>& x,
                        Timeout timeout);
}  // namespace detail

namespace detail {
// The fd a file object names, unchecked.
template <FileLike T>
int raw_fileno(const T& f) {
    if constexpr (std::same_as<std::remove_cvref_t<T>, int>)
        return f;
    else if constexpr (requires { f.fileno(); })
        return static_cast<int>(f.fileno());
    else
        return static_cast<int>(f->fileno());
}
}  // namespace detail

template <FileLike T>
int fileno_of(const T& f) {
    int fd = detail::raw_fileno(f);
    if (fd < 0) detail::raise_negative_fd(fd);
    return fd;
}

template <FileLike T>
    requires std::copyable<T> && (!std::same_as<T, int>)
SelectResult<T> select(const std::vector<T>& rlist, const std::vector<T>& wlist, const std::vector<T>& xlist,
                       Timeout timeout) {
    auto fds = [](const std::vector<T>& objects) {
        std::vector<int> out;
        out.reserve(objects.size());
        for (const T& o : objects) out.push_back(fileno_of(o));
        return out;
    };
    detail::ReadyIndices ready = detail::select_fds(fds(rlist), fds(wlist), fds(xlist), timeout);
    auto pick = [](const std::vector<T>& objects, const std::vector<std::size_t>& indices) {
        std::vector<T> out;
        out.reserve(indices.size());
        for (std::size_t i : indices) out.push_back(objects[i]);
        return out;
    };
    return {pick(rlist, ready.r), pick(wlist, ready.w), pick(xlist, ready.x)};
}

}  // namespace tulip::select
