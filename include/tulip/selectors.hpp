// Python's selectors module (18.4): high-level I/O multiplexing over tulip::select. A selector
// maps registered fds to SelectorKeys and waits for their readiness; it is a plain blocking object
// and does not use the event loop.
//
//     tulip::selectors::DefaultSelector sel;
//     sel.register_(fd, selectors::EVENT_READ, std::function<void(int, int)>(on_readable));
//     for (auto& [key, mask] : sel.select())
//         std::any_cast<std::function<void(int, int)>>(key.data)(key.fd, mask);
//
// Selectors are single-threaded objects, not copyable or movable (hold one by value or in a
// unique_ptr). Closing one, or destroying it, releases its OS object (the epoll fd).
#pragma once

#include <any>
#include <cstddef>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tulip/select.hpp"

namespace tulip::selectors {

inline constexpr int EVENT_READ = 1 << 0;
inline constexpr int EVENT_WRITE = 1 << 1;

using Timeout = select::Timeout;

// What register_() returns and select() reports: Python's SelectorKey namedtuple.
struct SelectorKey {
    int fileobj = -1;  // the file object registered; tulip's selectors take fds, so it is the fd
    int fd = -1;
    int events = 0;  // EVENT_READ | EVENT_WRITE
    // Opaque user data, as in Python (any copyable value: a callback, a pointer, a small struct;
    // for a move-only object store a pointer to it). select() reports copies of the keys, so that
    // a key stays valid when a handler unregisters its fd; keep `data` cheap to copy (a pointer
    // or a small value is copied without allocating) where select() is hot.
    std::any data;
};

// fd -> key, what get_map() returns (Python returns a read-only mapping view).
using SelectorMap = std::unordered_map<int, SelectorKey>;

// Python's BaseSelector: the interface every selector has, with the behaviour they share
// (Python's _BaseSelectorImpl). The OS object behind it is reached through the private virtual
// functions at the bottom, one small set per selector class.
//
// Errors, as in Python: ValueError("Invalid events: 0") for an events mask that is empty or has
// other bits, ValueError("Invalid file descriptor: -1") for a negative fd, KeyError("5 (FD 5) is
// already registered") on a second registration, KeyError("5 is not registered") for an fd that
// is not. After close(), every call but close() and get_map() raises RuntimeError("Selector is
// closed") (Python only does so for get_key(); see docs/select_and_selectors.md).
class BaseSelector {
public:
    virtual ~BaseSelector() = default;
    BaseSelector(const BaseSelector&) = delete;
    BaseSelector& operator=(const BaseSelector&) = delete;

    // register(fileobj, events, data=None). A trailing underscore because `register` is a C++
    // keyword. The key returned stays valid until the fd is unregistered or modified.
    const SelectorKey& register_(int fileobj, int events, std::any data = {});
    template <select::FileLike F>
        requires(!std::same_as<F, int>)
    const SelectorKey& register_(const F& fileobj, int events, std::any data = {}) {
        return register_(select::detail::raw_fileno(fileobj), events, std::move(data));
    }

    // unregister(fileobj) -> the key it had. The fd may already be closed (that is the usual
    // order of a connection's teardown), as Python allows for the poll-like selectors.
    SelectorKey unregister(int fileobj);
    template <select::FileLike F>
        requires(!std::same_as<F, int>)
    SelectorKey unregister(const F& fileobj) {
        return unregister(select::detail::raw_fileno(fileobj));
    }

    // modify(fileobj, events, data=None). As in Python, `data` replaces the old data even when it
    // is left out (the key then holds an empty std::any). If the OS object refuses the change, the
    // fd is unregistered and the error thrown.
    const SelectorKey& modify(int fileobj, int events, std::any data = {});
    template <select::FileLike F>
        requires(!std::same_as<F, int>)
    const SelectorKey& modify(const F& fileobj, int events, std::any data = {}) {
        return modify(select::detail::raw_fileno(fileobj), events, std::move(data));
    }

    // select(timeout=None) -> [(key, events)]: the keys whose fds are ready, with the ready events
    // among those registered. None blocks; zero or negative does not wait. Interrupted waits are
    // retried (PEP 475). On an empty selector with a timeout it just waits.
    std::vector<std::pair<SelectorKey, int>> select(Timeout timeout = {});
    std::vector<std::pair<SelectorKey, int>> select(double timeout_seconds) {
        return select(Timeout::seconds(timeout_seconds));
    }

    // close(): unregisters everything and releases the OS object. A second close() does nothing.
    void close();

    const SelectorKey& get_key(int fileobj) const;
    template <select::FileLike F>
        requires(!std::same_as<F, int>)
    const SelectorKey& get_key(const F& fileobj) const {
        return get_key(select::detail::raw_fileno(fileobj));
    }
    // The registered keys by fd (empty once closed, where Python returns None).
    const SelectorMap& get_map() const noexcept { return keys_; }

protected:
    BaseSelector() = default;

    // Called from the destructor of each selector class, while its OS object still exists.
    void close_in_destructor() noexcept;

private:
    // The OS object's side of each operation; `events` are EVENT_READ/EVENT_WRITE bits.
    virtual void add(int fd, int events) = 0;
    virtual void change(int fd, int events) = 0;
    virtual void remove(int fd) noexcept = 0;  // must not fail for an fd that is already closed
    // Waits (none: block; else the non-negative time given) and returns (fd, events) pairs.
    virtual std::vector<std::pair<int, int>> wait(Timeout timeout) = 0;
    virtual void release() noexcept = 0;

    SelectorKey& key_or_throw(int fd);
    void check_open() const;

    SelectorMap keys_;
    bool closed_ = false;
};

// select(2): any fd below FD_SETSIZE; a higher one is refused by select() (ValueError), as in
// Python.
class SelectSelector final : public BaseSelector {
public:
    SelectSelector() = default;
    ~SelectSelector() override { close_in_destructor(); }

private:
    void add(int fd, int events) override;
    void change(int fd, int events) override;
    void remove(int fd) noexcept override;
    std::vector<std::pair<int, int>> wait(Timeout timeout) override;
    void release() noexcept override;

    std::vector<int> readers_, writers_;  // sorted
};

// poll(2).
class PollSelector final : public BaseSelector {
public:
    PollSelector() = default;
    ~PollSelector() override { close_in_destructor(); }

private:
    void add(int fd, int events) override;
    void change(int fd, int events) override;
    void remove(int fd) noexcept override;
    std::vector<std::pair<int, int>> wait(Timeout timeout) override;
    void release() noexcept override;

    select::Poll poll_;
};

#if defined(__linux__)
// epoll(7), level-triggered, as Python's.
class EpollSelector final : public BaseSelector {
public:
    EpollSelector() = default;
    ~EpollSelector() override { close_in_destructor(); }

    // The epoll fd (ValueError once closed).
    int fileno() const { return epoll_.fileno(); }

private:
    void add(int fd, int events) override;
    void change(int fd, int events) override;
    void remove(int fd) noexcept override;
    std::vector<std::pair<int, int>> wait(Timeout timeout) override;
    void release() noexcept override;

    select::Epoll epoll_;
};

// The most efficient selector this platform has, as Python picks it (kqueue and /dev/poll are not
// built yet; see docs/select_and_selectors.md).
using DefaultSelector = EpollSelector;
#else
using DefaultSelector = PollSelector;
#endif

}  // namespace tulip::selectors
