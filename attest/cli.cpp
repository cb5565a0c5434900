#include "attest/cli.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <stdexcept>

#include "base/strings.hpp"
#include "base/version.hpp"
#include "signing/policy.hpp"

namespace trustme::attest::cli {

const char* const kUsage = R"(Usage: trustme-attest [OPTIONS] COMMAND [ARGS]

Measure container bundles into a TPM PCR and an event log, and prove them to a remote verifier.

Commands:
  hook measure                 OCI createRuntime hook: read the state on stdin, extend the PCR with the
                               bundle's measurement and append the event to the log
  ak create --out FILE         write the attestation key's public part (PEM); --public FILE also writes its
                               TPM2B_PUBLIC, --ek-cert FILE the TPM's EK certificate (DER) when it has one
  ak enroll --ek-ca FILE... --out FILE [--remote ADDR [TLS]]
                               check the EK certificate chain and that the AK lives in the same TPM
                               (credential activation), then write the trusted AK (PEM)
  quote --nonce HEX [--from N] [--out-dir DIR]
                               TPM2_Quote over the PCR with the AK, with this boot's event log from record N
                               (default 0), as JSON on stdout; --out-dir also writes DIR/quote.msg,
                               quote.sig, quote.pcrs and ak.pem for tpm2_checkquote (tpm2-tools)
  verify --ak FILE --allow FILE (--nonce HEX QUOTE.json | --remote ADDR [TLS]) [--pcr N]... [--bank sha256]
         [--state FILE]        check a quote with the trusted AK and print a verdict per event; the quote must
                               cover the PCRs named by --pcr (default: the policy's); --state keeps where
                               this host was checked up to, and only newer records are asked for
  serve --listen ADDR [--enroll] [--deadline SECONDS] [--max-connections N] [--max-per-client N]
        [--any-address | TLS --tls-allow ID...]
                               answer quote requests (ADDR: HOST:PORT on loopback, unix:/path or /path);
                               --enroll also answers ak and activate (enrollment); --any-address allows a
                               non-loopback HOST without TLS
  log show [--boot ID]         print this boot's (or boot ID's) event log as a CEL-JSON array

TLS (mutual, TLS 1.3; certificates from trustme-sign pki issue --purpose client|server):
  --tls-cert FILE  this side's certificate (PEM), optionally followed by its issuing CA
  --tls-key FILE   its private key (PEM)
  --tls-ca FILE    the CA certificate(s) the other side's certificate must chain to
  --tls-allow ID   an identity of the other side that is accepted, repeatable: cn:NAME (subject common
                   name) or spki:HEX (SHA-256 of its public key, DER SubjectPublicKeyInfo); serve
                   requires at least one and refuses every other verifier at the handshake

Options:
  --policy FILE   trust policy (default $TRUSTME_POLICY, else /etc/trustme/policy.json)
  --tcti TCTI     TPM to use (policy "tcti"; default device:/dev/tpmrm0), e.g. swtpm:path=/run/swtpm/sock
  --pcr N         PCR for measurements (policy "pcr"; default 11)
  --log FILE      event log (policy "event_log"; default /var/lib/trustme/measurements.cel.json); each
                  boot writes FILE.<boot id>
  -h, --help      show this help
  --version       show the version

Exit status: 0 success (verify: VERIFIED), 1 failure or refusal (one line on stderr), 2 usage error.
See trustme-attest(8) and trustme-eventlog(5).
)";

namespace {
const std::set<std::string> kValueOpts = {
    "policy",         "tcti",  "pcr",      "log",     "out",      "public",
    "ek-cert",        "ek-ca", "nonce",    "ak",      "allow",    "remote",
    "listen",         "from",  "state",    "bank",    "deadline", "max-connections",
    "max-per-client", "boot",  "tls-cert", "tls-key", "tls-ca",   "tls-allow",
    "out-dir"};
// Options without a value.
const std::set<std::string> kFlagOpts = {"enroll", "any-address"};
}  // namespace

std::optional<std::string> Args::get(const std::string& k) const {
    auto it = opts.find(k);
    if (it == opts.end()) return std::nullopt;
    return it->second.back();
}

std::string Args::need(const std::string& k) const {
    auto v = get(k);
    if (!v) throw UsageError("missing --" + k);
    return *v;
}

Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string s = argv[i];
        if (s == "-h" || s == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        }
        if (s == "--version") {
            std::printf("trustme-attest %s\n", kVersion);
            std::exit(0);
        }
        if (s.rfind("--", 0) == 0) {
            std::string k = s.substr(2), v;
            auto eq = k.find('=');
            if (eq != std::string::npos) {
                v = k.substr(eq + 1);
                k = k.substr(0, eq);
            } else if (kFlagOpts.count(k)) {
                a.opts[k].push_back("1");
                continue;
            } else {
                if (!kValueOpts.count(k)) throw UsageError("unknown option --" + k);
                if (i + 1 >= argc) throw UsageError("--" + k + " needs a value");
                v = argv[++i];
            }
            if (!kValueOpts.count(k)) throw UsageError("unknown option --" + k);
            a.opts[k].push_back(v);
        } else {
            a.positional.push_back(s);
        }
    }
    return a;
}

bool Args::flag(const std::string& k) const { return opts.count(k) > 0; }

uint64_t Args::number(const std::string& k, uint64_t dflt, uint64_t max) const {
    auto v = get(k);
    if (!v) return dflt;
    auto n = parse_decimal<uint64_t>(*v);
    if (!n || *n > max) throw UsageError("--" + k + " " + *v + ": not a number 0.." + std::to_string(max));
    return *n;
}

Settings settings(const Args& a) {
    signing::policy::Policy p = signing::policy::load(a.get("policy").value_or(""));
    Settings s{p.tcti, p.pcr, p.event_log};
    if (auto v = a.get("tcti")) s.tcti = *v;
    if (auto v = a.get("log")) s.log = *v;
    if (auto v = a.get("pcr")) {
        auto n = parse_decimal<uint32_t>(*v);
        if (!n || *n > 23) throw UsageError("--pcr " + *v + ": not a PCR number 0..23");
        s.pcr = *n;
    }
    return s;
}

std::string read_stdin(size_t max) {
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(0, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("stdin");
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > max) fail("stdin: more than " + std::to_string(max) + " bytes");
    }
    return out;
}

nlohmann::json parse_json(const std::string& text, const std::string& name) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail(name + ": not JSON: " + e.what());
    }
}

int report(const std::exception& e) {
    if (dynamic_cast<const UsageError*>(&e)) {
        std::fprintf(stderr, "trustme-attest: %s (see trustme-attest --help)\n", e.what());
        return 2;
    }
    std::fprintf(stderr, "trustme-attest: %s\n", e.what());
    return 1;
}

}  // namespace trustme::attest::cli
