// tulip::asyncio: Python's asyncio in C++20. Include this one header.
//
//     namespace asyncio = tulip::asyncio;
//     asyncio::Coro<> main_coro() { co_await asyncio::sleep(100ms); }
//     int main() { asyncio::run(main_coro()); }
#pragma once

#include "tulip/asyncio/combinators.hpp"
#include "tulip/asyncio/coro.hpp"
#include "tulip/asyncio/events.hpp"
#include "tulip/asyncio/exceptions.hpp"
#include "tulip/asyncio/futures.hpp"
#include "tulip/asyncio/locks.hpp"
#include "tulip/asyncio/protocols.hpp"
#include "tulip/asyncio/queues.hpp"
#include "tulip/asyncio/runners.hpp"
#include "tulip/asyncio/server.hpp"
#include "tulip/asyncio/sharded.hpp"
#include "tulip/asyncio/streams.hpp"
#include "tulip/asyncio/taskgroups.hpp"
#include "tulip/asyncio/tasks.hpp"
#include "tulip/asyncio/threads.hpp"
#include "tulip/asyncio/timeouts.hpp"
#include "tulip/asyncio/transports.hpp"
