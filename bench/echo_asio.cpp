// echo_asio: the echo server a C++ programmer would write with standalone Asio and C++20
// coroutines (asio::awaitable, use_awaitable), one thread, Asio's default reactor (epoll).
//
//   echo_asio --port N
//
// Listens on 127.0.0.1:N; each connection is one coroutine that reads what comes (up to 64 KiB)
// and writes it back whole before reading again. SIGINT or SIGTERM stops the io_context, so the
// program ends cleanly (exit status 0). Built only when <asio.hpp> is found (libasio-dev).
// Asio 1.22 (Debian 12) sees C++20 coroutines in clang only through the old Coroutines TS
// macro, which clang no longer defines in C++20 mode: tell it they are there.
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#endif
#include <asio.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

asio::awaitable<void> echo(asio::ip::tcp::socket socket)
{
    std::array<char, 64 * 1024> data;
    try {
        for (;;) {
            std::size_t n =
                co_await socket.async_read_some(asio::buffer(data), asio::use_awaitable);
            co_await asio::async_write(socket, asio::buffer(data, n), asio::use_awaitable);
        }
    } catch (const std::exception &) {
        // End of stream or a reset peer: the connection is over.
    }
}

asio::awaitable<void> listen(asio::ip::tcp::acceptor &acceptor)
{
    for (;;) {
        asio::ip::tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        socket.set_option(asio::ip::tcp::no_delay(true));
        asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
    }
}

int parse_port(int argc, char **argv)
{
    if (argc == 3 && std::strcmp(argv[1], "--port") == 0) {
        char *end = nullptr;
        long port = std::strtol(argv[2], &end, 10);
        if (*argv[2] != '\0' && *end == '\0' && port > 0 && port < 65536)
            return static_cast<int>(port);
    }
    std::fprintf(stderr, "usage: echo_asio --port N (1-65535)\n");
    std::exit(2);
}

} // namespace

int main(int argc, char **argv)
{
    int port = parse_port(argc, argv);
    try {
        asio::io_context ctx(1); // a hint: one thread runs it (Asio still takes its locks)
        asio::ip::tcp::acceptor acceptor(
            ctx, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(),
                                         static_cast<unsigned short>(port)));
        asio::signal_set signals(ctx, SIGINT, SIGTERM);
        signals.async_wait([&](const std::error_code &, int) { ctx.stop(); });
        asio::co_spawn(ctx, listen(acceptor), asio::detached);
        ctx.run();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "echo_asio: port %d: %s\n", port, e.what());
        return 1;
    }
    return 0;
}
