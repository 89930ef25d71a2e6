// The per-thread block cache behind coroutine frames, future/task states and callback nodes
// (detail/block_cache.hpp): blocks that change threads, the cap, the release at thread exit.
// Under ASan and TSan the cache is compiled out; these tests then check the same traffic on
// plain operator new/delete, which is what those builds are for.
#include "tulip/asyncio/detail/block_cache.hpp"

#include <malloc.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "loop_fixture.hpp"

namespace asyncio = tulip::asyncio;
namespace block_cache = tulip::asyncio::detail::block_cache;
using tulip::testing::LoopFixture;

namespace {

asyncio::Coro<int> twice_after_yield(int i) {
    co_await asyncio::sleep(0);
    co_return 2 * i;
}

// Creates `count` tasks that are all alive at once, then awaits them; returns the sum.
asyncio::Coro<long> burst(int count) {
    std::vector<asyncio::Task<int>> tasks;
    tasks.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) tasks.push_back(asyncio::create_task(twice_after_yield(i)));
    long sum = 0;
    for (auto& t : tasks) sum += co_await t;
    co_return sum;
}

long expected_burst(int count) { return static_cast<long>(count) * (count - 1); }

}  // namespace

TEST_CASE_METHOD(LoopFixture, "block cache: results of run_in_executor and to_thread made and freed across threads",
                 "[threads]") {
    // Each result crosses twice: the callback node that delivers it is made on a worker and freed
    // on the loop (or on the worker, when its Handle there goes last); the future states and
    // frames are made on the loop, and to_thread's arguments are destroyed on the worker.
    auto body = [&]() -> asyncio::Coro<bool> {
        bool ok = true;
        for (int round = 0; round < 5; ++round) {
            std::vector<asyncio::Future<std::string>> futures;
            for (int i = 0; i < 400; ++i)
                futures.push_back(loop().run_in_executor([i] { return std::string(100, 'a' + i % 26); }));
            for (int i = 0; i < 400; ++i) ok = ok && (co_await futures[static_cast<std::size_t>(i)]) ==
                                                         std::string(100, 'a' + i % 26);
            for (int i = 0; i < 50; ++i)
                ok = ok && co_await asyncio::to_thread([](std::vector<int> v) { return v.at(7); },
                                                       std::vector<int>(10, i)) == i;
        }
        co_return ok;
    };
    CHECK(run(body()));
}

TEST_CASE("block cache: tasks of a loop in another thread, and coroutines sent to it", "[threads]") {
    // A loop runs in its own thread and makes, runs and frees bursts of tasks there; meanwhile
    // this thread makes coroutine frames and hands them over with run_coroutine_threadsafe, so
    // they are freed into the other thread's cache. The other thread then exits and gives its
    // blocks back.
    std::atomic<asyncio::EventLoop*> other_loop{nullptr};
    std::atomic<bool> cap_held{false};
    long other_sum = -1;
    std::optional<asyncio::Future<>> release;  // set from this thread (call_soon_threadsafe)
    std::thread other([&] {
        asyncio::EventLoop loop;
        release = loop.create_future();
        other_sum = loop.run_until_complete([&]() -> asyncio::Coro<long> {
            other_loop = &loop;
            long sum = 0;
            for (int round = 0; round < 10; ++round) sum += co_await burst(500);
            co_await *release;
            co_return sum;
        }());
        release.reset();
        auto stats = block_cache::thread_stats();
        cap_held = stats.cached_bytes <= block_cache::kMaxCachedBytes;
    });
    while (!other_loop) std::this_thread::yield();
    long sent_sum = 0;
    for (int i = 0; i < 1000; ++i)
        sent_sum += asyncio::run_coroutine_threadsafe(twice_after_yield(i), *other_loop).result();
    other_loop.load()->call_soon_threadsafe([&] { release->set_result(); });
    other.join();
    CHECK(sent_sum == expected_burst(1000));
    CHECK(other_sum == 10 * expected_burst(500));
    CHECK(cap_held);
}

TEST_CASE("block cache: a thread keeps at most its cap, reuses what it keeps, and gives it back at exit",
          "[tasks]") {
    // A fresh thread, so that the cache starts empty.
    block_cache::Stats empty, after_small, after_small_again, after_flood;
    std::size_t in_use_with_cache = 0;
    std::thread worker([&] {
        empty = block_cache::thread_stats();
        asyncio::EventLoop loop;
        // Far below the cap, a second identical burst takes every block it needs from the cache
        // and gives it back: the cache neither grows nor shrinks.
        CHECK(loop.run_until_complete(burst(100)) == expected_burst(100));
        after_small = block_cache::thread_stats();
        CHECK(loop.run_until_complete(burst(100)) == expected_burst(100));
        after_small_again = block_cache::thread_stats();
        // ~20,000 frames and task states alive at once: far more than the cap once freed.
        CHECK(loop.run_until_complete(burst(20'000)) == expected_burst(20'000));
        after_flood = block_cache::thread_stats();
#ifdef __GLIBC__
        in_use_with_cache = mallinfo2().uordblks;
#endif
    });
    worker.join();
    CHECK(empty.cached_bytes == 0);
    CHECK(empty.cached_blocks == 0);
    if (!after_flood.enabled) {
        CHECK(after_flood.cached_bytes == 0);
        return;
    }
    CHECK(after_small.cached_bytes > 0);
    CHECK(after_small_again.cached_bytes == after_small.cached_bytes);
    CHECK(after_small_again.cached_blocks == after_small.cached_blocks);
    CHECK(after_flood.cached_bytes <= block_cache::kMaxCachedBytes);
    CHECK(after_flood.cached_bytes + block_cache::kMaxBlock > block_cache::kMaxCachedBytes);  // filled
#ifdef __GLIBC__
    // The worker's ~4 MiB of cached blocks were freed when it exited.
    std::size_t in_use_after_exit = mallinfo2().uordblks;
    CHECK(in_use_after_exit + block_cache::kMaxCachedBytes / 2 < in_use_with_cache);
#endif
}
