// The echo server the benchmarks run: every byte a client sends comes back.
//
//     echo_server --port N [--backend io_uring|epoll|poll|select] [--api protocol|streams]
//
// Listens on 127.0.0.1:N (N = 0: a free port), with TCP_NODELAY on each connection (transports
// set it), and runs until SIGINT or SIGTERM, then closes cleanly and exits 0. Prints
// "echo_server: listening on 127.0.0.1:<port> (<backend>, <api>)" once ready. Bad arguments: a
// usage message and exit code 2.
#include <csignal>
#include <cstdio>
#include <cstdlib>
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

asyncio::Coro<std::shared_ptr<asyncio::Server>> listen(asyncio::EventLoop& loop, const std::string& api, int port) {
    if (api == "streams") co_return co_await asyncio::start_server(echo_stream, std::string("127.0.0.1"), port);
    auto factory = [] { return std::make_shared<Echo>(); };
    co_return co_await loop.create_server(factory, std::string("127.0.0.1"), port);
}

struct Args {
    int port = -1;
    std::string backend;
    std::string api = "protocol";
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "echo_server: %s\n"
                 "usage: echo_server --port N [--backend io_uring|epoll|poll|select] [--api protocol|streams]\n",
                 why.c_str());
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

}  // namespace

int main(int argc, char** argv) {
    Args args = parse(argc, argv);
    try {
        asyncio::EventLoop loop(asyncio::LoopOptions{.backend = args.backend});
        asyncio::set_event_loop(&loop);
        auto server = loop.run_until_complete(listen(loop, args.api, args.port));
        int port = server->sockets().at(0).getsockname().port();
        loop.add_signal_handler(SIGINT, [&loop] { loop.stop(); });
        loop.add_signal_handler(SIGTERM, [&loop] { loop.stop(); });
        std::printf("echo_server: listening on 127.0.0.1:%d (%s, %s)\n", port, std::string(loop.backend_name()).c_str(),
                    args.api.c_str());
        std::fflush(stdout);
        loop.run_forever();
        server->close();
        loop.remove_signal_handler(SIGINT);
        loop.remove_signal_handler(SIGTERM);
        loop.close();  // closes the connections still open
        asyncio::set_event_loop(nullptr);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what());
        return 1;
    }
    return 0;
}
