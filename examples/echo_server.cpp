// The echo server the benchmarks run: every byte a client sends comes back.
//
//     echo_server --port N [--backend io_uring|epoll|poll|select] [--api protocol|streams]
//                 [--threads T]
//
// Listens on 127.0.0.1:N (N = 0: a free port), with TCP_NODELAY on each connection (transports
// set it), and runs until SIGINT or SIGTERM, then closes cleanly and exits 0. With --threads T
// (default 1) it runs T shards (asyncio::run_sharded): T threads, each with its own loop and its
// own listener on the same port (SO_REUSEPORT), the kernel spreading the connections over them.
// Prints "echo_server: listening on 127.0.0.1:<port> (<backend>, <api>, <T> threads)" once every
// shard listens. Bad arguments: a usage message and exit code 2.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <tulip/asyncio.hpp>

namespace asyncio = tulip::asyncio;

namespace {

// The protocol API: write back what arrives. No allocation per message: the view comes from
// the loop's shared read buffer and a write that the kernel takes whole is not copied.
class Echo final : public asyncio::Protocol {
public:
    void connection_made(asyncio::Transport& transport) override { transport_ = &transport; }
    void data_received(std::string_view data) override { transport_->write(data); }

private:
    asyncio::Transport* transport_ = nullptr;
};

// The streams API: one task per connection, as a Python streams echo server is written, with
// read_into() and one buffer per connection (as bench/peer_asyncio.py reads up to 64 KiB) in
// place of read(n), which returns a new string each time. No allocation per message.
asyncio::Coro<> echo_stream(asyncio::StreamReader reader, asyncio::StreamWriter writer) {
    std::vector<char> buffer(64 * 1024);
    try {
        for (;;) {
            std::size_t n = co_await reader.read_into(buffer);
            if (n == 0) break;  // EOF
            writer.write(std::string_view(buffer.data(), n));
            co_await writer.drain();
        }
    } catch (const tulip::ConnectionError&) {
        // A client that resets is not the server's failure.
    }
    writer.close();
}

asyncio::Coro<std::shared_ptr<asyncio::Server>> listen(asyncio::EventLoop& loop, const std::string& api, int port,
                                                        bool reuse_port) {
    asyncio::ServerOptions options;
    options.reuse_port = reuse_port;
    if (api == "streams")
        co_return co_await asyncio::start_server(echo_stream, std::string("127.0.0.1"), port,
                                                 asyncio::stream_default_limit, std::move(options));
    auto factory = [] { return std::make_shared<Echo>(); };
    co_return co_await loop.create_server(factory, std::string("127.0.0.1"), port, std::move(options));
}

struct Args {
    int port = -1;
    std::string backend;
    std::string api = "protocol";
    int threads = 1;
};

constexpr int kMaxThreads = 1024;

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "echo_server: %s\n"
                 "usage: echo_server --port N [--backend io_uring|epoll|poll|select] [--api protocol|streams]\n"
                 "                   [--threads T (1..%d, default 1)]\n",
                 why.c_str(), kMaxThreads);
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args args;
    for (int i = 1; i < argc; ++i) {
        std::string_view opt = argv[i];
        if (opt == "-h" || opt == "--help") usage("an echo server for the benchmarks");
        if (i + 1 >= argc) usage("missing value after " + std::string(opt));
        std::string value = argv[++i];
        if (opt == "--port") {
            char* end = nullptr;
            long p = std::strtol(value.c_str(), &end, 10);
            if (value.empty() || *end || p < 0 || p > 65535) usage("bad port '" + value + "' (0..65535)");
            args.port = static_cast<int>(p);
        } else if (opt == "--backend") {
            if (value != "io_uring" && value != "epoll" && value != "poll" && value != "select")
                usage("unknown backend '" + value + "'");
            args.backend = value;
        } else if (opt == "--threads") {
            char* end = nullptr;
            long t = std::strtol(value.c_str(), &end, 10);
            if (value.empty() || *end || t < 1 || t > kMaxThreads)
                usage("bad thread count '" + value + "' (1.." + std::to_string(kMaxThreads) + ")");
            args.threads = static_cast<int>(t);
        } else if (opt == "--api") {
            if (value != "protocol" && value != "streams") usage("unknown api '" + value + "'");
            args.api = value;
        } else {
            usage("unknown option '" + std::string(opt) + "'");
        }
    }
    if (args.port < 0) usage("--port is required");
    return args;
}

// What the shards share, all set before the first shard reads it or by one shard alone.
struct Shared {
    Args args;
    std::promise<int> port_promise;  // shard 0's port: the others listen on the same one
    std::shared_future<int> port = port_promise.get_future().share();
    std::atomic<int> listening{0};
};

// One shard: listen, say so once all do, and serve until run_sharded cancels it on a signal.
asyncio::Coro<> shard_main(Shared& shared, int shard) {
    auto& loop = asyncio::get_running_loop();
    const Args& args = shared.args;
    // With port 0 every listener would get a port of its own: shard 0 picks it, the others
    // wait for it (on a worker thread, leaving their loop free).
    int port = args.port;
    if (shard > 0 && args.threads > 1) {
        auto wait_port = [port = shared.port] {
            try {
                return port.get();
            } catch (...) {
                return -1;  // shard 0 failed: its error is the one run_sharded reports
            }
        };
        port = co_await asyncio::to_thread(wait_port);
        if (port < 0) co_return;
    }
    std::shared_ptr<asyncio::Server> server;
    try {
        server = co_await listen(loop, args.api, port, args.threads > 1);
    } catch (...) {
        if (shard == 0) shared.port_promise.set_exception(std::current_exception());
        throw;
    }
    if (shard == 0) shared.port_promise.set_value(server->sockets().at(0).getsockname().port());
    if (++shared.listening == args.threads) {
        std::printf("echo_server: listening on 127.0.0.1:%d (%s, %s, %d thread%s)\n", shared.port.get(),
                    std::string(loop.backend_name()).c_str(), args.api.c_str(), args.threads,
                    args.threads == 1 ? "" : "s");
        std::fflush(stdout);
    }
    // Cancelled by run_sharded on SIGINT/SIGTERM; the loop's close then closes the connections.
    co_await server->serve_forever();
}

}  // namespace

int main(int argc, char** argv) {
    Shared shared;
    shared.args = parse(argc, argv);
    try {
        asyncio::ShardedOptions options;
        options.backend = shared.args.backend;
        options.stop_signals = {SIGINT, SIGTERM};
        auto main_fn = [&shared](int shard) { return shard_main(shared, shard); };
        asyncio::run_sharded(shared.args.threads, main_fn, std::move(options));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what());
        return 1;
    }
    return 0;
}
