// The volume's key sealed by the TPM, kept as a LUKS2 token in the volume's own header.
//
// Token JSON (type "trustme-tpm2"):
//   {"type":"trustme-tpm2","keyslots":[],"trustme_version":1,"key_bits":512,"fstype":"ext4",
//    "sealed":{<tpm::SealedObject::to_json()>}}
// "keyslots" is empty: the TPM seals the volume key itself (not a passphrase for a keyslot), so a volume
// needs no keyslot at all; a recovery passphrase is an ordinary keyslot next to it.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "runtime/volume/luks.hpp"

namespace trustme::volume {

inline constexpr const char* kTokenType = "trustme-tpm2";
// systemd-cryptenroll's token: recognised by inspect; its primary-key template differs from ours, so
// such a volume opens through its recovery key (documented in docs/volumes.md).
inline constexpr const char* kSystemdTokenType = "systemd-tpm2";

struct TpmToken {
    int id = -1;
    tpm::SealedObject sealed;
    std::string fstype;  // file system made by `volume create --mkfs`, "" if none
    int key_bits = 0;    // size of the sealed volume key; libcryptsetup only knows it from a keyslot
};

std::string token_json(const tpm::SealedObject& sealed, size_t key_bytes, const std::string& fstype);
// Errors name the token: "<path>: token N: <field>: ...".
TpmToken parse_token(const std::string& path, int id, const std::string& json);

// Every trustme-tpm2 token of the volume.
std::vector<TpmToken> tpm_tokens(CryptDevice& cd);

// Unseal the volume key with the TPM at `tcti` from the first token that yields the key of this volume.
// Errors: "<path>: no trustme-tpm2 token ...", the TPM's error (absent TPM, PCR mismatch), or
// "<path>: the key sealed in token N does not open this volume".
SecretBytes unseal_volume_key(CryptDevice& cd, const std::string& tcti, std::string* fstype = nullptr);

// Parse "7,11" into PCR indices 0..23. Errors name `what`.
std::vector<uint32_t> parse_pcrs(const std::string& text, const std::string& what);

}  // namespace trustme::volume
