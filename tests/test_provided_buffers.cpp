// Provided buffers handed out in slices: many times the pool's bytes through a small pool, two
// connections sharing buffers and giving their slices back out of order, on the backend
// TULIP_BACKEND names; on io_uring also with buffers consumed whole, the way of kernels before
// 6.12 (IOU_PBUF_RING_INC), which this kernel may not need; and the default pool following the
// probe's answer on that feature, with the backend allowed to use it and not.
#include <catch2/catch.hpp>

#include <sys/utsname.h>

#include <cstdio>
#include <memory>
#include <string>

#include "../src/backend/io_uring_probe.hpp"
#include "support/backend_helpers.hpp"
#include "support/socket_helpers.hpp"

using namespace tulip::testing;
using namespace tulip::testing::backend_ops;
using tulip::asyncio::detail::Backend;
namespace be = tulip::asyncio::detail;

namespace {

// The backend under test, or io_uring with whole buffers (`whole`; null on other backends).
std::unique_ptr<Backend> make_under_test(bool whole) {
    auto b = be::make_backend("");
    if (!whole) return b;
    if (b->name() != "io_uring") return nullptr;
    std::string why;
    return be::make_io_uring_backend(why, false);
}

std::string pattern(std::size_t n, std::size_t seed) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('!' + (i * 7 + seed) % 90);
    return s;
}

// Writes what the socket takes of `text` from `sent` on; returns the new position.
std::size_t push(int fd, const std::string& text, std::size_t sent, std::size_t at_most) {
    std::size_t n = std::min(at_most, text.size() - sent);
    if (n == 0) return sent;
    ssize_t r = ::send(fd, text.data() + sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0) {
        REQUIRE(errno == EAGAIN);
        return sent;
    }
    return sent + static_cast<std::size_t>(r);
}

bool kernel_at_least(int major, int minor) {
    utsname u{};
    if (::uname(&u) != 0) return false;
    int ma = 0, mi = 0;
    if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
    return ma > major || (ma == major && mi >= minor);
}

}  // namespace

TEST_CASE("provided buffers: many times the pool's bytes arrive whole and in order", "[backend_ops][provided_buffers]") {
    auto whole = GENERATE(false, true);
    NoFdLeak no_leak;
    auto b = make_under_test(whole);
    if (!b) return;
    b->set_buffer_pool(4, 1024);  // the ring wraps around every 4 KiB consumed
    auto [x1, y1] = unix_stream_pair();
    auto [x2, y2] = unix_stream_pair();
    BackendFd w1(*b, x1), r1(*b, y1), w2(*b, x2), r2(*b, y2);
    Probe p1(*b), p2(*b);
    for (Probe* p : {&p1, &p2}) p->keep_buffers = true;
    prepare_multishot_recv(p1, r1.get());
    prepare_multishot_recv(p2, r2.get());
    b->submit(p1);
    b->submit(p2);

    const std::string t1 = pattern(200'000, 1), t2 = pattern(150'000, 2);
    std::size_t s1 = 0, s2 = 0, round = 0;
    drive(*b, [&] {
        ++round;
        // Odd sizes, so that slices end anywhere in a buffer; connection 1 keeps its slices for
        // a round longer than connection 2, so buffers come back out of the order they went.
        s1 = push(w1.get(), t1, s1, 1 + (round * 613) % 2500);
        s2 = push(w2.get(), t2, s2, 1 + (round * 331) % 900);
        p2.give_back_held();
        if (round % 2 == 0) p1.give_back_held();
        return p1.data.size() == t1.size() && p2.data.size() == t2.size();
    }, "both transfers");
    p1.give_back_held();
    CHECK(p1.data == t1);
    CHECK(p2.data == t2);
    CHECK(p1.finals == 0);
    CHECK(p2.finals == 0);

    // Every buffer came back: a transfer of the whole pool's size still goes through.
    const std::string t3 = pattern(4096, 3);
    std::size_t s3 = 0;
    p1.data.clear();
    drive(*b, [&] {
        s3 = push(w1.get(), t3, s3, t3.size());
        p1.give_back_held();
        return p1.data.size() == t3.size();
    }, "the last transfer");
    CHECK(p1.data == t3);
    for (Probe* p : {&p1, &p2}) {
        if (!b->cancel(*p)) drive(*b, [&] { return p->finals == 1; }, "the cancellation");
        p->give_back_held();
    }
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("provided buffers: small reads share a buffer when the kernel consumes it incrementally",
          "[backend_ops][provided_buffers]") {
    auto whole = GENERATE(false, true);
    NoFdLeak no_leak;
    auto b = make_under_test(whole);
    if (!b) return;
    b->set_buffer_pool(8, 4096);
    auto [x, y] = unix_stream_pair();
    BackendFd w(*b, x), r(*b, y);
    Probe p(*b);
    p.keep_buffers = true;
    prepare_multishot_recv(p, r.get());
    b->submit(p);
    for (std::string_view part : {"abc", "defg", "hi"}) {
        std::size_t before = p.held.size();
        REQUIRE(::send(w.get(), part.data(), part.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(part.size()));
        drive(*b, [&] { return p.held.size() > before; }, "a read");
    }
    REQUIRE(p.held.size() == 3);
    // Slices of one buffer follow each other; a fresh buffer starts at 0.
    for (std::size_t i = 1; i < p.held.size(); ++i) {
        const auto& prev = p.held[i - 1];
        const auto& cur = p.held[i];
        if (cur.id == prev.id) CHECK(cur.offset == prev.offset + static_cast<std::uint32_t>(prev.bytes));
        else CHECK(cur.offset == 0);
    }
    bool shared = p.held[1].id == p.held[0].id && p.held[2].id == p.held[0].id;
    if (b->name() == "io_uring" && !whole) {
        // The ring asked for the feature itself: the once-per-process probe must have found
        // the same answer.
        CHECK(shared == be::io_uring_incremental_buffers());
        if (kernel_at_least(6, 12)) CHECK(shared);
    }
    if (whole || b->name() != "io_uring") CHECK_FALSE(shared);
    p.give_back_held();
    CHECK(p.data == "abcdefghi");
    if (!b->cancel(p)) drive(*b, [&] { return p.finals == 1; }, "the cancellation");
    CHECK(b->pending_ops() == 0);
}

TEST_CASE("provided buffers: the default pool takes the probe's answer on incremental consumption",
          "[backend_ops][provided_buffers]") {
    auto allowed = GENERATE(true, false);
    NoFdLeak no_leak;
    if (be::make_backend("")->name() != "io_uring") return;
    std::string why;
    auto b = be::make_io_uring_backend(why, allowed);
    REQUIRE(b);
    auto [x, y] = unix_stream_pair();
    BackendFd w(*b, x), r(*b, y);
    Probe p(*b);
    prepare_multishot_recv(p, r.get());
    b->submit(p);  // the first provided-buffer recv makes the default pool
    // Large buffers that small reads share where the kernel consumes them incrementally (and
    // the backend may), else the pool of Backend's defaults, consumed whole.
    const bool incremental = allowed && be::io_uring_incremental_buffers();
    if (incremental) CHECK(b->provided_buffer_size() > Backend::kDefaultBufferSize);
    else CHECK(b->provided_buffer_size() == Backend::kDefaultBufferSize);
    REQUIRE(::send(w.get(), "ab", 2, MSG_NOSIGNAL) == 2);
    drive(*b, [&] { return p.data.size() == 2; }, "a read");
    CHECK(p.data == "ab");
    if (!b->cancel(p)) drive(*b, [&] { return p.finals == 1; }, "the cancellation");
    CHECK(b->pending_ops() == 0);
}
