// trustme-policy(5): parsing, defaults, strictness, and the constraints on engine-generated configs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <unistd.h>

#include "base/error.hpp"
#include "signing/constraints.hpp"
#include "signing/policy.hpp"

using trustme::Error;
using namespace trustme::signing::policy;

namespace {

std::string error_of(const std::string& text, const std::string& origin = "/etc/p/policy.json") {
    try {
        parse(text, origin);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

std::string judge_error(const nlohmann::json& constraints, const nlohmann::json& cfg) {
    try {
        judge_config(constraints, cfg, "config.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// What containerd/podman generate for a plain `run`: default caps, own namespaces, default devices.
nlohmann::json engine_config() {
    return nlohmann::json::parse(R"({
      "ociVersion": "1.0.2",
      "process": {"args": ["sh"], "cwd": "/", "noNewPrivileges": true,
        "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                         "effective": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"]}},
      "root": {"path": "rootfs", "readonly": true},
      "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                 {"destination": "/etc/resolv.conf", "type": "bind", "source": "/var/lib/engine/c1/resolv.conf",
                  "options": ["rbind", "ro"]}],
      "linux": {
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
        "resources": {"devices": [{"allow": false, "access": "rwm"},
                                  {"allow": true, "type": "c", "access": "m"},
                                  {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                                  {"allow": true, "type": "c", "major": 136, "access": "rwm"}]},
        "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}
      }
    })");
}

}  // namespace

TEST(Policy, DefaultsWhenFileExists) {
    Policy p = parse(R"({"trust_anchors": ["pki/root-ca.pem"]})", "/etc/p/policy.json");
    EXPECT_EQ(p.signature, SignatureMode::Required);
    ASSERT_EQ(p.trust_anchors.size(), 1u);
    EXPECT_EQ(p.trust_anchors[0], "/etc/p/pki/root-ca.pem");  // anchored at the policy's directory
    EXPECT_EQ(p.verify_cache, VerifyCache::Stamps);
    EXPECT_EQ(p.pcr, 11u);
    EXPECT_EQ(p.tcti, "device:/dev/tpmrm0");
    EXPECT_EQ(p.path, "/etc/p/policy.json");
}

TEST(Policy, AllFields) {
    Policy p = parse(R"({"signature": "warn", "trust_anchors": ["/abs/ca.pem", "cas"], "crls": ["crl.pem"],
                        "tcti": "swtpm:path=/tmp/s", "pcr": 16, "attestation": true, "event_log": "/tmp/log",
                        "verify_cache": false, "constraints": {"allowed_capabilities": ["CAP_KILL"]},
                        "comment": "for tests"})",
                     "rel/policy.json");
    EXPECT_EQ(p.signature, SignatureMode::Warn);
    EXPECT_EQ(p.trust_anchors[0], "/abs/ca.pem");
    EXPECT_EQ(p.trust_anchors[1], "rel/cas");
    EXPECT_EQ(p.crls[0], "rel/crl.pem");
    EXPECT_EQ(p.tcti, "swtpm:path=/tmp/s");
    EXPECT_EQ(p.pcr, 16u);
    EXPECT_TRUE(p.attestation);
    EXPECT_EQ(p.verify_cache, VerifyCache::Off);
    EXPECT_EQ(p.constraints["allowed_capabilities"][0], "CAP_KILL");
}

TEST(Policy, VerifyCacheModes) {
    auto mode = [](const char* v) {
        return parse(std::string(R"({"signature": "off", "verify_cache": )") + v + "}", "p.json").verify_cache;
    };
    EXPECT_EQ(mode(R"("stamps")"), VerifyCache::Stamps);
    EXPECT_EQ(mode(R"("verity-only")"), VerifyCache::VerityOnly);
    EXPECT_EQ(mode(R"("off")"), VerifyCache::Off);
    EXPECT_EQ(mode("true"), VerifyCache::Stamps);
    EXPECT_EQ(mode("false"), VerifyCache::Off);
}

TEST(Policy, OffNeedsNoAnchors) { EXPECT_EQ(parse(R"({"signature": "off"})", "p.json").signature, SignatureMode::Off); }

TEST(Policy, MalformedIsAnErrorNamingFileAndField) {
    EXPECT_EQ(error_of("{"),
              "/etc/p/policy.json: invalid JSON: parse error at line 1, column 2: syntax error "
              "while parsing object key - unexpected end of input; expected string literal");
    EXPECT_EQ(error_of("[]"), "/etc/p/policy.json: policy must be a JSON object, not array");
    EXPECT_EQ(error_of(R"({"signature": "maybe", "trust_anchors": ["a"]})"),
              "/etc/p/policy.json: signature: \"maybe\" is not one of \"required\", \"warn\", \"off\"");
    EXPECT_EQ(error_of(R"({"signature": true})"),
              "/etc/p/policy.json: signature: must be \"required\", \"warn\" or \"off\"");
    EXPECT_EQ(error_of(R"({"signatur": "off"})"), "/etc/p/policy.json: signatur: unknown field");
    EXPECT_EQ(error_of(R"({"trust_anchors": "ca.pem"})"),
              "/etc/p/policy.json: trust_anchors: must be an array of strings, not string");
    EXPECT_EQ(error_of(R"({"trust_anchors": ["a", 3]})"),
              "/etc/p/policy.json: trust_anchors[1]: must be a non-empty string");
    EXPECT_EQ(error_of(R"({"pcr": 24, "signature": "off"})"), "/etc/p/policy.json: pcr: must be an integer 0..23");
    EXPECT_EQ(error_of(R"({"pcr": -1, "signature": "off"})"), "/etc/p/policy.json: pcr: must be an integer 0..23");
    EXPECT_EQ(error_of(R"({"verify_cache": "yes", "signature": "off"})"),
              "/etc/p/policy.json: verify_cache: \"yes\" is not one of \"stamps\", \"verity-only\", \"off\"");
    EXPECT_EQ(error_of(R"({"verify_cache": 1, "signature": "off"})"),
              "/etc/p/policy.json: verify_cache: must be \"stamps\", \"verity-only\", \"off\", true or false");
    EXPECT_EQ(error_of(R"({})"),
              "/etc/p/policy.json: trust_anchors: required when signature is \"required\" (nothing could ever verify)");
    EXPECT_EQ(error_of(R"({"signature": "off", "signature": "required"})"),
              "/etc/p/policy.json: signature: duplicate key");
    EXPECT_EQ(error_of(R"({"signature": "off", "constraints": {"allowed_capabilities": ["CAP_FLY"]}})"),
              "/etc/p/policy.json: constraints.allowed_capabilities[0]: not a capability name "
              "(CAP_CHOWN ... CAP_CHECKPOINT_RESTORE)");
    EXPECT_EQ(error_of(R"({"signature": "off", "constraints": {"allow_hooks": 1}})"),
              "/etc/p/policy.json: constraints.allow_hooks: must be true or false");
    EXPECT_EQ(error_of(R"({"signature": "off", "constraints": {"no_such": 1}})"),
              "/etc/p/policy.json: constraints.no_such: unknown field");
    EXPECT_EQ(error_of(R"({"signature": "off", "constraints": {"allowed_host_namespaces": ["net"]}})"),
              "/etc/p/policy.json: constraints.allowed_host_namespaces[0]: not a namespace type "
              "(pid network mount ipc uts user cgroup time)");
    EXPECT_EQ(error_of(R"({"signature": "off", "constraints": {"allowed_bind_sources": ["rel"]}})"),
              "/etc/p/policy.json: constraints.allowed_bind_sources[0]: must be an absolute path without ..");
}

// A number beyond double's range is not a parse_error for nlohmann but an out_of_range (406): it escaped
// parse() and aborted the fuzzer (found by tests/fuzz fuzz_policy on "1e555").
TEST(Policy, NumberOverflowIsAnErrorNamingFileAndField) {
    EXPECT_EQ(error_of("1e555"), "/etc/p/policy.json: invalid JSON: number overflow parsing '1e555'");
    EXPECT_EQ(error_of(R"({"signature": "off", "pcr": 1e555})"),
              "/etc/p/policy.json: pcr: number overflow parsing '1e555'");
    EXPECT_EQ(error_of(R"({"signature": "off", "constraints": {"x": [{"y": 1}, -1e999]}})"),
              "/etc/p/policy.json: constraints.x: number overflow parsing '-1e999'");
}

TEST(Policy, LoadResolution) {
    char dir[] = "/tmp/trustme-policy-test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string f = std::string(dir) + "/policy.json";
    std::ofstream(f) << R"({"signature": "warn", "trust_anchors": ["ca.pem"]})";

    ::unsetenv("TRUSTME_POLICY");
    EXPECT_EQ(load(f).signature, SignatureMode::Warn);
    EXPECT_EQ(load(f).trust_anchors[0], std::string(dir) + "/ca.pem");

    ::setenv("TRUSTME_POLICY", f.c_str(), 1);
    EXPECT_EQ(load("").path, f);
    // An explicitly named file that is missing is an error, never "no policy".
    ::setenv("TRUSTME_POLICY", (std::string(dir) + "/missing.json").c_str(), 1);
    EXPECT_THROW(load(""), Error);
    try {
        load(std::string(dir) + "/missing.json");
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "policy " + std::string(dir) + "/missing.json: No such file or directory");
    }
    ::unsetenv("TRUSTME_POLICY");

    ::unlink(f.c_str());
    ::rmdir(dir);
}

TEST(Constraints, EngineDefaultConfigPasses) {
    EXPECT_EQ(judge_error(nlohmann::json::object(), engine_config()), "");
    EXPECT_EQ(judge_error({{"require_no_new_privileges", true},
                           {"require_readonly_rootfs", true},
                           {"require_seccomp", true},
                           {"allowed_bind_sources", {"/var/lib/engine"}}},
                          engine_config()),
              "");
}

TEST(Constraints, AddedCapabilityRefused) {
    auto cfg = engine_config();
    cfg["process"]["capabilities"]["bounding"].push_back("CAP_SYS_ADMIN");
    EXPECT_EQ(judge_error(nlohmann::json::object(), cfg),
              "config.json: process.capabilities.bounding[3]: CAP_SYS_ADMIN is not allowed "
              "(policy constraints.allowed_capabilities)");
    EXPECT_EQ(judge_error(
                  {{"allowed_capabilities", {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"}}}, cfg),
              "");
    EXPECT_NE(judge_error({{"allowed_capabilities", {"CAP_CHOWN"}}}, engine_config()), "");
}

TEST(Constraints, HostNamespaceRefused) {
    auto cfg = engine_config();
    cfg["linux"]["namespaces"].erase(1);  // network: shared with the host
    EXPECT_EQ(judge_error(nlohmann::json::object(), cfg),
              "config.json: linux.namespaces: no new network namespace: it would be shared with the host "
              "(policy constraints.allowed_host_namespaces)");
    EXPECT_EQ(judge_error({{"allowed_host_namespaces", {"network"}}}, cfg), "");

    cfg = engine_config();
    cfg["linux"]["namespaces"][0]["path"] = "/proc/1/ns/pid";
    EXPECT_EQ(judge_error(nlohmann::json::object(), cfg),
              "config.json: linux.namespaces[0]: joins an existing pid namespace "
              "(policy constraints.allowed_host_namespaces)");
}

TEST(Constraints, PrivilegedDevicesRefused) {
    auto cfg = engine_config();
    cfg["linux"]["devices"].push_back({{"path", "/dev/sda"}, {"type", "b"}, {"major", 8}, {"minor", 0}});
    EXPECT_EQ(judge_error(nlohmann::json::object(), cfg),
              "config.json: linux.devices[1]: device /dev/sda (b 8:0) is privileged "
              "(policy constraints.allow_privileged_devices)");
    EXPECT_EQ(judge_error({{"allow_privileged_devices", true}}, cfg), "");

    cfg = engine_config();  // --privileged: "allow all"
    cfg["linux"]["resources"]["devices"].push_back({{"allow", true}, {"access", "rwm"}});
    EXPECT_EQ(judge_error(nlohmann::json::object(), cfg),
              "config.json: linux.resources.devices[4]: allows rwm on a *:* "
              "(policy constraints.allow_privileged_devices)");
}

TEST(Constraints, HooksBindsAndRequirements) {
    auto cfg = engine_config();
    cfg["hooks"]["createRuntime"] = {{{"path", "/bin/sh"}}};
    EXPECT_EQ(judge_error(nlohmann::json::object(), cfg),
              "config.json: hooks.createRuntime: hooks are not allowed (policy constraints.allow_hooks)");
    EXPECT_EQ(judge_error({{"allow_hooks", true}}, cfg), "");

    cfg = engine_config();
    cfg["mounts"].push_back({{"destination", "/host"}, {"source", "/"}, {"options", {"rbind"}}});
    EXPECT_EQ(
        judge_error({{"allowed_bind_sources", {"/var/lib/engine/"}}}, cfg),
        "config.json: mounts[2].source: bind mount of / is not allowed (policy constraints.allowed_bind_sources)");
    cfg["mounts"][2]["source"] = "/var/lib/engine/../../../etc";
    EXPECT_NE(judge_error({{"allowed_bind_sources", {"/var/lib/engine"}}}, cfg), "");
    cfg["mounts"][2]["source"] = "/var/lib/engineX";
    EXPECT_NE(judge_error({{"allowed_bind_sources", {"/var/lib/engine"}}}, cfg), "");

    cfg = engine_config();
    cfg["process"]["noNewPrivileges"] = false;
    EXPECT_EQ(judge_error({{"require_no_new_privileges", true}}, cfg),
              "config.json: process.noNewPrivileges: must be true (policy constraints.require_no_new_privileges)");
    cfg["linux"].erase("seccomp");
    EXPECT_EQ(judge_error({{"require_seccomp", true}}, cfg),
              "config.json: linux.seccomp: a seccomp profile is required (policy constraints.require_seccomp)");
}

TEST(Constraints, WrongTypesAreRefusedNotCrashes) {
    auto cfg = engine_config();
    cfg["linux"]["devices"][0]["type"] = 5;
    EXPECT_EQ(judge_error(nlohmann::json::object(), cfg).rfind("config.json: malformed config (", 0), 0u);
    cfg = engine_config();
    cfg["linux"]["resources"]["devices"][1]["allow"] = "yes";
    EXPECT_EQ(judge_error(nlohmann::json::object(), cfg).rfind("config.json: malformed config (", 0), 0u);
}
