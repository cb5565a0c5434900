// trustme-attest end to end: the built binary against a private swtpm, small bundles (busybox ones from
// make-rootfs.sh where a runtime runs them),
// and the hook under runc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <map>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>

#include "attest/credential.hpp"
#include "attest/eventlog.hpp"
#include "attest/measure.hpp"
#include "attest/quote.hpp"
#include "tpm/tpm.hpp"
#include "attest/verify.hpp"
#include "tests/attest/swtpm_fixture.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using trustme::testing::Swtpm;

namespace {

const std::string kAttest = TRUSTME_ATTEST_BIN;
const std::string kSource = TRUSTME_SOURCE_DIR;

std::string slurp(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
void spit(const std::string& p, const std::string& s) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << s;
}

struct TempDir {
    std::string path;
    TempDir() {
        char t[] = "/tmp/trustme-attest-test-XXXXXX";
        if (!mkdtemp(t)) throw std::runtime_error("mkdtemp");
        path = t;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

struct Result {
    int rc = -1;
    std::string out, err;
};

// Start a program with stdin from a file; returns its PID. Output goes to files in `dir`.
pid_t spawn(const std::vector<std::string>& argv, const std::string& dir, const std::string& tag,
            const std::string& input) {
    spit(dir + "/" + tag + ".in", input);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, (dir + "/" + tag + ".in").c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, (dir + "/" + tag + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, (dir + "/" + tag + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, a[0], &fa, nullptr, a.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("spawn " + argv[0]);
    return pid;
}

// Wait for `pid`, at most 120 s, then kill it (by PID).
int wait_bounded(pid_t pid) {
    int status = 0;
    for (int i = 0; i < 12000; ++i) {
        if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return 255;
}

Result run(const std::vector<std::string>& argv, const std::string& dir, const std::string& input = "") {
    static int n = 0;
    std::string tag = "run" + std::to_string(n++);
    Result r;
    r.rc = wait_bounded(spawn(argv, dir, tag, input));
    r.out = slurp(dir + "/" + tag + ".out");
    r.err = slurp(dir + "/" + tag + ".err");
    return r;
}

std::string hex_nonce(int bytes = 32, char fill = 0) {
    static int counter = 1;
    std::string s;
    for (int i = 0; i < bytes; ++i) {
        char b[3];
        snprintf(b, sizeof b, "%02x", fill ? fill : (counter * 37 + i * 11) & 0xff);
        s += b;
    }
    ++counter;
    return s;
}

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// One attesting host: a swtpm, a policy naming it, an event log, bundles.
class AttestHost : public ::testing::Test {
protected:
    void SetUp() override {
        policy_ = dir_.path + "/policy.json";
        log_ = dir_.path + "/var/measurements.cel.json";
        spit(policy_, json{{"signature", "off"}, {"tcti", tpm_.tcti()}, {"pcr", 11}, {"event_log", log_}}.dump());
        ASSERT_EQ(run({kAttest, "--policy", policy_, "ak", "create", "--out", ak()}, dir_.path).rc, 0);
    }

    std::string ak() const { return dir_.path + "/ak.pub.pem"; }
    // This boot's log file.
    std::string boot_log() const { return trustme::attest::boot_log_path(log_, trustme::attest::boot_id()); }
    std::vector<std::string> cmd(std::initializer_list<std::string> rest) const {
        std::vector<std::string> v{kAttest, "--policy", policy_};
        v.insert(v.end(), rest);
        return v;
    }

    // A bundle whose rootfs is one file (the hook measures it, nothing runs it); `marker` makes its
    // manifest distinct.
    std::string make_bundle(const std::string& name, const std::string& marker) {
        std::string b = dir_.path + "/" + name;
        fs::create_directories(b + "/rootfs/etc");
        spit(b + "/rootfs/etc/marker", marker);
        spit(b + "/config.json", json{{"ociVersion", "1.0.2"},
                                      {"root", {{"path", "rootfs"}}},
                                      {"process", {{"args", {"/bin/true"}}, {"cwd", "/"}}}}
                                     .dump());
        return b;
    }

    std::string state(const std::string& id, const std::string& bundle, json ann = json::object()) {
        return json{{"ociVersion", "1.0.2"}, {"id", id},          {"status", "creating"}, {"pid", 1},
                    {"bundle", bundle},      {"annotations", ann}}
            .dump();
    }

    Result measure(const std::string& id, const std::string& bundle) {
        return run(cmd({"hook", "measure"}), dir_.path, state(id, bundle));
    }

    std::vector<trustme::attest::Event> log_events() {
        trustme::attest::LogFile f(boot_log(), trustme::attest::LogFile::Mode::Read);
        return f.read();
    }

    std::string allow_all_measured() {
        json m = json::array();
        for (auto& e : log_events()) m.push_back(e.content["manifest_sha256"]);
        std::string p = dir_.path + "/allow.json";
        spit(p, json{{"manifests", m}}.dump());
        return p;
    }

    // quote.json for `nonce`
    std::string quote(const std::string& nonce) {
        auto r = run(cmd({"quote", "--nonce", nonce}), dir_.path);
        EXPECT_EQ(r.rc, 0) << r.err;
        std::string p = dir_.path + "/quote-" + nonce.substr(0, 8) + ".json";
        spit(p, r.out);
        return p;
    }

    Result verify(const std::string& quote_file, const std::string& nonce, const std::string& allow) {
        return run(
            {kAttest, "--policy", policy_, "verify", "--ak", ak(), "--allow", allow, "--nonce", nonce, quote_file},
            dir_.path);
    }

    // `serve` on a unix socket in the test directory, started and answering; stopped by PID (stop_server).
    pid_t start_server(const std::string& sock, std::vector<std::string> extra = {}) {
        std::vector<std::string> argv = cmd({"serve", "--listen", "unix:" + sock});
        argv.insert(argv.end(), extra.begin(), extra.end());
        static int n = 0;
        std::string tag = "serve" + std::to_string(n++);
        pid_t pid = spawn(argv, dir_.path, tag, "");
        for (int i = 0; i < 500; ++i) {
            if (slurp(dir_.path + "/" + tag + ".out").find("listening") != std::string::npos) return pid;
            int status = 0;
            if (waitpid(pid, &status, WNOHANG) == pid) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        ADD_FAILURE() << "serve did not come up: " << slurp(dir_.path + "/" + tag + ".err");
        return -1;
    }
    void stop_server(pid_t pid) {
        if (pid <= 0) return;
        kill(pid, SIGTERM);
        wait_bounded(pid);
    }
    Result verify_remote(const std::string& addr, const std::string& allow, std::vector<std::string> extra = {}) {
        std::vector<std::string> argv{kAttest, "--policy", policy_, "verify",   "--ak",
                                      ak(),    "--allow",  allow,   "--remote", addr};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return run(argv, dir_.path);
    }

    // Modify quote.json's event log and write it back.
    std::string edit_quote(const std::string& q, const std::function<void(json&)>& f) {
        json j = json::parse(slurp(q));
        f(j["event_log"]);
        std::string p = q + ".edited";
        spit(p, j.dump());
        return p;
    }

    Swtpm tpm_;
    TempDir dir_;
    std::string policy_, log_;
};

}  // namespace

TEST_F(AttestHost, HonestRunVerifies) {
    auto b1 = make_bundle("b1", "one"), b2 = make_bundle("b2", "two");
    ASSERT_EQ(measure("c1", b1).rc, 0);
    auto r2 = measure("c2", b2);
    ASSERT_EQ(r2.rc, 0) << r2.err;
    EXPECT_TRUE(r2.err.empty()) << r2.err;
    auto ev = log_events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].content["container_id"], "c1");
    EXPECT_EQ(ev[1].content["bundle"], b2);
    EXPECT_EQ(ev[1].recnum, 1u);
    EXPECT_NE(ev[0].content["manifest_sha256"], ev[1].content["manifest_sha256"]);
    EXPECT_EQ(ev[0].content["source"], "computed");
    // The PCR is the replay of the log. (Scoped: an open Tpm holds swtpm's only connection.)
    {
        trustme::tpm::Tpm t(tpm_.tcti());
        EXPECT_EQ(trustme::attest::replay(ev, 11, t.reset_count()), t.pcr_read(11));
    }

    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow_all_measured());
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("event 0 allowed: container=c1"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("event 1 allowed: container=c2"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("VERIFIED"), std::string::npos);
    // log show: a CEL-JSON array
    auto show = run(cmd({"log", "show"}), dir_.path);
    EXPECT_EQ(json::parse(show.out).size(), 2u);
}

TEST_F(AttestHost, WrongNonceIsRefused) {
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    std::string n = hex_nonce();
    auto v = verify(quote(n), hex_nonce(), allow_all_measured());
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("nonce does not match"), std::string::npos) << v.err;
    EXPECT_EQ(count_lines(v.err), 1);
}

TEST_F(AttestHost, ReplayedOldQuoteIsRefused) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("c1", b1).rc, 0);
    std::string old_nonce = hex_nonce();
    std::string old_quote = quote(old_nonce);
    // Later, a bundle that is not allowed runs; the host replays the old, clean quote to a new challenge.
    ASSERT_EQ(measure("evil", make_bundle("b2", "two")).rc, 0);
    std::string allow = allow_all_measured();
    auto v = verify(old_quote, hex_nonce(), allow);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("stale or replayed"), std::string::npos) << v.err;
}

TEST_F(AttestHost, ShortNonceIsRefused) {
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    auto q = run(cmd({"quote", "--nonce", hex_nonce(16)}), dir_.path);
    EXPECT_EQ(q.rc, 1);
    EXPECT_NE(q.err.find("--nonce"), std::string::npos) << q.err;
    // A verifier refuses short nonces too, whatever the quote says.
    std::string n = hex_nonce(16);
    trustme::tpm::Tpm t(tpm_.tcti());
    auto raw = t.quote(trustme::tpm::from_hex(n, "nonce"), {11});
    trustme::attest::QuoteDoc doc;
    doc.attest = raw.attest;
    doc.signature_der = raw.signature_der;
    doc.pcrs = raw.pcr_values;
    doc.log = log_events();
    auto r = trustme::attest::verify_quote(slurp(ak()), trustme::tpm::from_hex(n, "nonce"),
                                           trustme::attest::AllowList{}, doc);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.refused.find("at least 32 bytes"), std::string::npos) << r.refused;
}

TEST_F(AttestHost, TamperedLogIsRefused) {
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(measure("c" + std::to_string(i), make_bundle("b" + std::to_string(i), std::to_string(i))).rc, 0);
    std::string n = hex_nonce();
    std::string q = quote(n), allow = allow_all_measured();
    ASSERT_EQ(verify(q, n, allow).rc, 0);

    auto removed_middle = edit_quote(q, [](json& l) { l.erase(l.begin() + 1); });
    auto v = verify(removed_middle, n, allow);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("removed or reordered"), std::string::npos) << v.err;

    // Removing the last record and renumbering nothing: the replay no longer reaches the PCR.
    auto removed_last = edit_quote(q, [](json& l) { l.erase(l.end() - 1); });
    v = verify(removed_last, n, allow);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("PCR 11: replaying the event log"), std::string::npos) << v.err;

    // Reordered, with recnums rewritten to look consecutive: the replay differs.
    auto reordered = edit_quote(q, [](json& l) {
        std::swap(l[0], l[1]);
        l[0]["recnum"] = 0;
        l[1]["recnum"] = 1;
    });
    v = verify(reordered, n, allow);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("PCR 11: replaying"), std::string::npos) << v.err;

    auto edited = edit_quote(q, [](json& l) { l[1]["content"]["container_id"] = "innocent"; });
    v = verify(edited, n, allow);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("record 1: digest does not match its content"), std::string::npos) << v.err;

    // Edited content with a recomputed digest: consistent record, but not what the PCR holds.
    auto edited2 = edit_quote(q, [](json& l) {
        l[1]["content"]["manifest_sha256"] = std::string(64, 'a');
        auto d = trustme::attest::content_digest(l[1]["content"]);
        l[1]["digests"][0]["digest"] = trustme::tpm::to_hex(d);
    });
    v = verify(edited2, n, allow);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("PCR 11: replaying"), std::string::npos) << v.err;
}

TEST_F(AttestHost, QuoteSignedByAnotherKeyIsRefused) {
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    std::string allow = allow_all_measured();
    // Another TPM with the same log: a perfect quote, but not by the AK the verifier trusts.
    Swtpm other;
    std::string other_policy = dir_.path + "/other-policy.json";
    spit(other_policy, json{{"signature", "off"}, {"tcti", other.tcti()}, {"event_log", log_}}.dump());
    std::string n = hex_nonce();
    auto r = run({kAttest, "--policy", other_policy, "quote", "--nonce", n}, dir_.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    spit(dir_.path + "/other.json", r.out);
    auto v = verify(dir_.path + "/other.json", n, allow);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("does not verify with the trusted AK"), std::string::npos) << v.err;

    // And a quote whose signed bytes were altered.
    std::string q = quote(n);
    json j = json::parse(slurp(q));
    std::string att = j["attest"];
    att[att.size() - 1] = att[att.size() - 1] == '0' ? '1' : '0';
    j["attest"] = att;
    spit(q, j.dump());
    v = verify(q, n, allow);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("does not verify with the trusted AK"), std::string::npos) << v.err;
}

TEST_F(AttestHost, BundleNotOnTheAllowListIsDenied) {
    ASSERT_EQ(measure("good", make_bundle("b1", "one")).rc, 0);
    std::string allow = allow_all_measured();
    ASSERT_EQ(measure("bad", make_bundle("b2", "two")).rc, 0);
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.out.find("event 0 allowed: container=good"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("event 1 DENIED: container=bad"), std::string::npos) << v.out;
    EXPECT_NE(v.err.find("not on the allow-list"), std::string::npos) << v.err;
}

TEST_F(AttestHost, PcrExtendedOutOfBandIsRefused) {
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    {
        trustme::tpm::Tpm t(tpm_.tcti());
        t.pcr_extend(11, std::vector<uint8_t>(32, 0xee));
    }
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow_all_measured());
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("extended out of band"), std::string::npos) << v.err;
}

TEST_F(AttestHost, CrashBetweenAppendAndExtendIsPendingThenRecovered) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("c1", b1).rc, 0);
    // What a hook killed after its append and before its extend leaves behind: a durable record the PCR lacks.
    {
        trustme::tpm::Tpm t(tpm_.tcti());
        trustme::attest::LogFile f(boot_log(), trustme::attest::LogFile::Mode::Append);
        f.lock(true);
        auto ev = f.read();
        trustme::attest::Event e;
        e.recnum = ev.back().recnum + 1;
        e.pcr = 11;
        e.content = ev.back().content;
        e.content["container_id"] = "crashed";
        e.digest = trustme::attest::content_digest(e.content);
        f.append(e);
    }
    std::string allow = allow_all_measured();
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("event 1 pending: container=crashed"), std::string::npos) << v.out;

    // The next hook completes the pending record before measuring its own.
    ASSERT_EQ(measure("c3", b1).rc, 0);
    auto ev = log_events();
    ASSERT_EQ(ev.size(), 3u);
    {
        trustme::tpm::Tpm t(tpm_.tcti());
        EXPECT_EQ(trustme::attest::replay(ev, 11, t.reset_count()), t.pcr_read(11));
    }
    n = hex_nonce();
    v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_EQ(v.out.find("pending"), std::string::npos) << v.out;
}

TEST_F(AttestHost, TornRecordIsDroppedByTheNextWriter) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("c1", b1).rc, 0);
    {
        std::ofstream f(boot_log(), std::ios::app | std::ios::binary);
        f << "\x1e{\"recnum\":1,\"pcr\":11,\"dig";  // a crash in the middle of write(2)
    }
    ASSERT_EQ(measure("c2", b1).rc, 0);
    auto ev = log_events();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[1].content["container_id"], "c2");
    std::string n = hex_nonce();
    EXPECT_EQ(verify(quote(n), n, allow_all_measured()).rc, 0);
}

TEST_F(AttestHost, ConcurrentHooksKeepLogAndPcrConsistent) {
    auto b1 = make_bundle("b1", "one");
    std::vector<pid_t> pids;
    for (int i = 0; i < 8; ++i)
        pids.push_back(
            spawn(cmd({"hook", "measure"}), dir_.path, "conc" + std::to_string(i), state("c" + std::to_string(i), b1)));
    for (size_t i = 0; i < pids.size(); ++i)
        EXPECT_EQ(wait_bounded(pids[i]), 0) << slurp(dir_.path + "/conc" + std::to_string(i) + ".err");
    auto ev = log_events();
    ASSERT_EQ(ev.size(), 8u);
    for (size_t i = 0; i < ev.size(); ++i) EXPECT_EQ(ev[i].recnum, i);
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow_all_measured());
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
}

// One TPM connection per hook run (tpm/tcti.hpp), seen from outside: strace counts the hook's
// connect(2) calls to swtpm's sockets, on the first run (the TPM probe's connection is the one measuring)
// and on later ones. tpm2-tss's own swtpm TCTI made 5 (one per command, one at init) plus the control channel.
TEST_F(AttestHost, HookUsesOneTpmConnection) {
    if (system("command -v strace >/dev/null 2>&1") != 0) GTEST_SKIP() << "strace not installed";
    auto b1 = make_bundle("b1", "one");
    auto connects = [&](const std::string& id, const std::string& path) {
        std::string trace = dir_.path + "/strace-" + id;
        std::vector<std::string> argv{"strace", "-f", "-qq", "-e", "trace=connect", "-o", trace};
        for (auto& a : cmd({"hook", "measure"})) argv.push_back(a);
        auto r = run(argv, dir_.path, state(id, b1));
        EXPECT_EQ(r.rc, 0) << r.err;
        std::istringstream in(slurp(trace));
        int n = 0;
        for (std::string line; std::getline(in, line);)
            if (line.find("sun_path=\"" + path + "\"") != std::string::npos) ++n;
        return n;
    };
    EXPECT_FALSE(fs::exists(boot_log()));
    EXPECT_EQ(connects("first", tpm_.socket()), 1);
    EXPECT_EQ(connects("second", tpm_.socket()), 1);
    EXPECT_EQ(connects("third", tpm_.socket() + ".ctrl"), 0);
    auto ev = log_events();
    ASSERT_EQ(ev.size(), 3u);
    trustme::tpm::Tpm t(tpm_.tcti());
    EXPECT_EQ(trustme::attest::replay(ev, 11, t.reset_count()), t.pcr_read(11));
}

// The hook binary starts without libcrypto or ESAPI: those come with the tool module, loaded for the
// other commands and for computing a manifest (runc, crun), never at start.
TEST(AttestBinary, StartsWithoutLibcryptoOrEsapi) {
    TempDir d;
    setenv("LD_TRACE_LOADED_OBJECTS", "1", 1);
    auto r = run({kAttest}, d.path);
    unsetenv("LD_TRACE_LOADED_OBJECTS");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("libtss2-sys"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("libcrypto"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("libtss2-esys"), std::string::npos) << r.out;
#ifndef __SANITIZE_ADDRESS__  // libasan itself needs libstdc++
    EXPECT_EQ(r.out.find("libstdc++"), std::string::npos) << r.out;
#endif
}

// `quote --out-dir`: the files tpm2-tools reads. The real tpm2_checkquote verifies them as they are, and
// refuses an altered message, another nonce and another PCR value.
TEST_F(AttestHost, QuoteFilesVerifyWithTpm2Checkquote) {
    if (system("command -v tpm2_checkquote >/dev/null 2>&1") != 0) GTEST_SKIP() << "tpm2-tools not installed";
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    std::string n = hex_nonce(), out = dir_.path + "/out";
    auto q = run(cmd({"quote", "--nonce", n, "--out-dir", out}), dir_.path);
    ASSERT_EQ(q.rc, 0) << q.err;
    // What it prints is what it printed before: verify accepts it.
    std::string qfile = dir_.path + "/quote.json";
    spit(qfile, q.out);
    EXPECT_EQ(verify(qfile, n, allow_all_measured()).rc, 0);
    json doc = json::parse(q.out);

    // The files are the printed quote: the attest bytes, the AK that `ak create` wrote, the PCR value.
    std::string msg = slurp(out + "/quote.msg");
    EXPECT_EQ(trustme::tpm::to_hex(reinterpret_cast<const uint8_t*>(msg.data()), msg.size()),
              doc["attest"].get<std::string>());
    EXPECT_EQ(slurp(out + "/ak.pem"), slurp(ak()));
    // tpm2-tools' serialized PCR file: TPML_PCR_SELECTION, a UINT32 count, the TPML_DIGESTs.
    std::string pcrs = slurp(out + "/quote.pcrs");
    ASSERT_EQ(pcrs.size(), sizeof(TPML_PCR_SELECTION) + 4 + sizeof(TPML_DIGEST));
    TPML_PCR_SELECTION sel;
    uint32_t lists = 0;
    TPML_DIGEST values;
    memcpy(&sel, pcrs.data(), sizeof sel);
    memcpy(&lists, pcrs.data() + sizeof sel, 4);
    memcpy(&values, pcrs.data() + sizeof sel + 4, sizeof values);
    EXPECT_EQ(sel.count, 1u);
    EXPECT_EQ(sel.pcrSelections[0].hash, TPM2_ALG_SHA256);
    EXPECT_EQ(sel.pcrSelections[0].pcrSelect[1], 1u << 3);  // PCR 11
    EXPECT_EQ(lists, 1u);
    ASSERT_EQ(values.count, 1u);
    EXPECT_EQ(trustme::tpm::to_hex(values.digests[0].buffer, values.digests[0].size),
              doc["pcrs"]["11"].get<std::string>());
    // Byte for byte what tpm2-tools itself writes for that PCR (tpm2_pcrread -F serialized, as tpm2_quote -o).
    auto pr =
        run({"tpm2_pcrread", "-T", tpm_.tcti(), "-o", dir_.path + "/pcrread.pcrs", "-F", "serialized", "sha256:11"},
            dir_.path);
    ASSERT_EQ(pr.rc, 0) << pr.err;
    EXPECT_EQ(slurp(dir_.path + "/pcrread.pcrs"), pcrs);

    auto check = [&](const std::string& msg_file, const std::string& nonce, const std::string& pcr_file,
                     const std::string& key) {
        return run({"tpm2_checkquote", "-u", key, "-m", msg_file, "-s", out + "/quote.sig", "-f", pcr_file, "-g",
                    "sha256", "-q", nonce},
                   dir_.path);
    };
    auto ok = check(out + "/quote.msg", n, out + "/quote.pcrs", out + "/ak.pem");
    EXPECT_EQ(ok.rc, 0) << ok.out << ok.err;
    // The verifier's own enrolled copy of the AK, as it would run it.
    EXPECT_EQ(check(out + "/quote.msg", n, out + "/quote.pcrs", ak()).rc, 0);
    // tpm2_checkquote prints the PCR values it hashed: the one trustme-attest reports.
    std::string upper = doc["pcrs"]["11"].get<std::string>();
    for (auto& c : upper) c = static_cast<char>(toupper(c));
    EXPECT_NE(ok.out.find("11: 0x" + upper), std::string::npos) << ok.out;

    // One byte of the signed message flipped.
    msg[msg.size() / 2] = static_cast<char>(msg[msg.size() / 2] ^ 0x01);
    spit(dir_.path + "/flipped.msg", msg);
    auto bad = check(dir_.path + "/flipped.msg", n, out + "/quote.pcrs", out + "/ak.pem");
    EXPECT_NE(bad.rc, 0) << bad.out;
    EXPECT_NE(bad.err.find("Error validating signed message with public key provided"), std::string::npos) << bad.err;
    // Another nonce.
    bad = check(out + "/quote.msg", hex_nonce(), out + "/quote.pcrs", out + "/ak.pem");
    EXPECT_NE(bad.rc, 0) << bad.out;
    EXPECT_NE(bad.err.find("Error validating nonce from quote"), std::string::npos) << bad.err;
    // Another PCR value.
    std::string other = pcrs;
    size_t first = sizeof(TPML_PCR_SELECTION) + 4 + 4 + 2;  // UINT32 lists, TPML_DIGEST.count, TPM2B size
    other[first] = static_cast<char>(other[first] ^ 0x01);
    spit(dir_.path + "/other.pcrs", other);
    bad = check(out + "/quote.msg", n, dir_.path + "/other.pcrs", out + "/ak.pem");
    EXPECT_NE(bad.rc, 0) << bad.out;
    EXPECT_NE(bad.err.find("Error validating PCR composite against signed message"), std::string::npos) << bad.err;
}

// More than 8 PCRs take two TPML_DIGEST lists in the PCR file, as tpm2-tools splits them.
TEST(AttestTpm2Tools, PcrFileOfTenPcrsIsTpm2PcrreadsByteForByte) {
    if (system("command -v tpm2_pcrread >/dev/null 2>&1") != 0) GTEST_SKIP() << "tpm2-tools not installed";
    Swtpm tpm;
    TempDir d;
    std::vector<uint32_t> ten{0, 1, 2, 3, 4, 5, 6, 7, 8, 11};
    std::map<uint32_t, std::vector<uint8_t>> values;
    {
        trustme::tpm::Tpm t(tpm.tcti());
        t.pcr_extend(11, std::vector<uint8_t>(32, 0xab));
        values = t.pcr_read(ten);
    }
    std::string file = trustme::attest::tpm2_pcr_file(values);
    EXPECT_EQ(file.size(), sizeof(TPML_PCR_SELECTION) + 4 + 2 * sizeof(TPML_DIGEST));
    auto pr = run({"tpm2_pcrread", "-T", tpm.tcti(), "-o", d.path + "/pcrread.pcrs", "-F", "serialized",
                   "sha256:0,1,2,3,4,5,6,7,8,11"},
                  d.path);
    ASSERT_EQ(pr.rc, 0) << pr.err;
    EXPECT_EQ(slurp(d.path + "/pcrread.pcrs"), file);
}

// Every option that --help names is in the man page.
TEST(AttestBinary, ManPageDocumentsEveryOptionOfHelp) {
    TempDir d;
    auto r = run({kAttest, "--help"}, d.path);
    ASSERT_EQ(r.rc, 0);
    std::string man = slurp(kSource + "/man/trustme-attest.8");
    std::string unescaped;
    for (size_t i = 0; i < man.size(); ++i)
        if (!(man[i] == '\\' && i + 1 < man.size() && man[i + 1] == '-')) unescaped += man[i];
    for (size_t i = r.out.find("--"); i != std::string::npos; i = r.out.find("--", i + 2)) {
        size_t e = i + 2;
        while (e < r.out.size() && (isalnum(static_cast<unsigned char>(r.out[e])) || r.out[e] == '-')) ++e;
        std::string opt = r.out.substr(i, e - i);
        EXPECT_NE(unescaped.find(opt), std::string::npos) << opt << " is not in man/trustme-attest.8";
        i = e - 2;
    }
}

TEST_F(AttestHost, AfterATpmResetOldEventsAreNotCovered) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("before", b1).rc, 0);
    tpm_.restart();
    ASSERT_EQ(measure("after", b1).rc, 0);
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow_all_measured());
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("event 0 not-covered: container=before"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("event 1 allowed: container=after"), std::string::npos) << v.out;
}

TEST_F(AttestHost, BadHookInputIsOneLineAndLeavesNoRecord) {
    auto r = run(cmd({"hook", "measure"}), dir_.path, "not json");
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("OCI state"), std::string::npos) << r.err;
    r = run(cmd({"hook", "measure"}), dir_.path, state("c1", dir_.path + "/missing"));
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
    // No TPM: one line naming the TCTI; nothing appended.
    auto b1 = make_bundle("b1", "one");
    r = run({kAttest, "--policy", policy_, "--tcti", "swtpm:path=" + dir_.path + "/nosock", "hook", "measure"},
            dir_.path, state("c1", b1));
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("TPM (swtpm:path="), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(boot_log())) << "a failed first measurement created the log";
    EXPECT_FALSE(fs::exists(fs::path(log_).parent_path()));
}

TEST_F(AttestHost, RemoteChallengeResponse) {
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    std::string allow = allow_all_measured();
    std::string sock = dir_.path + "/attest.sock";
    pid_t server = spawn(cmd({"serve", "--listen", "unix:" + sock}), dir_.path, "serve", "");
    bool up = false;
    for (int i = 0; i < 500 && !up; ++i) {
        up = fs::exists(sock);
        if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(up) << slurp(dir_.path + "/serve.err");
    auto v = run({kAttest, "verify", "--ak", ak(), "--allow", allow, "--remote", "unix:" + sock}, dir_.path);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("VERIFIED"), std::string::npos) << v.out;
    // A verifier with another trusted AK refuses the same host.
    Swtpm other;
    auto r = run({kAttest, "--tcti", other.tcti(), "ak", "create", "--out", dir_.path + "/other.pem"}, dir_.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    v = run({kAttest, "verify", "--ak", dir_.path + "/other.pem", "--allow", allow, "--remote", "unix:" + sock},
            dir_.path);
    EXPECT_EQ(v.rc, 1);
    kill(server, SIGTERM);
    wait_bounded(server);
    EXPECT_FALSE(fs::exists(sock)) << "serve left its socket behind";

    // TCP on loopback: a port the kernel picked for us a moment ago.
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
    close(s);
    std::string addr = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
    server = spawn(cmd({"serve", "--listen", addr}), dir_.path, "serve-tcp", "");
    Result tv;
    for (int i = 0; i < 100; ++i) {  // until it listens (bounded)
        tv = run({kAttest, "verify", "--ak", ak(), "--allow", allow, "--remote", addr}, dir_.path);
        if (tv.err.find("connect") == std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(tv.rc, 0) << tv.out << tv.err;
    kill(server, SIGTERM);
    wait_bounded(server);
}

TEST(AttestMeasure, RuntimeVerifiedAnnotationsAndSignerAllowList) {
    TempDir d;
    std::string b = d.path + "/bundle";
    fs::create_directories(b + "/rootfs");
    spit(b + "/config.json", "{\"ociVersion\":\"1.0.2\"}");
    std::string manifest(64, 'b');
    json ann = {{trustme::attest::kAnnManifest, manifest}, {trustme::attest::kAnnSigner, "CN=release signer"}};
    json st = {{"id", "x"}, {"bundle", b}, {"annotations", ann}};
    auto m = trustme::attest::measure_bundle(st, true);
    EXPECT_EQ(m.source, "runtime-verified");
    EXPECT_EQ(m.manifest_sha256, manifest);
    EXPECT_EQ(m.signer, "CN=release signer");
    // Not from trustme-runtime (runc, crun): the annotations are the bundle author's word and are ignored.
    auto u = trustme::attest::measure_bundle(st, false);
    EXPECT_EQ(u.source, "computed");
    EXPECT_NE(u.manifest_sha256, manifest);
    EXPECT_TRUE(u.signer.empty());
    // A config changed after the runtime verified it is refused.
    ann[trustme::attest::kAnnConfig] = std::string(64, 'c');
    st["annotations"] = ann;
    EXPECT_THROW(trustme::attest::measure_bundle(st, true), trustme::Error);

    // Allow-listing by signer.
    Swtpm sw;
    std::string log = d.path + "/log";
    trustme::attest::measure({sw.tcti(), 11, log}, st, m);
    trustme::tpm::Tpm t(sw.tcti());
    std::vector<uint8_t> nonce(32, 7);
    auto q = t.quote(nonce, {11});
    trustme::attest::QuoteDoc doc;
    doc.attest = q.attest;
    doc.signature_der = q.signature_der;
    doc.pcrs = q.pcr_values;
    trustme::attest::LogFile lf(trustme::attest::boot_log_path(log, trustme::attest::boot_id()),
                                trustme::attest::LogFile::Mode::Read);
    doc.log = lf.read();
    doc.boot_id = trustme::attest::boot_id();
    auto allow = trustme::attest::AllowList::parse(R"({"signers":["CN=release signer"]})", "allow");
    auto r = trustme::attest::verify_quote(t.ak_public().pem, nonce, allow, doc);
    EXPECT_TRUE(r.ok()) << trustme::attest::render(r);
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_EQ(r.events[0].reason, "signer on the allow-list");
    auto deny = trustme::attest::AllowList::parse(R"({"signers":["CN=someone else"]})", "allow");
    EXPECT_FALSE(trustme::attest::verify_quote(t.ak_public().pem, nonce, deny, doc).ok());
    EXPECT_THROW(trustme::attest::AllowList::parse(R"({"signer":[]})", "allow.json"), trustme::Error);
}

TEST(AttestEk, EnrollBindsTheAkToTheCertifiedEk) {
    TempDir d;
    Swtpm::Options o;
    o.ek_cert = true;
    Swtpm sw(o);
    std::string ak = d.path + "/ak.pem";
    auto r = run(
        {kAttest, "--tcti", sw.tcti(), "ak", "enroll", "--ek-ca", sw.ca_root(), "--ek-ca", sw.ca_issuer(), "--out", ak},
        d.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("bound to the certified EK"), std::string::npos);
    // The enrolled AK is the one that signs quotes.
    auto c = run(
        {kAttest, "--tcti", sw.tcti(), "ak", "create", "--out", d.path + "/ak2.pem", "--ek-cert", d.path + "/ek.der"},
        d.path);
    ASSERT_EQ(c.rc, 0) << c.err;
    EXPECT_EQ(slurp(ak), slurp(d.path + "/ak2.pem"));
    EXPECT_GT(fs::file_size(d.path + "/ek.der"), 100u);

    // Another CA does not certify this EK.
    Swtpm other(o);
    r = run({kAttest, "--tcti", sw.tcti(), "ak", "enroll", "--ek-ca", other.ca_root(), "--ek-ca", other.ca_issuer(),
             "--out", d.path + "/bad.pem"},
            d.path);
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.err.find("EK certificate"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(d.path + "/bad.pem"));

    // A credential made for this EK but another AK name cannot be activated: the TPM checks the binding.
    trustme::tpm::Tpm t(sw.tcti());
    auto ek = t.ek_certificate();
    std::vector<uint8_t> wrong_name(34, 1);
    wrong_name[0] = 0;
    wrong_name[1] = 0x0b;
    auto cred = trustme::attest::make_credential(ek, wrong_name, std::vector<uint8_t>(32, 9));
    EXPECT_THROW(t.ak_activate_credential(cred), trustme::Error);
}

TEST(AttestRunc, HookMeasuresUnderRunc) {
    if (system("command -v runc >/dev/null 2>&1") != 0) GTEST_SKIP() << "runc not installed";
    TempDir d;
    Swtpm sw;
    std::string bundle = d.path + "/bundle", log = d.path + "/measurements.cel.json";
    fs::create_directories(bundle);
    ASSERT_EQ(run({"sh", kSource + "/tests/fixtures/make-rootfs.sh", bundle + "/rootfs"}, d.path).rc, 0);
    ASSERT_EQ(run({"runc", "spec", "--bundle", bundle}, d.path).rc, 0);
    json cfg = json::parse(slurp(bundle + "/config.json"));
    cfg["process"]["terminal"] = false;
    cfg["process"]["args"] = {"/bin/true"};
    cfg["hooks"]["createRuntime"] = {
        {{"path", kAttest},
         {"args", {"trustme-attest", "--tcti", sw.tcti(), "--log", log, "hook", "measure"}},
         {"timeout", 60}}};
    spit(bundle + "/config.json", cfg.dump(2));
    std::string root = d.path + "/runc-root";
    std::string id = "trustme-attest-test-" + std::to_string(getpid());
    auto r = run({"runc", "--root", root, "run", "--bundle", bundle, id}, d.path);
    run({"runc", "--root", root, "delete", "--force", id}, d.path);  // in case run stopped halfway
    ASSERT_EQ(r.rc, 0) << r.out << r.err;

    trustme::attest::LogFile lf(trustme::attest::boot_log_path(log, trustme::attest::boot_id()),
                                trustme::attest::LogFile::Mode::Read);
    auto ev = lf.read();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].content["container_id"], id);
    EXPECT_EQ(ev[0].content["bundle"], bundle);
    EXPECT_EQ(ev[0].content["source"], "computed");  // runc's annotations are never trusted
    trustme::tpm::Tpm t(sw.tcti());
    EXPECT_EQ(trustme::attest::replay(ev, 11, t.reset_count()), t.pcr_read(11));
    EXPECT_NE(t.pcr_read(11), std::vector<uint8_t>(32, 0));
}

#ifdef TRUSTME_SIGN_BIN
// Under runc the hook computes the manifest itself; for an intact signed bundle that must be the digest of
// the manifest file trustme-sign wrote (what trustme-runtime passes as org.trustme.verified.manifest), so
// one allow-list serves both runtimes. A modified bundle gets another digest.
TEST_F(AttestHost, ComputedDigestEqualsTheSignedManifestFile) {
    const std::string sign = TRUSTME_SIGN_BIN;
    std::string pki = dir_.path + "/pki";
    auto r = run({sign, "pki", "init", "--dir", pki}, dir_.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    r = run({sign, "pki", "issue", "--dir", pki, "--name", "release"}, dir_.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    auto sha = [](const std::string& data) {
        uint8_t d[32];
        SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(), d);
        return trustme::tpm::to_hex(d, 32);
    };
    // Bundle location (covers config.json) and embedded location (rootfs only).
    auto b1 = make_bundle("b1", "one"), b2 = make_bundle("b2", "two");
    r = run({sign, "sign", "--dir", pki, "--name", "release", b1}, dir_.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    r = run({sign, "sign", "--dir", pki, "--name", "release", "--embedded", b2}, dir_.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    ASSERT_EQ(measure("c1", b1).rc, 0);
    ASSERT_EQ(measure("c2", b2).rc, 0);
    spit(b1 + "/rootfs/etc/marker", "changed");
    ASSERT_EQ(measure("c3", b1).rc, 0);
    auto ev = log_events();
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[0].content["manifest_sha256"], sha(slurp(b1 + "/trustme.manifest")));
    EXPECT_EQ(ev[1].content["manifest_sha256"], sha(slurp(b2 + "/rootfs/.trustme/manifest")));
    EXPECT_NE(ev[2].content["manifest_sha256"], ev[0].content["manifest_sha256"]);
    EXPECT_EQ(ev[0].content["signer"], "");  // computed: no signature was checked
}
#endif

#if defined(TRUSTME_SIGN_BIN) && defined(TRUSTME_RUNTIME_BIN)
// The whole chain under trustme-runtime: a policy with "attestation": true makes the runtime insert the
// measure hook, the hook trusts the runtime's verified annotations (its parent is trustme-runtime), and a
// verifier allow-lists the bundle by its signer.
class AttestRuntime : public AttestHost {
protected:
    std::string pki_, bundle_, root_;
    const std::string sign_ = TRUSTME_SIGN_BIN, runtime_ = TRUSTME_RUNTIME_BIN;

    void SetUp() override {
        AttestHost::SetUp();
        pki_ = dir_.path + "/pki";
        root_ = dir_.path + "/runtime-root";
        ASSERT_EQ(run({sign_, "pki", "init", "--dir", pki_}, dir_.path).rc, 0);
        ASSERT_EQ(run({sign_, "pki", "issue", "--dir", pki_, "--name", "release"}, dir_.path).rc, 0);
        bundle_ = dir_.path + "/bundle";
        fs::create_directories(bundle_);
        ASSERT_EQ(run({"sh", kSource + "/tests/fixtures/make-rootfs.sh", bundle_ + "/rootfs"}, dir_.path).rc, 0);
        ASSERT_EQ(run({"runc", "spec", "--bundle", bundle_}, dir_.path).rc, 0);
        json cfg = json::parse(slurp(bundle_ + "/config.json"));
        cfg["process"]["terminal"] = false;
        cfg["process"]["args"] = {"/bin/true"};
        // Not what this test is about: trustme-runtime refuses runc spec's ambient set on this host.
        cfg["process"]["capabilities"].erase("ambient");
        spit(bundle_ + "/config.json", cfg.dump(2));
    }

    Result run_container(const std::string& policy, const std::string& id) {
        auto r = run({runtime_, "--root", root_, "--policy", policy, "run", "--bundle", bundle_, id}, dir_.path);
        run({runtime_, "--root", root_, "delete", "--force", id}, dir_.path);
        return r;
    }
};

TEST_F(AttestRuntime, SignedBundleIsMeasuredWithItsSigner) {
    ASSERT_EQ(run({sign_, "sign", "--dir", pki_, "--name", "release", bundle_}, dir_.path).rc, 0);
    std::string policy = dir_.path + "/policy-attest.json";
    spit(policy, json{{"signature", "required"},
                      {"trust_anchors", {pki_ + "/root-ca.pem"}},
                      {"tcti", tpm_.tcti()},
                      {"pcr", 11},
                      {"attestation", true},
                      {"event_log", log_}}
                     .dump());
    auto r = run_container(policy, "signed");
    ASSERT_EQ(r.rc, 0) << r.out << r.err;
    auto ev = log_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].content["source"], "runtime-verified");
    std::string signer = ev[0].content["signer"];
    EXPECT_NE(signer.find("release"), std::string::npos) << signer;
    uint8_t d[32];
    std::string m = slurp(bundle_ + "/trustme.manifest");
    SHA256(reinterpret_cast<const uint8_t*>(m.data()), m.size(), d);
    EXPECT_EQ(ev[0].content["manifest_sha256"], trustme::tpm::to_hex(d, 32));

    std::string allow = dir_.path + "/allow-signer.json";
    spit(allow, json{{"signers", {signer}}}.dump());
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("signer on the allow-list"), std::string::npos) << v.out;
}

// A bundle author must not be able to claim a verified manifest through config.json's annotations when the
// runtime did not verify anything (signature "off"). Needs trustme-runtime to drop org.trustme.verified.*
// annotations that come from config.json (runtime/container/create.cpp); enable when it does.
TEST_F(AttestRuntime, ForgedVerifiedAnnotationsAreNotTrusted) {
    json cfg = json::parse(slurp(bundle_ + "/config.json"));
    cfg["annotations"][trustme::attest::kAnnManifest] = std::string(64, 'a');
    cfg["annotations"][trustme::attest::kAnnSigner] = "CN=forged";
    spit(bundle_ + "/config.json", cfg.dump(2));
    std::string policy = dir_.path + "/policy-off.json";
    spit(policy, json{{"signature", "off"}, {"tcti", tpm_.tcti()}, {"attestation", true}, {"event_log", log_}}.dump());
    auto r = run_container(policy, "forged");
    ASSERT_EQ(r.rc, 0) << r.out << r.err;
    auto ev = log_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_NE(ev[0].content["manifest_sha256"], std::string(64, 'a'));
    EXPECT_NE(ev[0].content["signer"], "CN=forged");
}
#endif

// ---- The verifier decides what is quoted: one test per lie a host can tell ----------------------------

namespace {
// A unix-socket client: sends `data` (then, with `close_write`, half-closes) and reads the reply until the
// server closes, at most `seconds`.
std::string exchange(const std::string& sock, const std::string& data, int seconds = 20, bool close_write = false) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    sock.copy(sa.sun_path, sizeof sa.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        close(fd);
        return "<connect failed>";
    }
    if (!data.empty()) (void)!send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (close_write) shutdown(fd, SHUT_WR);
    std::string out;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return out;
}
int connect_unix(const std::string& sock) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    sock.copy(sa.sun_path, sizeof sa.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}
}  // namespace

// The host quotes another PCR than the one measurements go to (here with no log at all): the verifier
// demands PCR 11, its policy's, and refuses -- from a file and through serve started with --pcr 12.
TEST_F(AttestHost, QuoteOverAnotherPcrIsRefused) {
    ASSERT_EQ(measure("evil", make_bundle("b1", "one")).rc, 0);
    std::string allow = dir_.path + "/allow-none.json";
    spit(allow, json{{"manifests", json::array()}}.dump());
    // Honest: refused, the bundle is not allowed.
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 1);
    // The lie: a quote over PCR 12 with a missing log.
    n = hex_nonce();
    auto q = run(cmd({"--pcr", "12", "--log", dir_.path + "/missing", "quote", "--nonce", n}), dir_.path);
    ASSERT_EQ(q.rc, 0) << q.err;
    spit(dir_.path + "/q12.json", q.out);
    v = verify(dir_.path + "/q12.json", n, allow);
    EXPECT_EQ(v.rc, 1) << v.out;
    EXPECT_NE(v.err.find("not the required PCR 11"), std::string::npos) << v.err;
    EXPECT_EQ(count_lines(v.err), 1) << v.err;
    // The verifier names the PCRs itself: --pcr 11 with the same quote, refused the same way.
    auto v2 =
        run({kAttest, "verify", "--pcr", "11", "--ak", ak(), "--allow", allow, "--nonce", n, dir_.path + "/q12.json"},
            dir_.path);
    EXPECT_EQ(v2.rc, 1);
    EXPECT_NE(v2.err.find("not the required PCR 11"), std::string::npos) << v2.err;
    // serve --pcr 12: the verifier asks for PCR 11 and gets a quote over it, which shows the bundle.
    std::string sock = dir_.path + "/s.sock";
    pid_t server = start_server(sock, {"--pcr", "12"});
    v = verify_remote("unix:" + sock, allow);
    EXPECT_EQ(v.rc, 1) << v.out;
    EXPECT_NE(v.out.find("event 0 DENIED: container=evil"), std::string::npos) << v.out;
    stop_server(server);
}

// A record of this boot on a PCR the quote does not cover is refused, not "not covered".
TEST_F(AttestHost, RecordOnAnUncoveredPcrIsRefused) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("c1", b1).rc, 0);
    auto r = run(cmd({"--pcr", "12", "hook", "measure"}), dir_.path, state("hidden", b1));
    ASSERT_EQ(r.rc, 0) << r.err;
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow_all_measured());
    EXPECT_EQ(v.rc, 1) << v.out;
    EXPECT_NE(v.err.find("record 1 of this boot is on PCR 12, which the quote does not cover"), std::string::npos)
        << v.err;
}

TEST_F(AttestHost, MissingLogIsRefused) {
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    std::string allow = allow_all_measured();
    std::string n = hex_nonce();
    auto q = run(cmd({"--log", dir_.path + "/missing", "quote", "--nonce", n}), dir_.path);
    ASSERT_EQ(q.rc, 0) << q.err;
    spit(dir_.path + "/q.json", q.out);
    auto v = verify(dir_.path + "/q.json", n, allow);
    EXPECT_EQ(v.rc, 1) << v.out;
    EXPECT_NE(v.err.find("PCR 11: replaying the event log gives 0000"), std::string::npos) << v.err;
}

// The host cuts records off its log file (or its reply): the quoted PCR holds their extends.
TEST_F(AttestHost, TruncatedLogIsRefused) {
    auto b1 = make_bundle("b1", "one");
    for (int i = 0; i < 3; ++i) ASSERT_EQ(measure("c" + std::to_string(i), b1).rc, 0);
    std::string allow = allow_all_measured();
    auto ev = log_events();
    std::string text = slurp(boot_log());
    size_t cut = 0;
    for (int i = 0; i < 2; ++i) cut = text.find('\n', cut) + 1;
    fs::resize_file(boot_log(), cut);  // two of three records left
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 1) << v.out;
    EXPECT_NE(v.err.find("PCR 11: replaying the event log"), std::string::npos) << v.err;
}

// After a reboot (TPM reset), the host hands over the log of the earlier boot: its records replay to
// nothing in the quote's epoch.
TEST_F(AttestHost, LogFromAnEarlierBootIsRefused) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("good", b1).rc, 0);
    std::string allow = allow_all_measured();
    tpm_.restart();
    ASSERT_EQ(measure("evil", make_bundle("b2", "two")).rc, 0);
    std::string n = hex_nonce();
    std::string q = quote(n);
    auto earlier = edit_quote(q, [](json& l) { l.erase(l.end() - 1); });  // only the earlier boot's record
    auto v = verify(earlier, n, allow);
    EXPECT_EQ(v.rc, 1) << v.out;
    EXPECT_NE(v.err.find("records are from another boot"), std::string::npos) << v.err;
    EXPECT_EQ(count_lines(v.err), 1);
}

// Incremental verification: the verifier keeps where it stopped and asks only for the records since.
TEST_F(AttestHost, IncrementalVerificationAsksOnlyForNewRecords) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("c0", b1).rc, 0);
    ASSERT_EQ(measure("c1", b1).rc, 0);
    std::string allow = allow_all_measured();
    std::string sock = dir_.path + "/s.sock", st = dir_.path + "/host.state";
    pid_t server = start_server(sock);
    auto v = verify_remote("unix:" + sock, allow, {"--state", st});
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("event 1 allowed: container=c1"), std::string::npos) << v.out;
    EXPECT_EQ(json::parse(slurp(st))["next"], 2);
    ASSERT_EQ(measure("c2", b1).rc, 0);
    v = verify_remote("unix:" + sock, allow, {"--state", st});
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_EQ(v.out.find("container=c1"), std::string::npos) << v.out;  // not asked for again
    EXPECT_NE(v.out.find("event 2 allowed: container=c2"), std::string::npos) << v.out;
    EXPECT_EQ(json::parse(slurp(st))["next"], 3);
    // Nothing new: still verified, against the kept PCR value.
    v = verify_remote("unix:" + sock, allow, {"--state", st});
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    // A denied bundle refuses the host from then on, though later challenges do not see its record.
    ASSERT_EQ(measure("evil", make_bundle("b2", "two")).rc, 0);
    v = verify_remote("unix:" + sock, allow, {"--state", st});
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.out.find("event 3 DENIED: container=evil"), std::string::npos) << v.out;
    v = verify_remote("unix:" + sock, allow, {"--state", st});
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.out.find("event 3 DENIED earlier: container=evil"), std::string::npos) << v.out;
    // After a TPM reset the kept state does not apply: the verifier asks from record 0 again.
    tpm_.restart();
    ASSERT_EQ(measure("c4", b1).rc, 0);
    v = verify_remote("unix:" + sock, allow, {"--state", st});
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("event 3 not-covered: container=evil"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("event 4 allowed: container=c4"), std::string::npos) << v.out;
    stop_server(server);
}

// The increment the host returns must start where the verifier stopped and replay from its kept value.
TEST_F(AttestHost, IncrementThatSkipsOrRewritesIsRefused) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("c0", b1).rc, 0);
    std::string allow = allow_all_measured();
    std::string st = dir_.path + "/host.state";
    std::string n = hex_nonce();
    auto v = run(
        {kAttest, "--policy", policy_, "verify", "--ak", ak(), "--allow", allow, "--state", st, "--nonce", n, quote(n)},
        dir_.path);
    ASSERT_EQ(v.rc, 0) << v.out << v.err;
    ASSERT_EQ(measure("c1", b1).rc, 0);
    ASSERT_EQ(measure("c2", b1).rc, 0);
    // From 2 instead of 1: record 1 skipped.
    n = hex_nonce();
    auto q = run(cmd({"quote", "--nonce", n, "--from", "2"}), dir_.path);
    spit(dir_.path + "/q2.json", q.out);
    v = run({kAttest, "--policy", policy_, "verify", "--ak", ak(), "--allow", allow, "--state", st, "--nonce", n,
             dir_.path + "/q2.json"},
            dir_.path);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("verifier state"), std::string::npos) << v.err;
    // From 1, with the first new record dropped and the recnums rewritten to look complete.
    n = hex_nonce();
    q = run(cmd({"quote", "--nonce", n, "--from", "1"}), dir_.path);
    spit(dir_.path + "/q1.json", q.out);
    auto edited = edit_quote(dir_.path + "/q1.json", [](json& l) {
        l.erase(l.begin());
        l[0]["recnum"] = 1;
    });
    v = run(
        {kAttest, "--policy", policy_, "verify", "--ak", ak(), "--allow", allow, "--state", st, "--nonce", n, edited},
        dir_.path);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("PCR 11: replaying"), std::string::npos) << v.err;
    // The honest increment verifies.
    v = run({kAttest, "--policy", policy_, "verify", "--ak", ak(), "--allow", allow, "--state", st, "--nonce", n,
             dir_.path + "/q1.json"},
            dir_.path);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_EQ(json::parse(slurp(st))["next"], 3);
}

// ---- The boot-scoped log and the checkpoint --------------------------------------------------------

TEST_F(AttestHost, LogIsPerBootAndOldBootsArePruned) {
    // Files of six earlier boots, oldest first, and one that is not a log of ours.
    fs::create_directories(fs::path(log_).parent_path());
    std::vector<std::string> old;
    for (int i = 0; i < 6; ++i) {
        char id[64];
        snprintf(id, sizeof id, "0000000%d-0000-4000-8000-000000000000", i);
        std::string p = log_ + "." + id;
        spit(p, "");
        spit(p + ".ckpt", "");
        auto t = fs::file_time_type::clock::now() - std::chrono::hours(10 - i);
        fs::last_write_time(p, t);
        old.push_back(p);
    }
    spit(log_ + ".keep-me", "");
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    EXPECT_TRUE(fs::exists(boot_log()));
    EXPECT_FALSE(fs::exists(log_));
    auto ev = log_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].content["boot_id"], trustme::attest::boot_id());
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(fs::exists(old[i]), i >= 2) << old[i];  // the 4 newest earlier boots are kept
        EXPECT_EQ(fs::exists(old[i] + ".ckpt"), i >= 2) << old[i];
    }
    EXPECT_TRUE(fs::exists(log_ + ".keep-me"));
}

// A start reads the checkpoint and what follows it, never the history: a record before the checkpoint
// that no longer parses does not stop the next measurement (a whole-log reader fails on it).
TEST_F(AttestHost, HookDoesNotReadTheHistory) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("c0", b1).rc, 0);
    ASSERT_EQ(measure("c1", b1).rc, 0);
    std::string text = slurp(boot_log());
    text[1] = 'X';  // record 0 is no longer JSON
    {
        std::fstream f(boot_log(), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(0);
        f.write(text.data(), 2);
    }
    auto r = measure("c2", b1);
    EXPECT_EQ(r.rc, 0) << r.err;
    trustme::attest::Checkpoint ck;
    ASSERT_TRUE(trustme::attest::Checkpoint::load(trustme::attest::Checkpoint::path_for(boot_log()), &ck));
    EXPECT_EQ(ck.records, 3u);
    EXPECT_EQ(ck.length, fs::file_size(boot_log()));
    trustme::tpm::Tpm t(tpm_.tcti());
    EXPECT_EQ(ck.value, t.pcr_read(11));
}

// The checkpoint is only a cache: one that disagrees with the TPM is rebuilt from the log, one that is
// missing or torn too, and the log and the PCR stay consistent.
TEST_F(AttestHost, CheckpointIsCheckedAgainstTheTpm) {
    auto b1 = make_bundle("b1", "one");
    ASSERT_EQ(measure("c0", b1).rc, 0);
    std::string ckp = trustme::attest::Checkpoint::path_for(boot_log());
    trustme::attest::Checkpoint ck;
    ASSERT_TRUE(trustme::attest::Checkpoint::load(ckp, &ck));
    ck.value.assign(32, 0x42);  // well-formed, but a lie
    ck.store(ckp);
    ASSERT_EQ(measure("c1", b1).rc, 0);
    auto check = [&] {
        trustme::attest::Checkpoint now;
        ASSERT_TRUE(trustme::attest::Checkpoint::load(ckp, &now));
        trustme::tpm::Tpm t(tpm_.tcti());
        EXPECT_EQ(now.value, t.pcr_read(11));
        EXPECT_EQ(trustme::attest::replay(log_events(), 11, t.reset_count()), t.pcr_read(11));
        EXPECT_EQ(now.records, log_events().size());
    };
    check();
    spit(ckp, "trustme-checkpoint 1 torn");
    ASSERT_EQ(measure("c2", b1).rc, 0);
    check();
    fs::remove(ckp);
    ASSERT_EQ(measure("c3", b1).rc, 0);
    check();
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow_all_measured());
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
}

// ---- A server that serves many ---------------------------------------------------------------------

// Idle clients and a slow sender neither block a verifier nor keep their connection past the deadline.
TEST_F(AttestHost, IdleAndSlowClientsDoNotBlockVerifiers) {
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    std::string allow = allow_all_measured();
    std::string sock = dir_.path + "/s.sock";
    pid_t server = start_server(sock, {"--deadline", "3"});
    std::vector<int> idle;
    for (int i = 0; i < 20; ++i) idle.push_back(connect_unix(sock));
    // A slow sender: one byte of a valid request at a time.
    int slow = connect_unix(sock);
    ASSERT_GE(slow, 0);
    std::thread trickle([slow] {
        std::string req = "{\"op\":\"quote\",\"nonce\":\"" + std::string(64, 'a') + "\"}\n";
        for (size_t i = 0; i < req.size() && i < 12; ++i) {
            if (send(slow, &req[i], 1, MSG_NOSIGNAL) != 1) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
    });
    auto v = verify_remote("unix:" + sock, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    // The slow sender is cut at its deadline with a JSON error, before it could finish.
    std::string got;
    for (int i = 0; i < 100; ++i) {
        pollfd p{slow, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        char buf[512];
        ssize_t n = read(slow, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    trickle.join();
    ASSERT_FALSE(got.empty());
    EXPECT_NE(json::parse(got)["error"].get<std::string>().find("not complete within 3 s"), std::string::npos) << got;
    for (int fd : idle) close(fd);
    close(slow);
    stop_server(server);
}

TEST_F(AttestHost, EveryBadRequestGetsAJsonError) {
    std::string sock = dir_.path + "/s.sock";
    pid_t server = start_server(sock, {"--max-per-client", "3"});
    auto error_of = [&](const std::string& data, bool close_write = false) {
        std::string r = exchange(sock, data, 20, close_write);
        EXPECT_FALSE(r.empty()) << "no reply to " << data.size() << " bytes";
        if (r.empty()) return std::string();
        EXPECT_EQ(r.back(), '\n');
        json j = json::parse(r);  // valid JSON, whatever was sent
        EXPECT_TRUE(j.contains("error")) << r;
        return j.value("error", "");
    };
    EXPECT_NE(error_of("\xff\xfe\x01garbage\x80\n").find("not a JSON object"), std::string::npos);
    EXPECT_NE(error_of(std::string("{\"op\":\"quote\"}\0{\"x\":1}\n", 23)).find("NUL"), std::string::npos);
    EXPECT_NE(error_of("{\"op\":\"activate\",\"credential_blob\":\"00\"}\n").find("not enabled"), std::string::npos);
    EXPECT_NE(error_of("{\"op\":\"ak\"}\n").find("not enabled"), std::string::npos);
    EXPECT_NE(error_of("{\"op\":\"quote\",\"nonce\":\"00\"}\n").find("nonce"), std::string::npos);
    EXPECT_NE(error_of("{\"op\":\"quote\",\"nonce\":\"" + hex_nonce() + "\",\"pcrs\":[99]}\n").find("pcrs"),
              std::string::npos);
    EXPECT_NE(error_of(std::string(70000, 'x')).find("larger than"), std::string::npos);
    EXPECT_NE(error_of("{\"op\":", true).find("closed before the end"), std::string::npos);
    // Caps per client: the fourth connection at once is refused, in JSON.
    std::vector<int> held;
    for (int i = 0; i < 3; ++i) held.push_back(connect_unix(sock));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_NE(error_of("{\"op\":\"ak\"}\n").find("busy"), std::string::npos);
    for (int fd : held) close(fd);
    stop_server(server);
}

// Out of descriptors: accept fails with EMFILE; the server pauses accepting and serves on.
TEST_F(AttestHost, ServerSurvivesRunningOutOfDescriptors) {
    if (system("command -v prlimit >/dev/null 2>&1") != 0) GTEST_SKIP() << "prlimit not installed";
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    std::string allow = allow_all_measured();
    std::string sock = dir_.path + "/s.sock";
    std::vector<std::string> argv{"prlimit", "--nofile=24"};
    for (auto& a : cmd({"serve", "--listen", "unix:" + sock})) argv.push_back(a);
    pid_t server = spawn(argv, dir_.path, "serve-emfile", "");
    for (int i = 0; i < 500 && slurp(dir_.path + "/serve-emfile.out").find("listening") == std::string::npos; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::vector<int> held;
    for (int i = 0; i < 40; ++i) held.push_back(connect_unix(sock));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_EQ(waitpid(server, nullptr, WNOHANG), 0) << slurp(dir_.path + "/serve-emfile.err");
    for (int fd : held) close(fd);
    auto v = verify_remote("unix:" + sock, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    stop_server(server);
}

// Without transport authentication the service stays on loopback unless asked otherwise.
TEST_F(AttestHost, ServeRefusesAPublicAddressByDefault) {
    auto r = run(cmd({"serve", "--listen", "0.0.0.0:1"}), dir_.path);
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("not a loopback address"), std::string::npos) << r.err;
}

// ---- The AK kept across quotes ----------------------------------------------------------------------

namespace {
// A saved context of another key of the AK's shape (the AK template with another `unique`) on the TPM at
// `tcti`, with its public area: what a host would put in the AK cache to quote with a key of its choice.
trustme::tpm::SavedAk other_key_context(const std::string& tcti) {
    trustme::tpm::Tpm t(tcti);
    auto* ctx = static_cast<ESYS_CONTEXT*>(t.esys());
    TPM2B_PUBLIC tmpl{};
    auto& p = tmpl.publicArea;
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                         TPMA_OBJECT_SIGN_ENCRYPT;
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    const char tag[] = "not-the-ak";
    p.unique.ecc.x.size = sizeof tag - 1;
    memcpy(p.unique.ecc.x.buffer, tag, sizeof tag - 1);
    TPM2B_SENSITIVE_CREATE sens{};
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION pcrs{};
    ESYS_TR h = ESYS_TR_NONE;
    TPM2B_PUBLIC* pub = nullptr;
    if (Esys_CreatePrimary(ctx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                           &outside, &pcrs, &h, &pub, nullptr, nullptr, nullptr) != TSS2_RC_SUCCESS)
        throw std::runtime_error("CreatePrimary");
    TPMS_CONTEXT* c = nullptr;
    if (Esys_ContextSave(ctx, h, &c) != TSS2_RC_SUCCESS) throw std::runtime_error("ContextSave");
    trustme::tpm::SavedAk out;
    std::vector<uint8_t> buf(sizeof(TPMS_CONTEXT) + sizeof(TPM2B_PUBLIC));
    size_t off = 0;
    Tss2_MU_TPMS_CONTEXT_Marshal(c, buf.data(), buf.size(), &off);
    out.context.assign(buf.begin(), buf.begin() + static_cast<long>(off));
    off = 0;
    Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf.data(), buf.size(), &off);
    out.public_area.assign(buf.begin(), buf.begin() + static_cast<long>(off));
    Esys_FlushContext(ctx, h);
    Esys_Free(c);
    Esys_Free(pub);
    return out;
}
}  // namespace

// A quote loads the AK saved by an earlier one instead of having the TPM derive it again; what it loads
// is checked against the TPM, and a host that swaps in another key is still refused by the verifier,
// which pins the AK.
TEST_F(AttestHost, AkIsKeptAcrossQuotesAndAnotherKeyIsRefused) {
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    std::string allow = allow_all_measured();
    std::string kept = log_ + ".ak-context";
    std::string n = hex_nonce();
    auto v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    ASSERT_TRUE(fs::exists(kept)) << "the quote did not keep the AK";
    EXPECT_EQ(fs::status(kept).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
    auto saved = trustme::tpm::SavedAk::from_json(slurp(kept), kept);
    // The next quote uses it: the same context, and a verifying quote.
    n = hex_nonce();
    v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_EQ(trustme::tpm::SavedAk::from_json(slurp(kept), kept).context, saved.context);

    // Another key of the same shape, saved consistently: the host quotes with it; the verifier refuses.
    auto other = other_key_context(tpm_.tcti());
    spit(kept, other.to_json());
    n = hex_nonce();
    v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 1) << v.out;
    EXPECT_NE(v.err.find("does not verify with the trusted AK"), std::string::npos) << v.err;
    // serve takes the kept AK from the same place.
    std::string sock = dir_.path + "/s.sock";
    pid_t server = start_server(sock);
    v = verify_remote("unix:" + sock, allow);
    EXPECT_EQ(v.rc, 1) << v.out;
    EXPECT_NE(v.err.find("does not verify with the trusted AK"), std::string::npos) << v.err;
    stop_server(server);

    // Another key's context under the AK's public area: the TPM says what it loaded, so the quote
    // re-creates the AK and keeps that instead.
    other.public_area = saved.public_area;
    spit(kept, other.to_json());
    n = hex_nonce();
    v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_EQ(trustme::tpm::SavedAk::from_json(slurp(kept), kept).public_area, saved.public_area);
    EXPECT_NE(trustme::tpm::SavedAk::from_json(slurp(kept), kept).context, other.context);

    // Garbage, and a context the TPM no longer accepts after a reset: the AK is made anew.
    spit(kept, "garbage");
    n = hex_nonce();
    v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    auto before_reset = trustme::tpm::SavedAk::from_json(slurp(kept), kept);
    tpm_.restart();
    ASSERT_EQ(measure("c2", make_bundle("b1", "one")).rc, 0);
    n = hex_nonce();
    v = verify(quote(n), n, allow);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_NE(trustme::tpm::SavedAk::from_json(slurp(kept), kept).context, before_reset.context);
}

// ---- Mutual TLS -------------------------------------------------------------------------------------

#ifdef TRUSTME_SIGN_BIN
namespace {
// A loopback port the kernel handed out a moment ago.
int free_port() {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
    close(s);
    return ntohs(sa.sin_port);
}

// spki:<hex SHA-256 of the DER SubjectPublicKeyInfo> of a PEM certificate.
std::string spki_of(const std::string& pem_file) {
    FILE* f = fopen(pem_file.c_str(), "r");
    if (!f) return "";
    X509* c = PEM_read_X509(f, nullptr, nullptr, nullptr);
    fclose(f);
    unsigned char* der = nullptr;
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &der);
    uint8_t d[32];
    SHA256(der, static_cast<size_t>(len), d);
    OPENSSL_free(der);
    X509_free(c);
    return "spki:" + trustme::tpm::to_hex(d, 32);
}

// Connect to 127.0.0.1:port in plain TCP, send `data`, return what comes back within 5 s.
std::string plain_tcp(int port, const std::string& data) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        close(fd);
        return "<connect failed>";
    }
    (void)!send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    std::string out;
    for (int i = 0; i < 50; ++i) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return out;
}
}  // namespace

// serve with --tls-*: only a verifier with a client certificate of the CA that is on the allow-list
// (by CN or by key) gets a quote; another CA, a name not on the list, a code-signing certificate, a
// client without TLS and plain bytes are refused at the handshake, each with one line in serve's log.
TEST_F(AttestHost, MutualTlsAdmitsOnlyAllowListedVerifiers) {
    ASSERT_EQ(measure("c1", make_bundle("b1", "one")).rc, 0);
    std::string allow = allow_all_measured();
    const std::string sign = TRUSTME_SIGN_BIN;
    std::string pki = dir_.path + "/pki", other_pki = dir_.path + "/other-pki";
    auto ok = [&](const std::vector<std::string>& argv) {
        auto r = run(argv, dir_.path);
        EXPECT_EQ(r.rc, 0) << r.err;
    };
    ok({sign, "pki", "init", "--dir", pki});
    ok({sign, "pki", "init", "--dir", other_pki});
    ok({sign, "pki", "issue", "--dir", pki, "--name", "attester", "--purpose", "server"});
    for (const char* n : {"verifier", "by-key", "stranger"})
        ok({sign, "pki", "issue", "--dir", pki, "--name", n, "--purpose", "client"});
    ok({sign, "pki", "issue", "--dir", pki, "--name", "release"});  // codeSigning: no TLS identity
    ok({sign, "pki", "issue", "--dir", other_pki, "--name", "verifier", "--purpose", "client"});
    // Each certificate with its issuing CA, as TLS sends it.
    auto full = [&](const std::string& dir, const std::string& name) {
        std::string p = dir + "/" + name + "-full.pem";
        spit(p, slurp(dir + "/" + name + ".pem") + slurp(dir + "/" + name + "-chain.pem"));
        return std::vector<std::string>{"--tls-cert",        p, "--tls-key", dir + "/" + name + ".key", "--tls-ca",
                                        pki + "/root-ca.pem"};
    };

    // Without an allow-list, serve with TLS does not start.
    auto r = run(cmd({"serve", "--listen", "127.0.0.1:1", "--tls-cert", pki + "/attester.pem", "--tls-key",
                      pki + "/attester.key", "--tls-ca", pki + "/root-ca.pem"}),
                 dir_.path);
    EXPECT_EQ(r.rc, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("--tls-allow"), std::string::npos) << r.err;

    int port = free_port();
    std::string addr = "127.0.0.1:" + std::to_string(port);
    // "release" is on the list, but its certificate is for code signing, not for a TLS client.
    std::vector<std::string> argv = cmd({"serve", "--listen", addr, "--tls-allow", "cn:verifier", "--tls-allow",
                                         spki_of(pki + "/by-key.pem"), "--tls-allow", "cn:release"});
    for (auto& a : full(pki, "attester")) argv.push_back(a);
    pid_t server = spawn(argv, dir_.path, "serve-tls", "");
    for (int i = 0; i < 500 && slurp(dir_.path + "/serve-tls.out").find("listening") == std::string::npos; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_NE(slurp(dir_.path + "/serve-tls.out").find("listening"), std::string::npos)
        << slurp(dir_.path + "/serve-tls.err");

    auto verify_as = [&](std::vector<std::string> tls_args) { return verify_remote(addr, allow, std::move(tls_args)); };
    // On the allow-list by CN, and by key; the first while three clients hold connections without ever
    // starting a handshake (it runs in the poll loop, so they block nobody; each is one log line when it
    // goes away).
    std::vector<int> idle;
    for (int i = 0; i < 3; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = htons(static_cast<uint16_t>(port));
        EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        idle.push_back(fd);
    }
    auto v = verify_as(full(pki, "verifier"));
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    EXPECT_NE(v.out.find("VERIFIED"), std::string::npos) << v.out;
    for (int fd : idle) close(fd);
    v = verify_as(full(pki, "by-key"));
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    std::string refused_lines;
    // A certificate of the CA that is not on the list; one of another CA (same name); a code-signing one.
    for (auto who : {full(pki, "stranger"), full(other_pki, "verifier"), full(pki, "release")}) {
        v = verify_as(who);
        EXPECT_EQ(v.rc, 1) << v.out;
        EXPECT_EQ(count_lines(v.err), 1) << v.err;
        EXPECT_EQ(v.out.find("VERIFIED"), std::string::npos) << v.out;
    }
    // No TLS at all: the verifier fails, and raw bytes get nothing that is a reply.
    v = verify_remote(addr, allow);
    EXPECT_EQ(v.rc, 1) << v.out;
    std::string raw = plain_tcp(port, "{\"op\":\"quote\",\"nonce\":\"" + hex_nonce() + "\"}\n");
    EXPECT_EQ(raw.find("attest"), std::string::npos) << raw;
    EXPECT_EQ(raw.find('{'), std::string::npos) << raw;

    // One log line per refused connection, naming why.
    std::string log;
    for (int i = 0; i < 50 && count_lines(log) < 8; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        log = slurp(dir_.path + "/serve-tls.err");
    }
    EXPECT_EQ(count_lines(log), 8) << log;  // 3 idle, 3 certificates, 1 plain verifier, 1 raw TCP
    EXPECT_NE(log.find("connection closed during the TLS handshake"), std::string::npos) << log;
    EXPECT_NE(log.find("CN=stranger, spki:"), std::string::npos) << log;
    EXPECT_NE(log.find("is not on the allow-list"), std::string::npos) << log;
    EXPECT_NE(log.find("unable to get local issuer certificate"), std::string::npos) << log;
    EXPECT_NE(log.find("unsuitable certificate purpose"), std::string::npos) << log;
    EXPECT_EQ(log.find("CN=verifier,"), std::string::npos) << log;

    // The verifier can pin the attester's identity too; another one is refused on its side.
    auto pinned = full(pki, "verifier");
    pinned.insert(pinned.end(), {"--tls-allow", "cn:attester"});
    v = verify_as(pinned);
    EXPECT_EQ(v.rc, 0) << v.out << v.err;
    pinned.back() = "cn:someone-else";
    v = verify_as(pinned);
    EXPECT_EQ(v.rc, 1);
    EXPECT_NE(v.err.find("CN=attester"), std::string::npos) << v.err;
    stop_server(server);
}
#endif
