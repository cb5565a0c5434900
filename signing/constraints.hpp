// Constraints on engine-generated configs (trustme-policy(5), "constraints"). When the signature covers
// only the rootfs (rootfs/.trustme/manifest), config.json came from an engine and is not signed; the
// policy then decides which configs may run that image. No OpenSSL here: the lean runtime may use it.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace trustme::signing::policy {

// Check the schema of a "constraints" object; throws "ORIGIN: constraints.FIELD: reason".
void validate_constraints(const nlohmann::json& constraints, const std::string& origin);

// Judge a parsed OCI config against (validated) constraints. Absent fields take their safe defaults.
// Throws one line "CONFIG_NAME: JSON.PATH: reason (policy constraints.FIELD)" on the first violation.
void judge_config(const nlohmann::json& constraints, const nlohmann::json& config, const std::string& config_name);

}  // namespace trustme::signing::policy
