// tulip's logger: an spdlog logger named "tulip" (also reachable as spdlog::get("tulip") once
// created). The loop's default exception handler and debug mode write to it; change its level or
// sinks to route tulip's messages elsewhere.
#pragma once

#include <spdlog/logger.h>

namespace tulip {

spdlog::logger& logger();

}  // namespace tulip
