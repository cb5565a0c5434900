// The tool module (lib/trustme/libtrustme-attest-tool.so): every trustme-attest command but `hook measure`
// -- attestation key, quote, verify, challenge/response service, log -- and the computed manifest digest
// for the hook under runc/crun. trustme-attest (attest/main.cpp) loads it only for those, so the hook on
// trustme-runtime's start path never loads libcrypto, libtss2-esys or the signing code.
#include <fcntl.h>
#include <signal.h>
#include <openssl/rand.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
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
#include "attest/tpm.hpp"
#include "attest/verify.hpp"
#include "runtime/base/error.hpp"
#include "runtime/base/fd.hpp"
#include "runtime/base/files.hpp"
#include "signing/policy.hpp"

using namespace trustme;
using namespace trustme::attest;
using namespace trustme::attest::cli;
using json = nlohmann::json;

namespace {

void write_out(const std::string& path, const std::string& data, int mode = 0644) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) fail_errno(errno, path);
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::unlink(path.c_str());
            fail_errno(e, path);
        }
        off += static_cast<size_t>(n);
    }
}

std::vector<uint8_t> nonce_arg(const std::string& hex) {
    auto n = tpm::from_hex(hex, "--nonce");
    if (n.size() < kMinNonce || n.size() > 64)
        fail("--nonce: must be " + std::to_string(kMinNonce) + "..64 bytes (" + std::to_string(kMinNonce * 2) +
             "..128 hex digits)");
    return n;
}

// Log and quote under the log's shared lock, so no measurement lands between reading one and the other.
QuoteDoc make_quote(const Settings& s, const std::vector<uint8_t>& nonce) {
    LogFile log(s.log, LogFile::Mode::Read);
    log.lock(false);
    QuoteDoc q;
    q.log = log.read();
    tpm::Tpm t(s.tcti);
    auto r = t.quote(nonce, {s.pcr});
    q.attest = std::move(r.attest);
    q.signature_der = std::move(r.signature_der);
    q.pcrs = std::move(r.pcr_values);
    return q;
}

json ak_info(const Settings& s) {
    tpm::Tpm t(s.tcti);
    auto ak = t.ak_public();
    return {{"ak_public", tpm::to_hex(ak.public_area)}, {"ek_cert", tpm::to_hex(t.ek_certificate())}};
}

json activate(const Settings& s, const json& req) {
    tpm::Credential c;
    c.credential_blob = tpm::from_hex(req.value("credential_blob", ""), "credential_blob");
    c.encrypted_secret = tpm::from_hex(req.value("encrypted_secret", ""), "encrypted_secret");
    tpm::Tpm t(s.tcti);
    auto secret = t.ak_activate_credential(c);
    return {{"secret", tpm::to_hex(secret.bytes)}};
}

json remote_call(const std::string& addr, const json& req) {
    UniqueFd fd = net::connect_to(addr);
    net::write_all(fd.get(), req.dump() + "\n", addr);
    json resp = parse_json(net::read_line(fd.get(), 64 << 20, addr), addr + ": response");
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
        json info = remote ? remote_call(*remote, {{"op", "ak"}}) : ak_info(s);
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
        json resp = remote ? remote_call(*remote, req) : activate(s, req);
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
    auto q = make_quote(s, nonce_arg(a.need("nonce")));
    std::cout << q.to_json().dump(2) << "\n";
    return 0;
}

int cmd_verify(const Args& a) {
    std::string ak_pem = read_file(a.need("ak"));
    std::string allow_path = a.need("allow");
    AllowList allow = AllowList::parse(read_file(allow_path), allow_path);
    std::vector<uint8_t> nonce;
    QuoteDoc q;
    if (auto remote = a.get("remote")) {
        if (a.positional.size() != 1) throw UsageError("verify --remote takes no quote file");
        // A fresh nonce for this challenge only: a recorded answer cannot be replayed later.
        nonce.resize(32);
        if (RAND_bytes(nonce.data(), 32) != 1) fail("RAND_bytes failed");
        q = QuoteDoc::from_json(remote_call(*remote, {{"op", "quote"}, {"nonce", tpm::to_hex(nonce)}}), *remote);
    } else {
        if (a.positional.size() != 2) throw UsageError("usage: verify --ak FILE --allow FILE --nonce HEX QUOTE.json");
        nonce = tpm::from_hex(a.need("nonce"), "--nonce");
        q = QuoteDoc::from_json(parse_json(read_file(a.positional[1]), a.positional[1]), a.positional[1]);
    }
    VerifyResult r = verify_quote(ak_pem, nonce, allow, q);
    std::string report = render(r);
    std::cout << report << std::flush;
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
    Settings s = settings(a);
    std::string addr = a.need("listen");
    UniqueFd lfd = net::listen_on(addr);
    std::string path = addr.rfind("unix:", 0) == 0 ? addr.substr(5) : (addr[0] == '/' ? addr : "");
    if (!path.empty() && path.size() < sizeof g_socket_path) {
        path.copy(g_socket_path, sizeof g_socket_path - 1);
        struct sigaction sa {};
        sa.sa_handler = on_stop_signal;
        sigaction(SIGTERM, &sa, nullptr);
        sigaction(SIGINT, &sa, nullptr);
    }
    std::cout << "listening on " << addr << std::endl;
    for (;;) {
        UniqueFd c(::accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            fail_errno(errno, addr + ": accept");
        }
        net::set_timeouts(c.get(), 30);
        json resp;
        try {
            json req = parse_json(net::read_line(c.get(), 1 << 20, "request"), "request");
            std::string op = req.is_object() ? req.value("op", "") : "";
            if (op == "quote") {
                std::vector<uint8_t> nonce = nonce_arg(req.value("nonce", ""));
                resp = make_quote(s, nonce).to_json();
            } else if (op == "ak") {
                resp = ak_info(s);
            } else if (op == "activate") {
                resp = activate(s, req);
            } else {
                resp = {{"error", "request: op must be quote, ak or activate"}};
            }
        } catch (const std::exception& e) {
            resp = {{"error", e.what()}};
        }
        try {
            net::write_all(c.get(), resp.dump() + "\n", "response");
        } catch (const std::exception&) {
            // The client went away; serve the next one.
        }
    }
}

int cmd_log(const Args& a) {
    if (a.positional.size() != 2 || a.positional[1] != "show") throw UsageError("usage: log show");
    Settings s = settings(a);
    LogFile log(s.log, LogFile::Mode::Read);
    if (!log.exists()) fail("event log " + s.log + ": does not exist");
    log.lock(false);
    json arr = json::array();
    for (const auto& e : log.read()) arr.push_back(e.to_json());
    std::cout << arr.dump(2) << "\n";
    return 0;
}

}  // namespace

// The module's interface (attest/tool.map). C only: the module and trustme-attest each link their own
// libstdc++, so no exception or C++ object crosses it.
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

// Hex SHA-256 (64 characters and a NUL into hex[65]) of the manifest built from the bundle; on failure
// returns 1 with the message in err.
extern "C" __attribute__((visibility("default"))) int trustme_attest_manifest_sha256(int bundle_fd, int root_fd,
                                                                                    int bundle_form, char* hex,
                                                                                    char* err, size_t err_len) {
    try {
        std::string h = computed_manifest_sha256(bundle_fd, root_fd, bundle_form != 0);
        h.copy(hex, 64);
        hex[64] = '\0';
        return 0;
    } catch (const std::exception& e) {
        std::snprintf(err, err_len, "%s", e.what());
        return 1;
    }
}
