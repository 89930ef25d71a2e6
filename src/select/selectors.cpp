// selectors.BaseSelector: the key map and Python's checks and errors, shared by every selector
// class (Python's _BaseSelectorImpl). The OS object is reached through add/change/remove/wait.
#include "tulip/selectors.hpp"

#include <string>

#include "tulip/exceptions.hpp"

namespace tulip::selectors {
namespace {

void check_events(int events) {
    if (events == 0 || (events & ~(EVENT_READ | EVENT_WRITE)) != 0)
        throw ValueError("Invalid events: " + std::to_string(events));
}

void check_fd(int fd) {
    if (fd < 0) throw ValueError("Invalid file descriptor: " + std::to_string(fd));
}

[[noreturn]] void raise_not_registered(int fd) { throw KeyError(std::to_string(fd) + " is not registered"); }

}  // namespace

void BaseSelector::check_open() const {
    if (closed_) throw RuntimeError("Selector is closed");
}

SelectorKey& BaseSelector::key_or_throw(int fd) {
    check_fd(fd);
    auto it = keys_.find(fd);
    if (it == keys_.end()) raise_not_registered(fd);
    return it->second;
}

const SelectorKey& BaseSelector::register_(int fileobj, int events, std::any data) {
    check_open();
    check_events(events);
    check_fd(fileobj);
    auto [it, inserted] = keys_.try_emplace(fileobj, SelectorKey{fileobj, fileobj, events, std::move(data)});
    if (!inserted)
        throw KeyError(std::to_string(fileobj) + " (FD " + std::to_string(fileobj) + ") is already registered");
    try {
        add(fileobj, events);
    } catch (...) {
        keys_.erase(it);
        throw;
    }
    return it->second;
}

SelectorKey BaseSelector::unregister(int fileobj) {
    check_open();
    SelectorKey key = std::move(key_or_throw(fileobj));
    keys_.erase(fileobj);
    remove(fileobj);
    return key;
}

const SelectorKey& BaseSelector::modify(int fileobj, int events, std::any data) {
    check_open();
    SelectorKey& key = key_or_throw(fileobj);
    check_events(events);
    if (events != key.events) {
        try {
            change(fileobj, events);
        } catch (...) {
            // Python's rule: a key the OS object no longer agrees with is dropped.
            keys_.erase(fileobj);
            remove(fileobj);
            throw;
        }
        key.events = events;
    }
    key.data = std::move(data);
    return key;
}

std::vector<std::pair<SelectorKey, int>> BaseSelector::select(Timeout timeout) {
    check_open();
    // None blocks; zero or negative polls without waiting.
    if (!timeout.is_none() && timeout.value() < std::chrono::nanoseconds{0}) timeout = std::chrono::nanoseconds{0};
    std::vector<std::pair<int, int>> events = wait(timeout);
    std::vector<std::pair<SelectorKey, int>> ready;
    ready.reserve(events.size());
    for (auto [fd, mask] : events) {
        auto it = keys_.find(fd);
        if (it == keys_.end()) continue;
        if (int wanted = mask & it->second.events) ready.emplace_back(it->second, wanted);
    }
    return ready;
}

void BaseSelector::close() {
    if (closed_) return;
    closed_ = true;
    keys_.clear();
    release();
}

void BaseSelector::close_in_destructor() noexcept { close(); }

const SelectorKey& BaseSelector::get_key(int fileobj) const {
    check_open();
    check_fd(fileobj);
    auto it = keys_.find(fileobj);
    if (it == keys_.end()) raise_not_registered(fileobj);
    return it->second;
}

}  // namespace tulip::selectors
