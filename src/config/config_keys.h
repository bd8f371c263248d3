// The run config's key table (config/fields.h): every key but the model
// family's own, each declared once in config_keys.cpp.
#pragma once

#include <string>
#include <vector>

#include "config/fields.h"
#include "sisa/config.h"

namespace sisa {

const std::vector<Field<Config>>& config_keys();
// A shared artifact in the identity: {"sha256": its content's}, wherever it
// lies. DataError naming the key and the file.
nlohmann::json artifact_identity(const std::string& path, const std::string& key);
// docs/config.md's key table, as the docs must hold it (checked by a test).
std::string config_keys_markdown();

}  // namespace sisa
