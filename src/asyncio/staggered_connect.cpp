// Happy eyeballs for create_connection: the address reordering and the staggered race.
#include "tulip/asyncio/detail/staggered_connect.hpp"

#include <algorithm>
#include <cmath>

#include "tulip/asyncio/detail/connect_any.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/locks.hpp"
#include "tulip/asyncio/tasks.hpp"

namespace tulip::asyncio::detail {

std::vector<socket::AddrInfo> interleave_addrinfos(std::vector<socket::AddrInfo> infos, int first_family_count) {
    if (first_family_count < 1)
        throw ValueError("interleave must be at least 1, got " + std::to_string(first_family_count));
    // Families in order of first appearance, each with its addresses in order.
    std::vector<std::vector<socket::AddrInfo>> by_family;
    for (auto& info : infos) {
        auto it = std::find_if(by_family.begin(), by_family.end(),
                               [&](const auto& group) { return group.front().family == info.family; });
        if (it == by_family.end()) {
            by_family.emplace_back().push_back(std::move(info));
        } else {
            it->push_back(std::move(info));
        }
    }
    std::vector<socket::AddrInfo> reordered;
    reordered.reserve(infos.size());
    std::vector<std::size_t> next(by_family.size(), 0);
    if (!by_family.empty()) {
        auto& first = by_family.front();
        for (; next[0] + 1 < static_cast<std::size_t>(first_family_count) && next[0] < first.size(); ++next[0])
            reordered.push_back(std::move(first[next[0]]));
    }
    for (bool taken = true; taken;) {
        taken = false;
        for (std::size_t f = 0; f < by_family.size(); ++f) {
            if (next[f] >= by_family[f].size()) continue;
            reordered.push_back(std::move(by_family[f][next[f]++]));
            taken = true;
        }
    }
    return reordered;
}

namespace {

// What the attempts share with the race that started them (it outlives them all: the race
// awaits every attempt before it returns).
struct Race {
    Event changed;                         // set whenever there is something to look at
    std::optional<socket::Socket> winner;  // the first socket to connect
    std::vector<ConnectFailure> failures;  // per attempt, filled in when it fails
    std::size_t started = 0;
    std::size_t finished = 0;
    bool start_next = true;  // the latest attempt failed or its delay elapsed
};

Coro<void> attempt(EventLoop& loop, Race& race, std::size_t index, socket::AddrInfo info,
                   std::optional<socket::Address> local_addr) {
    std::string where = info.address.to_string();
    try {
        socket::Socket sock = co_await connect_one(loop, std::move(info), std::move(local_addr));
        // A later winner than the first is closed when `sock` goes out of scope.
        if (!race.winner) race.winner = std::move(sock);
    } catch (const OSError&) {
        race.failures[index] = {std::move(where), std::current_exception()};
        if (index + 1 == race.started) race.start_next = true;
    }
    ++race.finished;
    race.changed.set();
}

}  // namespace

Coro<socket::Socket> staggered_connect(EventLoop& loop, std::vector<socket::AddrInfo> infos, double delay,
                                       std::optional<socket::Address> local_addr) {
    if (infos.empty()) throw ValueError("staggered_connect: no address to connect to");
    if (!(delay >= 0) || !std::isfinite(delay))
        throw ValueError("happy_eyeballs_delay must be a finite number of seconds >= 0, got " + std::to_string(delay));
    Race race;
    race.failures.resize(infos.size());
    std::vector<Task<void>> tasks;
    tasks.reserve(infos.size());
    TimerHandle timer;
    std::exception_ptr interrupted;
    try {
        while (!race.winner) {
            if (race.start_next && race.started < infos.size()) {
                race.start_next = false;
                std::size_t index = race.started++;
                tasks.push_back(loop.create_task(attempt(loop, race, index, infos[index], local_addr)));
                timer.cancel();
                if (race.started < infos.size())
                    timer = loop.call_later(delay, [&race] {
                        race.start_next = true;
                        race.changed.set();
                    });
                continue;
            }
            if (race.finished == infos.size()) break;  // every attempt failed
            race.changed.clear();
            co_await race.changed.wait();
        }
    } catch (...) {
        interrupted = std::current_exception();  // cancelled: stop every attempt below
    }
    timer.cancel();
    for (auto& task : tasks)
        if (!task.done()) task.cancel();
    // Wait for the cancelled attempts so their sockets are closed and their backend ops gone.
    for (auto& task : tasks) {
        try {
            co_await task;
        } catch (...) {
        }
    }
    if (interrupted) std::rethrow_exception(interrupted);
    if (race.winner) co_return std::move(*race.winner);
    // No winner and not interrupted: every attempt ran and failed, so every entry is filled in.
    raise_connect_errors(race.failures);
}

}  // namespace tulip::asyncio::detail
