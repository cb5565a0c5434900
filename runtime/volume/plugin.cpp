// The C ABI of libtrustme-volume.so (volume_plugin.h): no exception crosses it.
#include "runtime/volume/volume_plugin.h"

#include <cstdio>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "runtime/volume/cli.hpp"
#include "runtime/volume/volumes.hpp"
#include "signing/policy.hpp"

#define TRUSTME_EXPORT __attribute__((visibility("default")))

namespace {

void set_err(trustme_volume_error* err, const std::exception& e) {
    if (!err) return;
    err->code = trustme::error_code(e);
    std::snprintf(err->text, sizeof err->text, "%s", e.what());
}

template <size_t N>
void copy_field(char (&dst)[N], const std::string& src, const std::string& what) {
    if (src.size() >= N) trustme::fail(what + ": longer than " + std::to_string(N - 1) + " bytes");
    std::memcpy(dst, src.c_str(), src.size() + 1);
}

}  // namespace

extern "C" {

const int trustme_volume_abi = TRUSTME_VOLUME_ABI;

TRUSTME_EXPORT int trustme_volumes_open(const struct trustme_volume_request* req, struct trustme_volume_mount* mounts,
                                        size_t max_mounts, size_t* count, trustme_volume_error* err) {
    if (count) *count = 0;
    try {
        if (!req || !count) trustme::fail("trustme_volumes_open: null argument");
        if (req->abi != TRUSTME_VOLUME_ABI)
            trustme::fail("libtrustme-volume.so: ABI " + std::to_string(req->abi) + " requested, " +
                          std::to_string(TRUSTME_VOLUME_ABI) + " provided");
        std::string id = req->container_id ? req->container_id : "";
        std::string state_dir = req->state_dir ? req->state_dir : "";
        if (id.empty() || state_dir.empty())
            trustme::fail("trustme_volumes_open: container id and state dir are required");
        nlohmann::json ann = nlohmann::json::object();
        if (req->annotations_json && *req->annotations_json) {
            try {
                ann = nlohmann::json::parse(req->annotations_json);
            } catch (const nlohmann::json::exception&) {
                trustme::fail("annotations: not a JSON object");
            }
        }
        auto specs = trustme::volume::parse_volume_annotations(ann);
        if (specs.size() > max_mounts)
            trustme::fail("annotations: " + std::to_string(specs.size()) + " volumes, at most " +
                          std::to_string(max_mounts) + " supported");
        if (specs.empty()) return 0;
        std::string policy_path = req->policy_path ? req->policy_path : "";
        // "" means the runtime found no policy file: the defaults (device:/dev/tpmrm0) apply.
        std::string tcti = policy_path.empty() ? trustme::signing::policy::Policy{}.tcti
                                               : trustme::signing::policy::load(policy_path).tcti;
        auto opened = trustme::volume::open_volumes(id, specs, tcti, state_dir);
        try {
            for (size_t i = 0; i < opened.size(); ++i) {
                trustme_volume_mount& m = mounts[i];
                std::memset(&m, 0, sizeof m);
                copy_field(m.name, opened[i].name, "volume name");
                copy_field(m.device, opened[i].device, "volume " + opened[i].name + ": device");
                copy_field(m.fstype, opened[i].fstype, "volume " + opened[i].name + ": fstype");
                copy_field(m.destination, opened[i].destination, "volume " + opened[i].name + ": destination");
                m.readonly = opened[i].readonly ? 1 : 0;
            }
        } catch (...) {
            try {
                trustme::volume::close_volumes(id, state_dir);
            } catch (...) {
            }
            throw;
        }
        *count = opened.size();
        return 0;
    } catch (const std::exception& e) {
        set_err(err, e);
        return -1;
    }
}

TRUSTME_EXPORT int trustme_verity_root_open(const struct trustme_verity_root* req, char* device, size_t devlen,
                                            trustme_volume_error* err) {
    try {
        if (!req || !device || !req->container_id || !req->state_dir || !req->image_path || !req->root_hash ||
            !req->salt)
            trustme::fail("trustme_verity_root_open: null argument");
        if (req->abi != TRUSTME_VOLUME_ABI)
            trustme::fail("libtrustme-volume.so: ABI " + std::to_string(req->abi) + " requested, " +
                          std::to_string(TRUSTME_VOLUME_ABI) + " provided");
        trustme::volume::VerityParams p;
        p.root_hex = req->root_hash;
        p.salt_hex = req->salt;
        p.data_blocks = req->data_blocks;
        p.hash_offset = req->hash_offset;
        p.block = req->block;
        std::string dev =
            trustme::volume::open_verity_root(req->container_id, req->state_dir, req->image_fd, req->image_path, p);
        if (dev.size() >= devlen) {
            trustme::volume::close_volumes(req->container_id, req->state_dir);
            trustme::fail(dev + ": name too long");
        }
        std::memcpy(device, dev.c_str(), dev.size() + 1);
        return 0;
    } catch (const std::exception& e) {
        set_err(err, e);
        return -1;
    }
}

TRUSTME_EXPORT int trustme_volumes_close(const char* container_id, const char* state_dir, trustme_volume_error* err) {
    try {
        if (!container_id || !state_dir) trustme::fail("trustme_volumes_close: null argument");
        trustme::volume::close_volumes(container_id, state_dir);
        return 0;
    } catch (const std::exception& e) {
        set_err(err, e);
        return -1;
    }
}

TRUSTME_EXPORT int trustme_volume_main(int argc, char** argv) { return trustme::volume::volume_main(argc, argv); }

}  // extern "C"
