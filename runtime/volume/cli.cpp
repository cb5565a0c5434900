#include "runtime/volume/cli.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include <libcryptsetup.h>
#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "base/strings.hpp"
#include "runtime/volume/loop.hpp"
#include "runtime/volume/luks.hpp"
#include "runtime/volume/token.hpp"
#include "signing/policy.hpp"

extern char** environ;

namespace trustme::volume {
namespace {

constexpr const char* kUsage =
    "Usage: trustme-runtime volume create IMAGE --size SIZE [--integrity] [--recovery-key FILE]\n"
    "                                  [--pcrs LIST] [--tcti TCTI] [--mkfs ext4|none] [--policy FILE]\n"
    "                                  [--pbkdf-iterations N]\n"
    "       trustme-runtime volume enroll IMAGE --recovery-key FILE [--pcrs LIST] [--tcti TCTI] [--policy FILE]\n"
    "       trustme-runtime volume inspect IMAGE\n"
    "\n"
    "Encrypted volumes for containers: LUKS2 (aes-xts-plain64, 512-bit key) whose random volume key is\n"
    "sealed by the TPM to PCR values and kept as a \"trustme-tpm2\" token in the volume's own header.\n"
    "A bundle mounts one with the annotations org.trustme.volume.<name>.source (IMAGE),\n"
    ".destination (path in the container) and .options (ro, rw, fstype=TYPE).\n"
    "\n"
    "Commands:\n"
    "  create    make IMAGE (a new file) of SIZE bytes (suffix K, M, G, T; the LUKS2 header takes 16M),\n"
    "            seal a fresh volume key and make a file system on it\n"
    "  enroll    add a TPM token to an existing LUKS2 volume, unlocked with its recovery passphrase\n"
    "  inspect   show the volume's cipher, keyslots and tokens\n"
    "\n"
    "Options:\n"
    "  --size SIZE             size of the image file\n"
    "  --integrity             authenticated encryption: dm-integrity with hmac(sha256)\n"
    "  --recovery-key FILE     create: also add a passphrase keyslot with the passphrase in FILE;\n"
    "                          enroll: the passphrase that unlocks the volume\n"
    "  --pcrs LIST             PCRs (sha256 bank) the key is sealed to, e.g. 7,11; \"none\": none (default 7);\n"
    "                          the policy's attestation PCR is refused when attestation is on\n"
    "  --tcti TCTI             TPM to use (default: the policy's, else device:/dev/tpmrm0)\n"
    "  --policy FILE           policy file giving the TCTI (default $TRUSTME_POLICY, /etc/trustme/policy.json)\n"
    "  --mkfs ext4|none        file system to make on the volume (default ext4)\n"
    "  --pbkdf-iterations N    PBKDF2 with N iterations for the recovery keyslot and the key digest\n"
    "                          instead of benchmarked argon2id (for tests)\n"
    "  -h, --help              this help\n";

struct Args {
    std::string cmd, image;
    std::map<std::string, std::string> opts;  // --name -> value ("" for flags)
};

Args parse_args(int argc, char** argv) {
    static const std::map<std::string, bool> known = {
        {"--size", true}, {"--integrity", false}, {"--recovery-key", true}, {"--pcrs", true},
        {"--tcti", true}, {"--mkfs", true},       {"--policy", true},       {"--pbkdf-iterations", true}};
    Args a;
    if (argc < 2) throw UsageError("missing command (create, enroll, inspect)");
    a.cmd = argv[1];
    for (int i = 2; i < argc; ++i) {
        std::string s = argv[i];
        if (s.rfind("--", 0) == 0) {
            std::string name = s, value;
            size_t eq = s.find('=');
            if (eq != std::string::npos) {
                name = s.substr(0, eq);
                value = s.substr(eq + 1);
            }
            auto k = known.find(name);
            if (k == known.end()) throw UsageError("unknown option " + name);
            if (k->second && eq == std::string::npos) {
                if (i + 1 >= argc) throw UsageError(name + " needs a value");
                value = argv[++i];
            }
            a.opts[name] = value;
        } else if (a.image.empty()) {
            a.image = s;
        } else {
            throw UsageError("unexpected argument " + s);
        }
    }
    if (a.image.empty()) throw UsageError("missing IMAGE");
    return a;
}

void allow_only(const Args& a, std::initializer_list<const char*> allowed) {
    for (auto& [k, v] : a.opts) {
        bool ok = false;
        for (auto* n : allowed) ok = ok || k == n;
        if (!ok) throw UsageError(k + " does not apply to `volume " + a.cmd + "`");
    }
}

std::string opt(const Args& a, const std::string& name, const std::string& dflt = "") {
    auto it = a.opts.find(name);
    return it == a.opts.end() ? dflt : it->second;
}

uint64_t parse_size(const std::string& s) {
    if (s.empty()) fail("--size: missing");
    size_t i = 0;
    while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == 0 || i > 15) fail("--size: not a size: \"" + s + "\" (e.g. 64M)");
    uint64_t v = std::stoull(s.substr(0, i));
    std::string suf = s.substr(i);
    uint64_t mul = 1;
    if (suf == "" || suf == "B") mul = 1;
    else if (suf == "K" || suf == "k" || suf == "KiB") mul = 1ULL << 10;
    else if (suf == "M" || suf == "MiB") mul = 1ULL << 20;
    else if (suf == "G" || suf == "GiB") mul = 1ULL << 30;
    else if (suf == "T" || suf == "TiB") mul = 1ULL << 40;
    else fail("--size: unknown unit \"" + suf + "\" (K, M, G, T)");
    if (v > UINT64_MAX / mul) fail("--size: too large: \"" + s + "\"");
    return v * mul;
}

unsigned parse_iterations(const Args& a) {
    std::string s = opt(a, "--pbkdf-iterations");
    if (s.empty()) return 0;
    auto n = s.size() > 9 ? std::nullopt : parse_decimal<unsigned>(s);
    if (!n || *n < 1000) fail("--pbkdf-iterations: not a number >= 1000: \"" + s + "\"");
    return *n;
}

// --pcrs (default 7). A key sealed to the PCR that attestation extends at every measured start would stop
// unsealing after the next start: refused when the policy measures into one of them.
std::vector<uint32_t> sealing_pcrs(const Args& a) {
    std::string text = opt(a, "--pcrs", "7");
    auto pcrs = text == "none" ? std::vector<uint32_t>{} : parse_pcrs(text, "--pcrs");
    signing::policy::Policy pol = signing::policy::load(opt(a, "--policy"));
    for (uint32_t p : pcrs)
        if (pol.attestation && p == pol.pcr)
            fail("--pcrs: PCR " + std::to_string(p) + " is extended at every measured container start (" +
                 (pol.path.empty() ? std::string("the policy") : pol.path) +
                 ": attestation, pcr): the key would not unseal after the next start; seal to PCRs of the "
                 "host's boot (e.g. 7)");
    return pcrs;
}

std::string resolve_tcti(const Args& a) {
    std::string t = opt(a, "--tcti");
    if (!t.empty()) return t;
    return signing::policy::load(opt(a, "--policy")).tcti;
}

std::string read_passphrase(const std::string& path) {
    std::string p = read_file(path);
    if (!p.empty() && p.back() == '\n') p.pop_back();
    if (p.empty()) fail(path + ": empty recovery key");
    return p;
}

SecretBytes random_key(size_t n) {
    SecretBytes k{std::vector<uint8_t>(n)};
    size_t off = 0;
    while (off < n) {
        ssize_t r = ::getrandom(k.bytes.data() + off, n - off, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail_errno("getrandom");
        }
        off += static_cast<size_t>(r);
    }
    return k;
}

// Removes the half-made image unless committed: a failed create leaves nothing behind.
class NewFile {
public:
    NewFile(const std::string& path, uint64_t size) : path_(path) {
        fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (!fd_) fail_errno(path);
        created_ = true;
        if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) fail_errno(path + ": set size");
    }
    ~NewFile() {
        if (created_ && !committed_) ::unlink(path_.c_str());
    }
    int fd() const { return fd_.get(); }
    void commit() { committed_ = true; }

private:
    std::string path_;
    UniqueFd fd_;
    bool created_ = false, committed_ = false;
};

int run_program(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail(rc, "cannot run " + argv[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) fail_errno("waitpid " + argv[0]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int cmd_create(const Args& a) {
    allow_only(
        a, {"--size", "--integrity", "--recovery-key", "--pcrs", "--tcti", "--mkfs", "--policy", "--pbkdf-iterations"});
    const std::string& image = a.image;
    uint64_t size = parse_size(opt(a, "--size"));
    bool integrity = a.opts.count("--integrity") > 0;
    std::string mkfs = opt(a, "--mkfs", "ext4");
    if (mkfs != "ext4" && mkfs != "none") fail("--mkfs: unsupported file system \"" + mkfs + "\" (ext4, none)");
    auto pcrs = sealing_pcrs(a);
    unsigned iterations = parse_iterations(a);
    std::optional<std::string> recovery;
    if (a.opts.count("--recovery-key")) recovery = read_passphrase(opt(a, "--recovery-key"));
    const uint64_t header = 16ULL << 20;
    if (size < header + (1ULL << 20)) fail("--size: at least 17M (the LUKS2 header takes 16M)");
    struct stat st {};
    if (::lstat(image.c_str(), &st) == 0) fail(image + ": already exists");
    // Checked before anything is made: making the file system (and formatting with dm-integrity)
    // activates the volume.
    if (mkfs != "none" || integrity) require_dm();

    // The TPM first: without one nothing is created.
    SecretBytes key = random_key(volume_key_size(integrity));
    tpm::SealedObject sealed;
    {
        tpm::Tpm t(resolve_tcti(a));
        sealed = t.seal(key.bytes, pcrs);
    }

    NewFile file(image, size);
    CryptDevice cd = CryptDevice::init(image);
    FormatOptions fo;
    fo.integrity = integrity;
    fo.pbkdf_iterations = iterations;
    format(cd, key, fo);
    add_token(cd, token_json(sealed, key.bytes.size(), mkfs == "none" ? "" : mkfs));
    if (recovery) add_passphrase_keyslot(cd, key, *recovery, iterations);

    if (mkfs != "none" || integrity) {
        std::optional<LoopDevice> loop;
        loop.emplace(LoopDevice::attach(file.fd(), image, false));
        CryptDevice dev = CryptDevice::load(loop->path());
        std::string name = "trustme-mkfs-" + std::to_string(::getpid());
        activate(dev, name, key, false);
        ActiveMapping mapping(name);
        if (integrity) {
            // dm-integrity's tags are uninitialised until written: reading an unwritten sector is an
            // integrity error (cryptsetup luksFormat wipes for the same reason), so write every sector.
            int rc = crypt_wipe(dev.get(), mapping.device().c_str(), CRYPT_WIPE_ZERO, 0, 0, 1 << 20,
                                CRYPT_WIPE_NO_DIRECT_IO, nullptr, nullptr);
            if (rc < 0) fail(image + ": cannot initialise the integrity tags: " + last_crypt_error());
        }
        if (mkfs == "ext4") {
            int rc = run_program(
                {"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", mapping.device()});
            if (rc != 0) fail(image + ": mkfs.ext4 failed with exit status " + std::to_string(rc));
        }
    }
    file.commit();
    return 0;
}

int cmd_enroll(const Args& a) {
    allow_only(a, {"--recovery-key", "--pcrs", "--tcti", "--policy"});
    if (!a.opts.count("--recovery-key")) throw UsageError("enroll needs --recovery-key FILE");
    std::string pass = read_passphrase(opt(a, "--recovery-key"));
    auto pcrs = sealing_pcrs(a);
    CryptDevice cd = CryptDevice::load(a.image);
    SecretBytes key = key_from_passphrase(cd, pass);
    tpm::Tpm t(resolve_tcti(a));
    tpm::SealedObject sealed = t.seal(key.bytes, pcrs);
    // Keep the file system type a token of `create` recorded.
    std::string fstype;
    for (auto& tok : tpm_tokens(cd))
        if (!tok.fstype.empty()) fstype = tok.fstype;
    int id = add_token(cd, token_json(sealed, key.bytes.size(), fstype));
    std::cout << "token " << id << ": " << kTokenType << " added\n";
    return 0;
}

std::string pcr_list(const std::vector<uint32_t>& pcrs) {
    if (pcrs.empty()) return "none";
    std::string s;
    for (auto p : pcrs) s += (s.empty() ? "" : ",") + std::to_string(p);
    return s;
}

int cmd_inspect(const Args& a) {
    allow_only(a, {});
    CryptDevice cd = CryptDevice::load(a.image);
    std::ostringstream o;
    o << "image: " << a.image << "\n";
    o << "type: LUKS2\n";
    const char* uuid = crypt_get_uuid(cd.get());
    o << "uuid: " << (uuid ? uuid : "") << "\n";
    o << "cipher: " << crypt_get_cipher(cd.get()) << "-" << crypt_get_cipher_mode(cd.get()) << "\n";
    int key_bits = crypt_get_volume_key_size(cd.get()) * 8;
    for (auto& t : tokens(cd)) {
        if (key_bits != 0 || t.type != kTokenType) continue;
        try {
            key_bits = parse_token(a.image, t.id, t.json).key_bits;
        } catch (const Error&) {
        }
    }
    if (key_bits) o << "volume key: " << key_bits << " bits\n";
    crypt_params_integrity ip{};
    if (crypt_get_integrity_info(cd.get(), &ip) == 0 && ip.integrity) o << "integrity: " << ip.integrity << "\n";
    else o << "integrity: none\n";
    o << "data offset: " << crypt_get_data_offset(cd.get()) * 512 << " bytes\n";
    auto slots = keyslots(cd);
    o << "keyslots:";
    if (slots.empty()) o << " none";
    for (int s : slots) o << " " << s;
    o << "\n";
    for (auto& t : tokens(cd)) {
        o << "token " << t.id << ": " << t.type;
        if (t.type == kTokenType) {
            try {
                TpmToken tok = parse_token(a.image, t.id, t.json);
                o << ", sealed to PCRs " << pcr_list(tok.sealed.pcrs) << " (sha256)";
                if (tok.sealed.has_auth) o << " and a PIN";
                if (!tok.fstype.empty()) o << ", file system " << tok.fstype;
            } catch (const Error& e) {
                o << ", unreadable: " << e.what();
            }
        } else if (t.type == kSystemdTokenType) {
            try {
                auto j = nlohmann::json::parse(t.json);
                std::vector<uint32_t> pcrs;
                for (auto& p : j.value("tpm2-pcrs", nlohmann::json::array())) pcrs.push_back(p.get<uint32_t>());
                o << " (systemd-cryptenroll), PCRs " << pcr_list(pcrs)
                  << "; not opened by trustme: use a recovery key or enroll a trustme-tpm2 token";
            } catch (const nlohmann::json::exception&) {
                o << " (systemd-cryptenroll, unreadable)";
            }
        }
        o << "\n";
    }
    std::cout << o.str();
    return 0;
}

}  // namespace

int volume_main(int argc, char** argv) {
    std::string cmd = argc > 1 ? argv[1] : "";
    std::string prefix = "trustme-runtime volume" + (cmd.empty() ? "" : " " + cmd);
    try {
        for (int i = 1; i < argc; ++i)
            if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
                std::cout << kUsage;
                return 0;
            }
        Args a = parse_args(argc, argv);
        if (a.cmd == "create") return cmd_create(a);
        if (a.cmd == "enroll") return cmd_enroll(a);
        if (a.cmd == "inspect") return cmd_inspect(a);
        throw UsageError("unknown command \"" + a.cmd + "\" (create, enroll, inspect)");
    } catch (const UsageError& e) {
        std::cerr << prefix << ": " << e.what() << " (see --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << prefix << ": " << e.what() << "\n";
        return 1;
    }
}

}  // namespace trustme::volume
