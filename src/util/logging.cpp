#include "sisa/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace sisa {

void init_logging(Verbosity verbosity, int rank) {
  auto logger = spdlog::stderr_color_mt("sisa");
  const std::string rank_tag = rank >= 0 ? " [rank " + std::to_string(rank) + "]" : "";
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$]" + rank_tag + " %v");
  switch (verbosity) {
    case Verbosity::kQuiet:
      logger->set_level(spdlog::level::warn);
      break;
    case Verbosity::kNormal:
      logger->set_level(spdlog::level::info);
      break;
    case Verbosity::kVerbose:
      logger->set_level(spdlog::level::debug);
      break;
  }
  spdlog::set_default_logger(logger);
}

}  // namespace sisa
