// selectors.SelectSelector: the registered fds kept as two sorted lists and passed to select().
#include <algorithm>

#include "tulip/selectors.hpp"

namespace tulip::selectors {
namespace {

void insert_sorted(std::vector<int>& fds, int fd) {
    auto it = std::lower_bound(fds.begin(), fds.end(), fd);
    if (it == fds.end() || *it != fd) fds.insert(it, fd);
}

void erase_sorted(std::vector<int>& fds, int fd) noexcept {
    auto it = std::lower_bound(fds.begin(), fds.end(), fd);
    if (it != fds.end() && *it == fd) fds.erase(it);
}

}  // namespace

void SelectSelector::add(int fd, int events) {
    if (events & EVENT_READ) insert_sorted(readers_, fd);
    if (events & EVENT_WRITE) insert_sorted(writers_, fd);
}

void SelectSelector::change(int fd, int events) {
    remove(fd);
    add(fd, events);
}

void SelectSelector::remove(int fd) noexcept {
    erase_sorted(readers_, fd);
    erase_sorted(writers_, fd);
}

std::vector<std::pair<int, int>> SelectSelector::wait(Timeout timeout) {
    auto ready = select::select(readers_, writers_, {}, timeout);
    // Both lists come back sorted (they are subsets of sorted lists): merge them by fd.
    std::vector<std::pair<int, int>> events;
    events.reserve(ready.rlist.size() + ready.wlist.size());
    auto r = ready.rlist.begin(), w = ready.wlist.begin();
    while (r != ready.rlist.end() || w != ready.wlist.end()) {
        if (w == ready.wlist.end() || (r != ready.rlist.end() && *r < *w)) {
            events.emplace_back(*r++, EVENT_READ);
        } else if (r == ready.rlist.end() || *w < *r) {
            events.emplace_back(*w++, EVENT_WRITE);
        } else {
            events.emplace_back(*r, EVENT_READ | EVENT_WRITE);
            ++r;
            ++w;
        }
    }
    return events;
}

void SelectSelector::release() noexcept {
    readers_.clear();
    writers_.clear();
}

}  // namespace tulip::selectors
