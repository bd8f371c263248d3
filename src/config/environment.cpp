#include "config/environment.h"

#include <link.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>

#include <cstdlib>
#include <filesystem>

#include "sisa/errors.h"
#include "sisa/placement.h"
#include "util/sha256.h"

namespace sisa {
namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The BLAS shared object actually loaded (Debian switches libblas.so.3
// between the reference BLAS and OpenBLAS with update-alternatives).
std::string loaded_blas() {
  std::string found = "none";
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        const std::string name = info->dlpi_name ? info->dlpi_name : "";
        if (name.find("libblas") != std::string::npos || name.find("libopenblas") != std::string::npos ||
            name.find("libmkl") != std::string::npos) {
          std::error_code ec;
          const auto real = std::filesystem::canonical(name, ec);
          *static_cast<std::string*>(data) = ec ? name : real.string();
          return 1;
        }
        return 0;
      },
      &found);
  return found;
}

std::string cpu_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "baseline";
}

}  // namespace

nlohmann::json current_environment(int64_t threads) {
  return {{"torch_version", TORCH_VERSION},
          {"blas", loaded_blas()},
          {"blas_threads", threads},
          {"openblas_coretype", env_or("OPENBLAS_CORETYPE", "unset")},
          {"aten_cpu_capability", env_or("ATEN_CPU_CAPABILITY", "unset")},
          {"dnnl_max_cpu_isa", env_or("DNNL_MAX_CPU_ISA", "unset")},
          {"cpu_isa", cpu_isa()},
          {"train_threads", threads},
          {"placement_version", kPlacementVersion}};
}

std::vector<std::string> environment_diff(const nlohmann::json& recorded, const nlohmann::json& current) {
  std::vector<std::string> diffs;
  for (auto it = current.begin(); it != current.end(); ++it) {
    const auto r = recorded.find(it.key());
    if (r == recorded.end() || *r != it.value()) {
      diffs.push_back(it.key() + ": run has " + (r == recorded.end() ? "nothing" : r->dump()) + ", here " +
                      it.value().dump());
    }
  }
  return diffs;
}

void check_environment(const nlohmann::json& recorded, int64_t threads, bool force, const std::string& run_dir) {
  const auto diffs = environment_diff(recorded, current_environment(threads));
  if (diffs.empty()) return;
  std::string msg = "the numeric environment differs from the one run '" + run_dir +
                    "' was trained in, so retraining would not be bit-identical:";
  for (const auto& d : diffs) msg += "\n  " + d;
  if (!force) throw EnvironmentError(msg + "\n(use --force to proceed anyway)");
  spdlog::warn("{}\n(--force given: proceeding)", msg);
}

std::string identity_hash(const Config& c, const nlohmann::json& environment) {
  return sha256_hex(c.training_json() + "\n" + environment.dump());
}

}  // namespace sisa
