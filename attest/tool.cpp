// The tool module (lib/trustme/libtrustme-attest-tool.so): every trustme-attest command but `hook measure`
// -- attestation key, quote, verify, challenge/response service, log -- and the computed manifest digest
// for the hook under runc/crun. trustme-attest (attest/main.cpp) loads it only for those, so the hook on
// trustme-runtime's start path never loads libcrypto, libtss2-esys or the signing code.
#include <fcntl.h>
#include <signal.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attest/cli.hpp"
#include "attest/credential.hpp"
#include "attest/eventlog.hpp"
#include "attest/measure.hpp"
#include "attest/net.hpp"
#include "attest/quote.hpp"
#include "attest/serve.hpp"
#include "attest/tool_module.h"
#include "attest/tls.hpp"
#include "tpm/tpm.hpp"
#include "attest/verify.hpp"
#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "signing/policy.hpp"

using namespace trustme;
using namespace trustme::attest;
using namespace trustme::attest::cli;
using json = nlohmann::json;

namespace {

void write_out(const std::string& path, const std::string& data, int mode = 0644) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) fail_errno(path);
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::unlink(path.c_str());
            fail(e, path);
        }
        off += static_cast<size_t>(n);
    }
}

// The TLS options (--tls-cert, --tls-key, --tls-ca, --tls-allow), or none when not one is given.
std::unique_ptr<tls::Context> tls_context(const Args& a, bool server) {
    tls::Options o;
    o.cert = a.get("tls-cert").value_or("");
    o.key = a.get("tls-key").value_or("");
    o.ca = a.get("tls-ca").value_or("");
    if (a.opts.count("tls-allow")) o.allow = a.opts.at("tls-allow");
    if (!o.enabled()) return nullptr;
    return std::make_unique<tls::Context>(o, server);
}

json remote_call(const std::string& addr, const tls::Context* tls, const json& req) {
    net::Channel ch(addr, tls);
    ch.write_all(req.dump() + "\n");
    json resp = parse_json(net::read_line(ch, 1 << 20, addr), addr + ": response");
    if (!resp.is_object()) fail(addr + ": response: not a JSON object");
    if (resp.contains("error")) fail(addr + ": " + resp["error"].get<std::string>());
    return resp;
}

int cmd_ak(const Args& a) {
    if (a.positional.size() != 2) throw UsageError("usage: ak create|enroll ...");
    Settings s = settings(a);
    if (a.positional[1] == "create") {
        std::string out = a.need("out");
        tpm::Tpm t(s.tcti);
        auto ak = t.ak_public();
        if (auto p = a.get("ek-cert")) {
            auto cert = t.ek_certificate();
            if (cert.empty()) fail("--ek-cert: the TPM has no EK certificate (NV index 0x01c00002)");
            write_out(*p, std::string(cert.begin(), cert.end()));
        }
        if (auto p = a.get("public")) write_out(*p, std::string(ak.public_area.begin(), ak.public_area.end()));
        write_out(out, ak.pem);
        std::cout << "AK name " << tpm::to_hex(ak.name) << "\n";
        return 0;
    }
    if (a.positional[1] == "enroll") {
        std::string out = a.need("out");
        auto cas = a.opts.count("ek-ca") ? a.opts.at("ek-ca") : std::vector<std::string>{};
        if (cas.empty()) throw UsageError("missing --ek-ca");
        auto remote = a.get("remote");
        auto tls = tls_context(a, false);
        if (tls && !remote) throw UsageError("--tls-* options need --remote");
        json info = remote ? remote_call(*remote, tls.get(), {{"op", "ak"}}) : ak_info(s);
        auto ak = parse_ak_public(tpm::from_hex(info.value("ak_public", ""), "ak_public"));
        auto ek_cert = tpm::from_hex(info.value("ek_cert", ""), "ek_cert");
        if (ek_cert.empty()) fail("the TPM has no EK certificate: the AK cannot be bound to an EK");
        verify_ek_certificate(ek_cert, cas);
        std::vector<uint8_t> secret(32);
        if (RAND_bytes(secret.data(), 32) != 1) fail("RAND_bytes failed");
        auto cred = make_credential(ek_cert, ak.name, secret);
        json req = {{"op", "activate"},
                    {"credential_blob", tpm::to_hex(cred.credential_blob)},
                    {"encrypted_secret", tpm::to_hex(cred.encrypted_secret)}};
        json resp = remote ? remote_call(*remote, tls.get(), req) : activate(s, req);
        if (tpm::from_hex(resp.value("secret", ""), "secret") != secret)
            fail("credential activation failed: the AK is not in the TPM that owns this EK");
        write_out(out, ak.pem);
        std::cout << "AK name " << tpm::to_hex(ak.name) << " bound to the certified EK\n";
        return 0;
    }
    throw UsageError("usage: ak create|enroll ...");
}

int cmd_quote(const Args& a) {
    Settings s = settings(a);
    KeptAk ak(s.log);
    QuoteRequest req{s.tcti,  s.log, parse_nonce(a.need("nonce"), "--nonce"), a.number("from", 0, UINT64_MAX),
                     {s.pcr}, &ak};
    // The directory first: a quote is not taken for files that cannot be written.
    UniqueFd dir;
    if (auto d = a.get("out-dir")) {
        if (::mkdir(d->c_str(), 0755) != 0 && errno != EEXIST) fail_errno("--out-dir " + *d);
        dir.reset(::open(d->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir) fail_errno("--out-dir " + *d);
    }
    QuoteReply r = take_quote(req);
    if (dir) write_tpm2_tools_files(r, dir.get());
    QuoteDoc doc;
    static_cast<QuoteHeader&>(doc) = r.header;
    doc.log = reply_records(r);
    std::cout << doc.to_json().dump(2) << "\n";
    return 0;
}

std::string sha256_hex(const std::string& data) {
    uint8_t d[32];
    SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(), d);
    return tpm::to_hex(d, sizeof d);
}

std::vector<uint8_t> fresh_nonce() {
    // A fresh nonce for this challenge only: a recorded answer cannot be replayed later.
    std::vector<uint8_t> nonce(32);
    if (RAND_bytes(nonce.data(), 32) != 1) fail("RAND_bytes failed");
    return nonce;
}

// What one challenge asks of a remote attester.
struct Challenge {
    const std::string& addr;
    const tls::Context* tls;  // null: plain TCP
    const std::vector<uint8_t>& nonce;
    uint64_t from;  // the first record wanted
    const Expectation& expect;
};

// One challenge: the header, then its records streamed into the verification. `restart` sees the header
// first; true abandons the challenge (an empty result).
VerifyResult challenge(const Challenge& c, Verification& v, HostState* next,
                       const std::function<bool(const QuoteHeader&)>& restart) {
    const std::string& addr = c.addr;
    net::Channel ch(addr, c.tls);
    json req = {{"op", "quote"}, {"nonce", tpm::to_hex(c.nonce)}, {"from", c.from}, {"pcrs", c.expect.pcrs}};
    ch.write_all(req.dump() + "\n");
    net::Reader in(ch, addr);
    std::string line;
    if (!in.line(&line, 1 << 20)) fail(addr + ": connection closed without a response");
    json head = parse_json(line, addr + ": response");
    if (head.is_object() && head.contains("error") && head["error"].is_string())
        fail(addr + ": " + head["error"].get<std::string>());
    QuoteHeader h = QuoteHeader::from_json(head, addr + ": response");
    if (!head.contains("bytes") || !head["bytes"].is_number_unsigned()) fail(addr + ": response: bytes: missing");
    if (restart(h)) return {};
    uint64_t left = head["bytes"].get<uint64_t>();
    if (!v.begin(h)) return v.finish(next);
    // Records one at a time: memory per record, time linear in the reply.
    size_t n = 0;
    while (left > 0) {
        if (!in.line(&line, 16 << 20)) fail(addr + ": response ended after " + std::to_string(n) + " records");
        if (line.size() + 1 > left) fail(addr + ": response: records longer than announced");
        left -= line.size() + 1;
        std::string where = addr + ": record " + std::to_string(n++);
        if (line.empty() || line[0] != '\x1e') fail(where + ": expected a record separator (0x1E, RFC 7464)");
        json j;
        try {
            j = json::parse(line.begin() + 1, line.end());
        } catch (const json::exception& e) {
            fail(where + ": not JSON: " + e.what());
        }
        if (!v.add(Event::from_json(j, where))) break;
    }
    return v.finish(next);
}

int cmd_verify(const Args& a) {
    std::string ak_pem = read_file(a.need("ak"));
    std::string allow_path = a.need("allow");
    std::string allow_text = read_file(allow_path);
    AllowList allow = AllowList::parse(allow_text, allow_path);
    if (a.get("bank").value_or("sha256") != "sha256") throw UsageError("--bank: only sha256 is supported");
    // What must be quoted is the verifier's choice: --pcr (repeatable), else the policy's PCR.
    Expectation expect;
    if (a.opts.count("pcr")) {
        expect.pcrs.clear();
        for (const auto& v : a.opts.at("pcr")) {
            Args one;
            one.opts["pcr"] = {v};
            expect.pcrs.push_back(static_cast<uint32_t>(one.number("pcr", 0, 23)));
        }
        std::sort(expect.pcrs.begin(), expect.pcrs.end());
        expect.pcrs.erase(std::unique(expect.pcrs.begin(), expect.pcrs.end()), expect.pcrs.end());
    } else {
        expect.pcrs = {settings(a).pcr};
    }

    // The state kept for this host, when it was made with the same AK, allow-list and PCRs.
    auto state_path = a.get("state");
    std::optional<HostState> state;
    if (state_path && path_exists(*state_path)) {
        HostState h = HostState::from_json(parse_json(read_file(*state_path), *state_path), *state_path);
        bool same_pcrs = h.pcrs.size() == expect.pcrs.size();
        for (uint32_t p : expect.pcrs) same_pcrs = same_pcrs && h.pcrs.count(p);
        if (h.ak_sha256 == sha256_hex(ak_pem) && h.allow_sha256 == sha256_hex(allow_text) && same_pcrs) state = h;
    }

    VerifyResult r;
    HostState next;
    if (auto remote = a.get("remote")) {
        if (a.positional.size() != 1) throw UsageError("verify --remote takes no quote file");
        auto tls = tls_context(a, false);
        for (int attempt = 0; attempt < 2; ++attempt) {
            uint64_t from = state ? state->next : 0;
            auto nonce = fresh_nonce();
            Verification v(ak_pem, nonce, allow, expect, state ? &*state : nullptr);
            bool restarted = false;
            r = challenge({*remote, tls.get(), nonce, from, expect}, v, &next, [&](const QuoteHeader& hd) {
                // Another boot or TPM epoch than the state's: the state is of no use, ask from the start.
                restarted = state && (hd.boot_id != state->boot_id || quote_epoch(hd.attest) != state->reset_count);
                return restarted;
            });
            if (!restarted) break;
            state.reset();
        }
    } else {
        if (a.positional.size() != 2) throw UsageError("usage: verify --ak FILE --allow FILE --nonce HEX QUOTE.json");
        if (tls_context(a, false)) throw UsageError("--tls-* options need --remote");
        auto nonce = tpm::from_hex(a.need("nonce"), "--nonce");
        QuoteDoc q = QuoteDoc::from_json(parse_json(read_file(a.positional[1]), a.positional[1]), a.positional[1]);
        const HostState* start = state && q.from != 0 ? &*state : nullptr;
        Verification v(ak_pem, nonce, allow, expect, start);
        if (v.begin(q))
            for (const auto& e : q.log)
                if (!v.add(e)) break;
        r = v.finish(&next);
    }
    std::cout << render(r) << std::flush;
    if (state_path && r.refused.empty()) {
        next.ak_sha256 = sha256_hex(ak_pem);
        next.allow_sha256 = sha256_hex(allow_text);
        write_out(*state_path + ".tmp", next.to_json().dump() + "\n", 0600);
        if (::rename((*state_path + ".tmp").c_str(), state_path->c_str()) != 0) fail_errno(*state_path);
    }
    if (!r.ok()) {
        std::cerr << "trustme-attest: verify: "
                  << (r.refused.empty() ? "a measured bundle is not on the allow-list" : r.refused) << "\n";
        return 1;
    }
    return 0;
}

// The unix socket path to remove when serve is stopped by a signal (unlink is async-signal-safe).
char g_socket_path[108];

extern "C" void on_stop_signal(int sig) {
    if (g_socket_path[0]) ::unlink(g_socket_path);
    ::_exit(128 + sig);
}

int cmd_serve(const Args& a) {
    ServeOptions o;
    o.settings = settings(a);
    o.listen = a.need("listen");
    o.enroll = a.flag("enroll");
    o.deadline_seconds = static_cast<int>(a.number("deadline", 30, 3600));
    o.max_connections = a.number("max-connections", 256, 65536);
    o.max_per_client = a.number("max-per-client", 64, 65536);
    if (o.deadline_seconds == 0 || o.max_connections == 0 || o.max_per_client == 0)
        throw UsageError("--deadline, --max-connections and --max-per-client must be at least 1");
    auto tls = tls_context(a, true);
    o.tls = tls.get();
    // Without TLS, anyone who reaches the port can ask: loopback (or a unix socket, guarded by its file
    // mode) unless the operator says otherwise. With TLS, only the verifiers on the allow-list get past
    // the handshake.
    if (!tls && !a.flag("any-address") && !net::is_local(o.listen))
        fail("--listen " + o.listen +
             ": not a loopback address (serve it with --tls-cert/--tls-key/--tls-ca/"
             "--tls-allow, or to anyone who reaches it with --any-address)");
    std::string path = o.listen.rfind("unix:", 0) == 0 ? o.listen.substr(5) : (o.listen[0] == '/' ? o.listen : "");
    if (!path.empty() && path.size() < sizeof g_socket_path) {
        path.copy(g_socket_path, sizeof g_socket_path - 1);
        struct sigaction sa {};
        sa.sa_handler = on_stop_signal;
        sigaction(SIGTERM, &sa, nullptr);
        sigaction(SIGINT, &sa, nullptr);
    }
    serve(o);
}

int cmd_log(const Args& a) {
    if (a.positional.size() != 2 || a.positional[1] != "show") throw UsageError("usage: log show");
    Settings s = settings(a);
    std::string path = boot_log_path(s.log, a.get("boot").value_or(boot_id()));
    LogFile log(path, LogFile::Mode::Read);
    if (!log.exists()) fail("event log " + path + ": does not exist");
    log.lock(false);
    json arr = json::array();
    for (const auto& e : log.read()) arr.push_back(e.to_json());
    std::cout << arr.dump(2) << "\n";
    return 0;
}

}  // namespace

// The module's interface (attest/tool_module.h, exported by attest/tool.map).
extern "C" const int trustme_attest_tool_abi = TRUSTME_ATTEST_TOOL_ABI;

extern "C" __attribute__((visibility("default"))) int trustme_attest_tool_main(int argc, char** argv) {
    try {
        Args a = parse_args(argc, argv);
        if (a.positional.empty()) throw UsageError("no command given");
        const std::string& cmd = a.positional[0];
        if (cmd == "ak") return cmd_ak(a);
        if (cmd == "quote") return cmd_quote(a);
        if (cmd == "verify") return cmd_verify(a);
        if (cmd == "serve") return cmd_serve(a);
        if (cmd == "log") return cmd_log(a);
        throw UsageError("unknown command " + cmd);
    } catch (const std::exception& e) {
        std::cout.flush();
        return report(e);
    }
}

extern "C" __attribute__((visibility("default"))) int trustme_attest_manifest_sha256(int bundle_fd, int root_fd,
                                                                                     int bundle_form, char* hex,
                                                                                     trustme_attest_error* err) {
    try {
        std::string h = computed_manifest_sha256(bundle_fd, root_fd, bundle_form != 0);
        h.copy(hex, 64);
        hex[64] = '\0';
        return 0;
    } catch (const std::exception& e) {
        err->code = error_code(e);
        std::snprintf(err->text, sizeof err->text, "%s", e.what());
        return 1;
    }
}
