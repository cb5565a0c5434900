// LUKS2 through libcryptsetup: an owned crypt_device, format, keys, tokens, activation.
#pragma once
#include <libcryptsetup.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tpm/tpm.hpp"
#include "base/owned.hpp"

namespace trustme::volume {

using tpm::SecretBytes;

// "device-mapper is not available in this kernel" unless the running kernel has device-mapper.
bool dm_available();
void require_dm();

// A crypt_device handle (crypt_init ... crypt_free).
class CryptDevice {
public:
    // crypt_init + crypt_load(LUKS2). Errors: "<path>: No such file or directory",
    // "<path>: not a LUKS2 volume".
    static CryptDevice load(const std::string& path);
    // crypt_init only, for crypt_format.
    static CryptDevice init(const std::string& path);

    CryptDevice(CryptDevice&&) noexcept = default;
    CryptDevice& operator=(CryptDevice&&) = delete;
    CryptDevice(const CryptDevice&) = delete;

    crypt_device* get() const noexcept { return cd_.get(); }
    const std::string& path() const noexcept { return path_; }

private:
    CryptDevice(crypt_device* cd, std::string path) : cd_(cd), path_(std::move(path)) {}
    Owned<crypt_device, crypt_free> cd_;
    std::string path_;
};

struct FormatOptions {
    bool integrity = false;         // dm-integrity with hmac(sha256): authenticated encryption
    unsigned pbkdf_iterations = 0;  // 0: libcryptsetup's benchmarked defaults; else PBKDF2 with this count
};

// Size of the volume key: 512 bits for aes-xts, plus 256 bits of HMAC key with integrity.
size_t volume_key_size(bool integrity);

// crypt_format(LUKS2, aes-xts-plain64) with the given volume key; no keyslot.
void format(CryptDevice& cd, const SecretBytes& key, const FormatOptions& opts);

// True when `key` is this volume's key (checked against the LUKS2 digest; needs no device-mapper).
bool key_matches(CryptDevice& cd, const SecretBytes& key);

// Add a passphrase keyslot for `key`; returns the keyslot number.
int add_passphrase_keyslot(CryptDevice& cd, const SecretBytes& key, const std::string& passphrase,
                           unsigned pbkdf_iterations);

// The volume key from a passphrase keyslot. Throws "<path>: the recovery key opens no keyslot".
SecretBytes key_from_passphrase(CryptDevice& cd, const std::string& passphrase);

// Tokens: (id, JSON text) of every active token.
struct Token {
    int id;
    std::string type;
    std::string json;
};
std::vector<Token> tokens(CryptDevice& cd);
int add_token(CryptDevice& cd, const std::string& json);

// Number of active keyslots.
std::vector<int> keyslots(CryptDevice& cd);

// Activate dm-crypt under `name` with `key`. Needs device-mapper.
void activate(CryptDevice& cd, const std::string& name, const SecretBytes& key, bool readonly);
// dm-verity (format 1, SHA-256, no superblock) of `device` onto itself: data blocks first, the hash tree
// from hash_offset. Every parameter comes from the caller (a signed manifest). Read-only; needs device-mapper.
struct VerityParams {
    std::string root_hex, salt_hex;
    uint64_t data_blocks = 0, hash_offset = 0;
    uint32_t block = 4096;
};
void activate_verity(const std::string& device, const std::string& name, const VerityParams& p);

// True when a mapping of that name exists.
bool mapping_exists(const std::string& name);
// Remove the mapping; no-op when it does not exist. Throws when it is busy.
void deactivate(const std::string& name);

// A mapping removed again when this goes out of scope, unless released.
class ActiveMapping {
public:
    ActiveMapping() = default;
    explicit ActiveMapping(std::string name) : name_(std::move(name)) {}
    ActiveMapping(ActiveMapping&& o) noexcept : name_(std::move(o.name_)) { o.name_.clear(); }
    ActiveMapping& operator=(ActiveMapping&&) = delete;
    ~ActiveMapping();
    std::string device() const { return "/dev/mapper/" + name_; }
    void release() noexcept { name_.clear(); }

private:
    std::string name_;
};

// The last error libcryptsetup logged (it reports causes through a log callback, not errno).
std::string last_crypt_error();

}  // namespace trustme::volume
