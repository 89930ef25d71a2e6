// selectors.PollSelector: a select::Poll object.
#include "tulip/selectors.hpp"

namespace tulip::selectors {
namespace {

int poll_mask(int events) {
    return (events & EVENT_READ ? select::POLLIN : 0) | (events & EVENT_WRITE ? select::POLLOUT : 0);
}

}  // namespace

void PollSelector::add(int fd, int events) { poll_.register_(fd, poll_mask(events)); }

void PollSelector::change(int fd, int events) { poll_.modify(fd, poll_mask(events)); }

void PollSelector::remove(int fd) noexcept {
    try {
        poll_.unregister(fd);
    } catch (...) {  // not registered there: nothing to undo
    }
}

std::vector<std::pair<int, int>> PollSelector::wait(Timeout timeout) {
    std::vector<std::pair<int, int>> events;
    for (auto [fd, revents] : poll_.poll(timeout)) {
        // Python's mapping: anything but POLLIN (POLLERR, POLLHUP, POLLNVAL...) wakes a writer,
        // anything but POLLOUT wakes a reader, so both see an error or a hang-up.
        int mask = (revents & ~select::POLLIN ? EVENT_WRITE : 0) | (revents & ~select::POLLOUT ? EVENT_READ : 0);
        events.emplace_back(fd, mask);
    }
    return events;
}

void PollSelector::release() noexcept { poll_ = select::Poll(); }

}  // namespace tulip::selectors
