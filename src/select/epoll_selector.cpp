// selectors.EpollSelector: a level-triggered select::Epoll object.
#include <algorithm>

#include "tulip/selectors.hpp"

namespace tulip::selectors {
namespace {

std::uint32_t epoll_mask(int events) {
    return (events & EVENT_READ ? select::EPOLLIN : 0u) | (events & EVENT_WRITE ? select::EPOLLOUT : 0u);
}

}  // namespace

void EpollSelector::add(int fd, int events) { epoll_.register_(fd, epoll_mask(events)); }

void EpollSelector::change(int fd, int events) { epoll_.modify(fd, epoll_mask(events)); }

void EpollSelector::remove(int fd) noexcept {
    try {
        epoll_.unregister(fd);
    } catch (...) {  // the fd was closed first: the kernel has already forgotten it
    }
}

std::vector<std::pair<int, int>> EpollSelector::wait(Timeout timeout) {
    // One event per registered fd at most, and epoll_wait wants at least one slot.
    int max_events = static_cast<int>(std::max<std::size_t>(get_map().size(), 1));
    std::vector<std::pair<int, int>> events;
    for (auto [fd, revents] : epoll_.poll(timeout, max_events)) {
        // As PollSelector: errors and hang-ups wake both directions.
        int mask = (revents & ~select::EPOLLIN ? EVENT_WRITE : 0) | (revents & ~select::EPOLLOUT ? EVENT_READ : 0);
        events.emplace_back(fd, mask);
    }
    return events;
}

void EpollSelector::release() noexcept { epoll_.close(); }

}  // namespace tulip::selectors
