// tulip's logger: an spdlog logger named "tulip", registered so that applications can reach it
// with spdlog::get("tulip") to change its level or sinks.
#pragma once

#include <spdlog/logger.h>

namespace tulip::detail {

spdlog::logger& logger();

}  // namespace tulip::detail
