// micro_io: the loop's own I/O paths on each backend: add_reader callbacks and the sock_*
// coroutines, as echoes over AF_UNIX socketpairs inside one loop (docs/backends.md, "Making
// io_uring the default"). These paths speak `poll` to the backend, which io_uring emulates with
// a one-shot POLL_ADD re-armed after each completion.
//
//   micro_io [--backends=epoll,io_uring] [--rounds=N] [--scale=F] [--only=NAME,...]
//
// Figures (one operation = one round trip of a 64-byte message):
//   add_reader_echo      one pair: the client's reader sends the next message when the echo
//                        came back, the server's reader echoes
//   add_reader_echo_x64  64 pairs at once: one loop iteration serves many ready fds
//   sock_echo            one pair: a client task (sock_sendall, then sock_recv_into) and a
//                        server task (sock_recv_into, then sock_sendall)
//   sock_echo_x64        64 pairs of such tasks
// Prints, per backend and figure, the median over the timed rounds (after one warm-up round) of
// the thread's CPU time per operation (`ns_per_op`) and the elapsed time (`wall_ns_per_op`),
// then the ratio of each backend to the first one.
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tulip/asyncio.hpp"
#include "tulip/socket.hpp"

namespace asyncio = tulip::asyncio;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    std::vector<std::string> backends{"epoll", "io_uring"};
    int rounds = 5;
    double scale = 1.0;
    std::string only;
};
Options g_options;

constexpr std::size_t kMessage = 64;

double thread_cpu_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

struct Sample {
    double ns;
    double wall_ns;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// --- add_reader echo ---------------------------------------------------------------------------

// One client/server pair driven by reader callbacks; `done` is set when `messages` came back.
struct ReaderPair {
    asyncio::EventLoop& loop;
    tulip::socket::Socket client, server;
    std::size_t left;
    std::size_t* running;
    asyncio::Future<void>* done;
    char buf[kMessage]{};

    void start() {
        loop.add_reader(server.fileno(), [this] { echo(); });
        loop.add_reader(client.fileno(), [this] { reply(); });
        send_one(client.fileno());
    }
    void send_one(int fd) {
        if (::send(fd, buf, kMessage, MSG_NOSIGNAL) != static_cast<ssize_t>(kMessage)) std::abort();
    }
    void echo() {
        ssize_t n = ::recv(server.fileno(), buf, sizeof buf, 0);
        if (n > 0 && ::send(server.fileno(), buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) std::abort();
    }
    void reply() {
        ssize_t n = ::recv(client.fileno(), buf, sizeof buf, 0);
        if (n != static_cast<ssize_t>(kMessage)) return;  // a short read: the rest comes next time
        if (--left > 0) {
            send_one(client.fileno());
            return;
        }
        loop.remove_reader(server.fileno());
        loop.remove_reader(client.fileno());
        if (--*running == 0) done->set_result();
    }
};

asyncio::Coro<> add_reader_round(asyncio::EventLoop& loop, std::size_t pairs, std::size_t messages) {
    std::vector<std::unique_ptr<ReaderPair>> all;
    std::size_t running = pairs;
    auto done = loop.create_future<void>();
    for (std::size_t i = 0; i < pairs; ++i) {
        auto [a, b] = tulip::socket::socketpair();
        a.setblocking(false);
        b.setblocking(false);
        all.push_back(std::unique_ptr<ReaderPair>(
            new ReaderPair{loop, std::move(a), std::move(b), messages / pairs, &running, &done}));
    }
    for (auto& p : all) p->start();
    co_await done;
}

// --- sock_* echo -------------------------------------------------------------------------------

asyncio::Coro<> sock_server(asyncio::EventLoop& loop, tulip::socket::Socket& s, std::size_t messages) {
    std::byte buf[kMessage];
    for (std::size_t got = 0; got < messages * kMessage;) {
        std::size_t n = co_await loop.sock_recv_into(s, buf);
        if (n == 0) std::abort();
        got += n;
        co_await loop.sock_sendall(s, std::span<const std::byte>(buf, n));
    }
}

asyncio::Coro<> sock_client(asyncio::EventLoop& loop, tulip::socket::Socket& s, std::size_t messages) {
    std::byte out[kMessage]{}, in[kMessage];
    for (std::size_t i = 0; i < messages; ++i) {
        co_await loop.sock_sendall(s, std::span<const std::byte>(out, kMessage));
        for (std::size_t got = 0; got < kMessage;) {
            std::size_t n = co_await loop.sock_recv_into(s, std::span<std::byte>(in + got, kMessage - got));
            if (n == 0) std::abort();
            got += n;
        }
    }
}

asyncio::Coro<> sock_round(asyncio::EventLoop& loop, std::size_t pairs, std::size_t messages) {
    std::vector<std::pair<tulip::socket::Socket, tulip::socket::Socket>> socks;
    for (std::size_t i = 0; i < pairs; ++i) {
        auto [a, b] = tulip::socket::socketpair();
        a.setblocking(false);
        b.setblocking(false);
        socks.emplace_back(std::move(a), std::move(b));
    }
    std::vector<asyncio::Task<>> tasks;
    for (auto& [a, b] : socks) {
        tasks.push_back(loop.create_task(sock_server(loop, b, messages / pairs)));
        tasks.push_back(loop.create_task(sock_client(loop, a, messages / pairs)));
    }
    for (auto& t : tasks) co_await t;
}

// --- driver ------------------------------------------------------------------------------------

struct Figure {
    const char* name;
    bool sock;  // sock_* rather than add_reader
    std::size_t pairs;
    std::size_t messages;
};
const Figure kFigures[] = {
    {"add_reader_echo", false, 1, 100'000},
    {"add_reader_echo_x64", false, 64, 320'000},
    {"sock_echo", true, 1, 100'000},
    {"sock_echo_x64", true, 64, 320'000},
};

bool wanted(std::string_view name) {
    std::string_view list = g_options.only;
    if (list.empty()) return true;
    while (!list.empty()) {
        std::size_t comma = std::min(list.find(','), list.size());
        if (list.substr(0, comma) == name) return true;
        list.remove_prefix(std::min(comma + 1, list.size()));
    }
    return false;
}

Sample run_once(const Figure& f, const std::string& backend) {
    auto messages = static_cast<std::size_t>(static_cast<double>(f.messages) * g_options.scale);
    messages = std::max(messages - messages % f.pairs, f.pairs);
    asyncio::LoopOptions options;
    options.backend = backend;
    asyncio::EventLoop loop(options);
    if (loop.backend_name() != backend) {
        std::fprintf(stderr, "micro_io: backend %s not available (got %s)\n", backend.c_str(),
                     std::string(loop.backend_name()).c_str());
        std::exit(2);
    }
    asyncio::set_event_loop(&loop);
    double cpu = thread_cpu_ns();
    auto start = Clock::now();
    if (f.sock) loop.run_until_complete(sock_round(loop, f.pairs, messages));
    else loop.run_until_complete(add_reader_round(loop, f.pairs, messages));
    Sample s{(thread_cpu_ns() - cpu) / static_cast<double>(messages),
             std::chrono::duration<double, std::nano>(Clock::now() - start).count() / static_cast<double>(messages)};
    asyncio::set_event_loop(nullptr);
    loop.close();
    return s;
}

void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&](std::string_view key) { return a.substr(key.size()); };
        if (a.starts_with("--backends=")) {
            g_options.backends.clear();
            std::string list(value("--backends="));
            for (std::size_t at = 0; at <= list.size();) {
                std::size_t comma = std::min(list.find(',', at), list.size());
                if (comma > at) g_options.backends.push_back(list.substr(at, comma - at));
                at = comma + 1;
            }
        } else if (a.starts_with("--rounds=")) {
            g_options.rounds = std::max(1, std::atoi(std::string(value("--rounds=")).c_str()));
        } else if (a.starts_with("--scale=")) {
            g_options.scale = std::atof(std::string(value("--scale=")).c_str());
        } else if (a.starts_with("--only=")) {
            g_options.only = std::string(value("--only="));
        } else {
            std::fprintf(stderr, "usage: %s [--backends=epoll,io_uring] [--rounds=N] [--scale=F] [--only=NAME,...]\n",
                         argv[0]);
            std::exit(2);
        }
    }
    if (g_options.backends.empty() || g_options.scale <= 0) {
        std::fprintf(stderr, "micro_io: need at least one backend and a positive scale\n");
        std::exit(2);
    }
}

}  // namespace

int main(int argc, char** argv) {
    parse(argc, argv);
    std::map<std::string, std::map<std::string, double>> ns;  // figure -> backend -> ns_per_op
    for (const Figure& f : kFigures) {
        if (!wanted(f.name)) continue;
        // Rounds alternate between the backends, so that a slow phase of the machine hits all.
        std::map<std::string, std::vector<Sample>> samples;
        for (int round = 0; round <= g_options.rounds; ++round)
            for (const auto& backend : g_options.backends) {
                Sample s = run_once(f, backend);
                if (round > 0) samples[backend].push_back(s);  // round 0 warms up
            }
        for (const auto& backend : g_options.backends) {
            std::vector<double> cpu, wall;
            for (const Sample& s : samples[backend]) {
                cpu.push_back(s.ns);
                wall.push_back(s.wall_ns);
            }
            ns[f.name][backend] = median(cpu);
            std::printf("name=%s backend=%s ns_per_op=%.1f wall_ns_per_op=%.1f rounds=%d\n", f.name, backend.c_str(),
                        median(cpu), median(wall), g_options.rounds);
            std::fflush(stdout);
        }
    }
    const std::string& base = g_options.backends.front();
    for (const auto& [figure, per_backend] : ns)
        for (const auto& [backend, v] : per_backend)
            if (backend != base)
                std::printf("# %s: %s/%s = %.2f (CPU time per round trip)\n", figure.c_str(), backend.c_str(),
                            base.c_str(), v / per_backend.at(base));
    return 0;
}
