// Generated documents: the default config.json (`spec`, like `runc spec`) and features.json.
#pragma once
#include <nlohmann/json.hpp>

namespace trustme::oci {
nlohmann::json default_spec(bool rootless);
nlohmann::json features();
}  // namespace trustme::oci
