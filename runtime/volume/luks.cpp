#include "runtime/volume/luks.hpp"

#include <libcryptsetup.h>
#include <string.h>
#include <sys/stat.h>

#include <fstream>
#include <mutex>
#include <sstream>

#include "base/error.hpp"
#include "base/strings.hpp"

namespace trustme::volume {
namespace {

thread_local std::string g_last_error;

// libcryptsetup reports causes through this callback; keep the last error for our one-line message
// and keep its chatter off the terminal.
void log_cb(int level, const char* msg, void*) {
    if (level == CRYPT_LOG_ERROR && msg) {
        g_last_error = msg;
        while (!g_last_error.empty() && (g_last_error.back() == '\n' || g_last_error.back() == '.'))
            g_last_error.pop_back();
    }
}

void install_log_callback() {
    static std::once_flag once;
    std::call_once(once, [] { crypt_set_log_callback(nullptr, log_cb, nullptr); });
}

std::string with_cause(const std::string& what, int rc) {
    std::string m = what;
    if (!g_last_error.empty()) {
        m += ": " + g_last_error;
    } else if (rc < 0) {
        m += ": ";
        m += strerror(-rc);
    }
    return m;
}

}  // namespace

std::string last_crypt_error() { return g_last_error; }

bool dm_available() {
    // /proc/misc lists "device-mapper" once dm-mod is loaded or built in. /dev/mapper/control alone
    // proves nothing: this host has the node but no driver behind it.
    std::ifstream misc("/proc/misc");
    std::string line;
    while (std::getline(misc, line))
        if (line.find(" device-mapper") != std::string::npos) return true;
    return false;
}

void require_dm() {
    if (!dm_available()) fail("device-mapper is not available in this kernel");
}

CryptDevice CryptDevice::init(const std::string& path) {
    install_log_callback();
    g_last_error.clear();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail_errno(path);
    crypt_device* cd = nullptr;
    int rc = crypt_init(&cd, path.c_str());
    if (rc < 0) fail(with_cause(path, rc));
    return CryptDevice(cd, path);
}

CryptDevice CryptDevice::load(const std::string& path) {
    CryptDevice d = init(path);
    int rc = crypt_load(d.get(), CRYPT_LUKS2, nullptr);
    if (rc < 0) {
        if (rc == -EINVAL || rc == -ENOENT) fail(path + ": not a LUKS2 volume");
        fail(with_cause(path + ": cannot read the LUKS2 header", rc));
    }
    return d;
}

size_t volume_key_size(bool integrity) { return integrity ? 96 : 64; }

namespace {
void set_pbkdf(CryptDevice& cd, unsigned iterations) {
    if (iterations == 0) return;
    // A pinned PBKDF2 count skips the benchmark; tests use it because argon2id at its default cost
    // takes ~13 s under TCG.
    crypt_pbkdf_type p{};
    p.type = CRYPT_KDF_PBKDF2;
    p.hash = "sha256";
    p.iterations = iterations;
    p.flags = CRYPT_PBKDF_NO_BENCHMARK;
    int rc = crypt_set_pbkdf_type(cd.get(), &p);
    if (rc < 0) fail(with_cause(cd.path() + ": cannot set the PBKDF", rc));
}
}  // namespace

void format(CryptDevice& cd, const SecretBytes& key, const FormatOptions& opts) {
    g_last_error.clear();
    set_pbkdf(cd, opts.pbkdf_iterations);
    crypt_params_luks2 params{};
    params.sector_size = 4096;
    // hmac(sha256) over each sector with a 256-bit key of its own (the last 32 bytes of the volume key),
    // as cryptsetup's --integrity hmac-sha256 does.
    if (opts.integrity) params.integrity = "hmac(sha256)";
    int rc = crypt_format(cd.get(), CRYPT_LUKS2, "aes", "xts-plain64", nullptr,
                          reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size(), &params);
    if (rc < 0) fail(with_cause(cd.path() + ": cannot format as LUKS2", rc));
}

bool key_matches(CryptDevice& cd, const SecretBytes& key) {
    g_last_error.clear();
    return crypt_volume_key_verify(cd.get(), reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size()) >= 0;
}

int add_passphrase_keyslot(CryptDevice& cd, const SecretBytes& key, const std::string& passphrase,
                           unsigned pbkdf_iterations) {
    g_last_error.clear();
    set_pbkdf(cd, pbkdf_iterations);
    int rc = crypt_keyslot_add_by_volume_key(cd.get(), CRYPT_ANY_SLOT, reinterpret_cast<const char*>(key.bytes.data()),
                                             key.bytes.size(), passphrase.data(), passphrase.size());
    if (rc < 0) fail(with_cause(cd.path() + ": cannot add the recovery keyslot", rc));
    return rc;
}

SecretBytes key_from_passphrase(CryptDevice& cd, const std::string& passphrase) {
    g_last_error.clear();
    size_t size = static_cast<size_t>(crypt_get_volume_key_size(cd.get()));
    SecretBytes key{std::vector<uint8_t>(size)};
    int rc = crypt_volume_key_get(cd.get(), CRYPT_ANY_SLOT, reinterpret_cast<char*>(key.bytes.data()), &size,
                                  passphrase.data(), passphrase.size());
    if (rc == -EPERM || rc == -ENOENT) fail(cd.path() + ": the recovery key opens no keyslot");
    if (rc < 0) fail(with_cause(cd.path() + ": cannot unlock a keyslot", rc));
    key.bytes.resize(size);
    return key;
}

std::vector<Token> tokens(CryptDevice& cd) {
    std::vector<Token> out;
    int max = crypt_token_max(CRYPT_LUKS2);
    for (int id = 0; id < max; ++id) {
        const char* type = nullptr;
        crypt_token_info st = crypt_token_status(cd.get(), id, &type);
        if (st == CRYPT_TOKEN_INVALID || st == CRYPT_TOKEN_INACTIVE) continue;
        const char* json = nullptr;
        if (crypt_token_json_get(cd.get(), id, &json) < 0 || !json) continue;
        out.push_back({id, type ? type : "", json});
    }
    return out;
}

int add_token(CryptDevice& cd, const std::string& json) {
    g_last_error.clear();
    int rc = crypt_token_json_set(cd.get(), CRYPT_ANY_TOKEN, json.c_str());
    if (rc < 0) fail(with_cause(cd.path() + ": cannot store the TPM token in the LUKS2 header", rc));
    return rc;
}

std::vector<int> keyslots(CryptDevice& cd) {
    std::vector<int> out;
    int max = crypt_keyslot_max(CRYPT_LUKS2);
    for (int i = 0; i < max; ++i) {
        crypt_keyslot_info st = crypt_keyslot_status(cd.get(), i);
        if (st == CRYPT_SLOT_ACTIVE || st == CRYPT_SLOT_ACTIVE_LAST) out.push_back(i);
    }
    return out;
}

void activate(CryptDevice& cd, const std::string& name, const SecretBytes& key, bool readonly) {
    require_dm();
    g_last_error.clear();
    uint32_t flags = readonly ? CRYPT_ACTIVATE_READONLY : 0;
    int rc = crypt_activate_by_volume_key(cd.get(), name.c_str(), reinterpret_cast<const char*>(key.bytes.data()),
                                          key.bytes.size(), flags);
    if (rc == -EPERM) fail(cd.path() + ": the key does not open this volume");
    if (rc < 0) fail(with_cause(cd.path() + ": cannot activate dm-crypt mapping " + name, rc));
}

namespace {
std::string unhex(const std::string& h, const char* what) {
    std::string out;
    if (h.size() % 2) fail(std::string("dm-verity ") + what + ": odd number of hex digits");
    for (size_t i = 0; i < h.size(); i += 2) {
        unsigned v = 0;
        auto [end, ec] = std::from_chars(h.data() + i, h.data() + i + 2, v, 16);
        if (ec != std::errc() || end != h.data() + i + 2) fail(std::string("dm-verity ") + what + ": not hex");
        out += static_cast<char>(v);
    }
    return out;
}
}  // namespace

void activate_verity(const std::string& device, const std::string& name, const VerityParams& p) {
    CryptDevice cd = CryptDevice::init(device);
    const std::string salt = unhex(p.salt_hex, "salt"), root = unhex(p.root_hex, "root hash");
    crypt_params_verity v{};
    v.hash_name = "sha256";
    v.data_device = device.c_str();
    v.salt = salt.data();
    v.salt_size = static_cast<uint32_t>(salt.size());
    v.hash_type = 1;
    v.data_block_size = v.hash_block_size = p.block;
    v.data_size = p.data_blocks;
    v.hash_area_offset = p.hash_offset;
    v.flags = CRYPT_VERITY_NO_HEADER;  // no superblock: the parameters above are the signed ones
    // Without CRYPT_VERITY_CREATE_HASH this only describes the device to the handle.
    int rc = crypt_format(cd.get(), CRYPT_VERITY, nullptr, nullptr, nullptr, nullptr, 0, &v);
    if (rc < 0) fail(with_cause(device + ": dm-verity parameters", rc));
    // The "volume key" of a verity device is its root hash. The kernel checks it lazily, on reads.
    rc = crypt_activate_by_volume_key(cd.get(), name.c_str(), root.data(), root.size(), CRYPT_ACTIVATE_READONLY);
    if (rc < 0) fail(with_cause(device + ": cannot activate dm-verity mapping " + name, rc));
}

bool mapping_exists(const std::string& name) {
    if (!dm_available()) return false;
    install_log_callback();
    crypt_status_info st = crypt_status(nullptr, name.c_str());
    return st == CRYPT_ACTIVE || st == CRYPT_BUSY;
}

void deactivate(const std::string& name) {
    if (!mapping_exists(name)) return;
    g_last_error.clear();
    int rc = crypt_deactivate_by_name(nullptr, name.c_str(), 0);
    if (rc == -EBUSY) fail("/dev/mapper/" + name + " is still in use (mounted?)");
    if (rc < 0 && mapping_exists(name)) fail(with_cause("cannot deactivate /dev/mapper/" + name, rc));
}

ActiveMapping::~ActiveMapping() {
    if (name_.empty()) return;
    try {
        deactivate(name_);
    } catch (...) {
    }
}

}  // namespace trustme::volume
