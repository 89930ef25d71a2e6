// Pipe transports (Python's connect_read_pipe / connect_write_pipe), on every backend: reading to
// EOF, pausing, a large write through a paused reader with water marks, close flushing, a closed
// read end (BrokenPipeError, never SIGPIPE), abort, FIFOs and sockets, a regular file refused,
// and a loop closed with pipe transports still open.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "loop_fixture.hpp"
#include "protocol_helpers.hpp"
#include "socket_helpers.hpp"
#include "tulip/asyncio.hpp"

namespace asyncio = tulip::asyncio;
using tulip::testing::is_exception;
using tulip::testing::LoopFixture;
using tulip::testing::OwnedFd;
using tulip::testing::Pipe;
using tulip::testing::Recorder;

namespace {

auto recorder() { return std::make_shared<Recorder>(); }

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

// Both ends of one pipe as transports of the same loop.
struct PipePair {
    std::shared_ptr<asyncio::ReadTransport> reader;
    std::shared_ptr<Recorder> in;
    std::shared_ptr<asyncio::WriteTransport> writer;
    std::shared_ptr<Recorder> out;
};

asyncio::Coro<PipePair> connect_both(asyncio::EventLoop& loop) {
    Pipe p;
    PipePair pp;
    std::tie(pp.reader, pp.in) = co_await loop.connect_read_pipe(recorder, p.r.release());
    std::tie(pp.writer, pp.out) = co_await loop.connect_write_pipe(recorder, p.w.release());
    co_return pp;
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 23);
    return s;
}

}  // namespace

TEST_CASE_METHOD(LoopFixture, "pipes: read until EOF", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        Pipe p;
        int fd = p.r.get();
        auto [t, proto] = co_await loop().connect_read_pipe(recorder, p.r.release());
        CHECK(proto->made == 1);
        CHECK(proto->transport == dynamic_cast<asyncio::Transport*>(t.get()));
        CHECK(t->get_protocol() == proto);
        CHECK(t->is_reading());
        CHECK(std::any_cast<int>(t->get_extra_info("pipe")) == fd);
        CHECK_FALSE(t->get_extra_info("peername").has_value());
        CHECK_FALSE(t->peername());
        CHECK_FALSE(t->sockname());
        CHECK(t->socket() == nullptr);
        CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
        REQUIRE(::write(p.w.get(), "hello ", 6) == 6);
        co_await proto->until([&] { return proto->data == "hello "; });
        REQUIRE(::write(p.w.get(), "world", 5) == 5);
        p.w.close();
        co_await proto->until_lost();
        CHECK(proto->data == "hello world");
        CHECK(proto->eofs == 1);
        CHECK(proto->lost == 1);
        CHECK_FALSE(proto->lost_exc);
        CHECK(t->is_closing());
        CHECK_FALSE(fd_open(fd));  // the transport owned the fd
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: pause and resume reading", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        Pipe p;
        auto [t, proto] = co_await loop().connect_read_pipe(recorder, p.r.release());
        t->pause_reading();
        t->pause_reading();  // idempotent
        CHECK_FALSE(t->is_reading());
        REQUIRE(::write(p.w.get(), "x", 1) == 1);
        for (int i = 0; i < 10; ++i) co_await asyncio::sleep(0);  // iterations that must not read
        CHECK(proto->data.empty());
        t->resume_reading();
        t->resume_reading();
        CHECK(t->is_reading());
        co_await proto->until([&] { return proto->data == "x"; });
        t->close();
        co_await proto->until_lost();
        CHECK(proto->eofs == 0);
        CHECK_FALSE(proto->lost_exc);
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: a large write to a paused reader pauses and resumes the writer", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        PipePair pp = co_await connect_both(loop());
        CHECK(pp.writer->get_write_buffer_limits() == std::pair<std::size_t, std::size_t>(16 * 1024, 64 * 1024));
        pp.writer->set_write_buffer_limits(32 * 1024);
        pp.reader->pause_reading();
        const std::string all = pattern(1 << 20);
        for (std::size_t off = 0; off < all.size(); off += 4096) pp.writer->write(std::string_view(all).substr(off, 4096));
        CHECK(pp.out->events == "P");
        CHECK(pp.writer->get_write_buffer_size() > 32 * 1024);
        pp.reader->resume_reading();
        co_await pp.out->until([&] { return pp.out->events == "PR"; });
        pp.writer->close();  // flushes the rest, then the reader sees EOF
        CHECK(pp.writer->is_closing());
        CHECK_THROWS_AS(pp.writer->write("late"), tulip::RuntimeError);
        co_await pp.in->until_lost();
        co_await pp.out->until_lost();
        CHECK(pp.in->data.size() == all.size());
        CHECK(pp.in->data == all);
        CHECK(pp.in->eofs == 1);
        CHECK_FALSE(pp.in->lost_exc);
        CHECK_FALSE(pp.out->lost_exc);
        CHECK(pp.writer->get_write_buffer_size() == 0);
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: write_eof flushes, then the reader sees EOF", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        PipePair pp = co_await connect_both(loop());
        CHECK(pp.writer->can_write_eof());
        const std::string all = pattern(300 * 1024);
        pp.writer->write(all);
        CHECK(pp.writer->get_write_buffer_size() > 0);  // more than a pipe holds
        pp.writer->write_eof();
        co_await pp.in->until_lost();
        co_await pp.out->until_lost();
        CHECK(pp.in->data == all);
        CHECK(pp.in->eofs == 1);
        CHECK_FALSE(pp.out->lost_exc);
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: the read end closed with data buffered is a BrokenPipeError", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        Pipe p;
        auto [t, proto] = co_await loop().connect_write_pipe(recorder, p.w.release());
        t->write(pattern(256 * 1024));
        CHECK(t->get_write_buffer_size() > 0);
        p.r.close();
        co_await proto->until_lost();
        CHECK(proto->lost == 1);
        CHECK(is_exception<tulip::BrokenPipeError>(proto->lost_exc));
        t->write("dropped");  // after the connection is lost, writes are dropped
        CHECK(t->get_write_buffer_size() == 0);
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: a write after the read end closed is a BrokenPipeError, not SIGPIPE", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        Pipe p;
        auto [t, proto] = co_await loop().connect_write_pipe(recorder, p.w.release());
        p.r.close();
        t->write("x");  // write(2) fails with EPIPE at once; the process survives
        co_await proto->until_lost();
        CHECK(proto->lost == 1);
        CHECK(is_exception<tulip::BrokenPipeError>(proto->lost_exc));
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: the read end closed while idle closes the write transport", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        Pipe p;
        auto [t, proto] = co_await loop().connect_write_pipe(recorder, p.w.release());
        t->write("taken at once");
        CHECK(t->get_write_buffer_size() == 0);
        p.r.close();
        co_await proto->until_lost();  // noticed without another write, as Python's
        CHECK(proto->lost == 1);
        CHECK_FALSE(proto->lost_exc);
        CHECK(t->is_closing());
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: abort drops the buffer", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        PipePair pp = co_await connect_both(loop());
        pp.reader->pause_reading();
        pp.writer->write(pattern(512 * 1024));
        CHECK(pp.writer->get_write_buffer_size() > 0);
        pp.writer->abort();
        CHECK(pp.writer->get_write_buffer_size() == 0);
        CHECK_THROWS_AS(pp.writer->write("late"), tulip::RuntimeError);
        co_await pp.out->until_lost();
        CHECK_FALSE(pp.out->lost_exc);
        pp.reader->resume_reading();
        co_await pp.in->until_lost();
        CHECK(pp.in->data.size() < 512 * 1024);
        CHECK(pp.in->eofs == 1);
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: a read pipe cannot write", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        Pipe p;
        auto [t, proto] = co_await loop().connect_read_pipe(recorder, p.r.release());
        REQUIRE(proto->transport);
        CHECK_THROWS_AS(proto->transport->write("x"), tulip::RuntimeError);
        CHECK_FALSE(proto->transport->can_write_eof());
        t->close();
        co_await proto->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: FIFOs and sockets are pipes too", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        tulip::testing::TempDir dir;
        std::string path = dir.file("fifo");
        REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
        OwnedFd r(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
        OwnedFd w(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
        REQUIRE(r.get() >= 0);
        REQUIRE(w.get() >= 0);
        auto [rt, in] = co_await loop().connect_read_pipe(recorder, r.release());
        auto [wt, out] = co_await loop().connect_write_pipe(recorder, w.release());
        wt->write("through a fifo");
        wt->close();
        co_await in->until_lost();
        CHECK(in->data == "through a fifo");

        tulip::testing::SocketPair sp;
        auto [st, sout] = co_await loop().connect_write_pipe(recorder, sp.a.release());
        st->write("through a socket");
        st->close();
        co_await sout->until_lost();
        std::string got(64, '\0');
        ssize_t n = ::recv(sp.b.get(), got.data(), got.size(), 0);  // all there: the transport closed
        REQUIRE(n >= 0);
        got.resize(static_cast<std::size_t>(n));
        CHECK(got == "through a socket");
        co_await out->until_lost();
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: a regular file is refused and stays the caller's", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        OwnedFd file(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
        REQUIRE(file.get() >= 0);
        bool refused_read = false, refused_write = false;
        try {
            co_await loop().connect_read_pipe(recorder, file.get());
        } catch (const tulip::ValueError& e) {
            refused_read = std::string(e.what()) == "Pipe transport is for pipes/sockets only.";
        }
        try {
            co_await loop().connect_write_pipe(recorder, file.get());
        } catch (const tulip::ValueError& e) {
            refused_write = std::string(e.what()) == "Pipe transport is for pipes/sockets only.";
        }
        CHECK(refused_read);
        CHECK(refused_write);
        CHECK(fd_open(file.get()));
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: closing the loop closes open pipe transports", "[pipes]") {
    // The fixture's teardown closes the loop and checks that no fd or backend operation is left.
    run([&]() -> asyncio::Coro<> {
        PipePair pp = co_await connect_both(loop());
        pp.reader->pause_reading();
        pp.writer->write(pattern(256 * 1024));  // a buffer and a write watch still pending
        CHECK(pp.writer->get_write_buffer_size() > 0);
        Pipe idle;
        co_await loop().connect_read_pipe(recorder, idle.r.release());
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: a StreamReader reads lines from a read pipe", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        Pipe p;
        asyncio::StreamReader reader;
        auto factory = [reader] { return std::make_shared<asyncio::StreamReaderProtocol>(reader); };
        auto [t, proto] = co_await loop().connect_read_pipe(factory, p.r.release());
        REQUIRE(::write(p.w.get(), "line one\nline two", 17) == 17);
        p.w.close();
        std::string first = co_await reader.readline();
        std::string second = co_await reader.readline();
        std::string after = co_await reader.readline();
        CHECK(first == "line one\n");
        CHECK(second == "line two");
        CHECK(after.empty());
        CHECK(reader.at_eof());
        CHECK(t->is_closing());
    }());
}

TEST_CASE_METHOD(LoopFixture, "pipes: a datagram protocol is refused", "[pipes]") {
    run([&]() -> asyncio::Coro<> {
        Pipe p;
        auto factory = [] { return std::make_shared<asyncio::DatagramProtocol>(); };
        bool refused_read = false, refused_write = false;
        try {
            co_await loop().connect_read_pipe(factory, p.r.get());
        } catch (const tulip::ValueError&) {
            refused_read = true;
        }
        try {
            co_await loop().connect_write_pipe(factory, p.w.get());
        } catch (const tulip::ValueError&) {
            refused_write = true;
        }
        CHECK(refused_read);
        CHECK(refused_write);
        CHECK(fd_open(p.r.get()));  // still the caller's
        CHECK(fd_open(p.w.get()));
    }());
}
