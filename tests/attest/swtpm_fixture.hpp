// A private software TPM for tests: swtpm on a unix socket in a fresh temporary directory.
//
// Usage (header-only; add ${TRUSTME_SOURCE_DIR}/tests/attest, i.e. ${CMAKE_SOURCE_DIR}/tests/attest, to the
// test's include directories):
//
//     #include "swtpm_fixture.hpp"
//     trustme::testing::Swtpm tpm;                       // started and answering when the ctor returns
//     trustme::tpm::Tpm t(tpm.tcti());                   // "swtpm:path=/tmp/trustme-swtpm-XXXXXX/sock"
//     tpm.restart();                                     // a "reboot": PCRs back to zero, resetCount + 1
//
//     trustme::testing::Swtpm::Options o; o.ek_cert = true;
//     trustme::testing::Swtpm tpm2(o);                   // manufactured by swtpm_setup --create-ek-cert
//     tpm2.ca_certs()                                     // PEM file(s) of the private local CA that signed the EK
//     cert
//
// What it guarantees: swtpm runs in the foreground as our child (no --daemon), so we know its PID and stop
// it by that PID only (SIGTERM, then SIGKILL after 5 s), then remove the directory. Nothing outside the
// temporary directory is touched: the swtpm_setup and swtpm_localca configuration files are written into
// it (the defaults would use /var/lib/swtpm-localca, host state). Every wait is bounded. The ctor throws
// std::runtime_error when swtpm is missing or does not come up, with swtpm's log in the message.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include "base/fd.hpp"

extern char** environ;

namespace trustme::testing {

class Swtpm {
public:
    struct Options {
        bool ek_cert = false;  // run swtpm_setup --tpm2 --create-ek-cert with a private local CA first
    };

    Swtpm() : Swtpm(Options{}) {}
    explicit Swtpm(const Options& opts) {
        char tmpl[] = "/tmp/trustme-swtpm-XXXXXX";
        if (!mkdtemp(tmpl)) throw std::runtime_error("swtpm fixture: mkdtemp failed");
        dir_ = tmpl;
        std::filesystem::create_directory(dir_ + "/state");
        try {
            if (opts.ek_cert) manufacture();
            start();
        } catch (...) {
            stop();
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
            throw;
        }
    }
    Swtpm(const Swtpm&) = delete;
    Swtpm& operator=(const Swtpm&) = delete;
    ~Swtpm() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    const std::string& dir() const { return dir_; }
    std::string socket() const { return dir_ + "/sock"; }
    std::string tcti() const { return "swtpm:path=" + socket(); }
    pid_t pid() const { return pid_; }
    // The local CA's certificates (root, then intermediate), PEM; only with Options::ek_cert.
    std::string ca_root() const { return dir_ + "/ca/swtpm-localca-rootca-cert.pem"; }
    std::string ca_issuer() const { return dir_ + "/ca/issuercert.pem"; }

    // Stop and start again on the same state: like a reboot, PCRs reset and resetCount increments.
    void restart() {
        stop();
        start();
    }

    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        for (int i = 0; i < 500; ++i) {  // 5 s
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

private:
    // stdout and stderr of the child go to `output` (swtpm_setup chatters on stdout).
    static int run(const std::vector<std::string>& argv, pid_t* out_pid, bool wait, const std::string& output) {
        std::vector<char*> a;
        for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
        a.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        pid_t pid = -1;
        int rc = posix_spawnp(&pid, a[0], &fa, nullptr, a.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        if (rc != 0)
            throw std::runtime_error("swtpm fixture: cannot run " + argv[0] + " (apt-get install swtpm swtpm-tools)");
        if (out_pid) *out_pid = pid;
        if (!wait) return 0;
        int status = 0;
        ::waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    }

    static void write(const std::string& path, const std::string& text) {
        std::ofstream f(path);
        f << text;
        if (!f) throw std::runtime_error("swtpm fixture: cannot write " + path);
    }

    std::string slurp(const std::string& path) const {
        std::ifstream f(path);
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }

    void manufacture() {
        std::filesystem::create_directory(dir_ + "/ca");
        write(dir_ + "/swtpm_setup.conf",
              "create_certs_tool = /usr/bin/swtpm_localca\n"
              "create_certs_tool_config = " +
                  dir_ +
                  "/swtpm-localca.conf\n"
                  "create_certs_tool_options = " +
                  dir_ +
                  "/swtpm-localca.options\n"
                  "active_pcr_banks = sha256\n");
        write(dir_ + "/swtpm-localca.conf", "statedir = " + dir_ +
                                                "/ca\n"
                                                "signingkey = " +
                                                dir_ +
                                                "/ca/signkey.pem\n"
                                                "issuercert = " +
                                                dir_ +
                                                "/ca/issuercert.pem\n"
                                                "certserial = " +
                                                dir_ + "/ca/certserial\n");
        write(dir_ + "/swtpm-localca.options",
              "--platform-manufacturer trustme-test\n--platform-version 2.1\n"
              "--platform-model swtpm\n");
        int rc = run({"swtpm_setup", "--tpm2", "--tpmstate", dir_ + "/state", "--create-ek-cert", "--config",
                      dir_ + "/swtpm_setup.conf", "--logfile", dir_ + "/setup.log"},
                     nullptr, true, dir_ + "/setup.out");
        if (rc != 0)
            throw std::runtime_error("swtpm fixture: swtpm_setup failed: " + slurp(dir_ + "/setup.log") +
                                     slurp(dir_ + "/setup.out"));
    }

    bool answers() const {
        trustme::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) return false;
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::string p = socket();
        p.copy(sa.sun_path, sizeof(sa.sun_path) - 1);
        return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
    }

    void start() {
        std::error_code ec;
        std::filesystem::remove(socket(), ec);
        std::filesystem::remove(socket() + ".ctrl", ec);
        // startup-clear: swtpm sends TPM2_Startup(CLEAR) itself, as firmware would (a TPM Reset).
        run({"swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + dir_ + "/state", "--server",
             "type=unixio,path=" + socket(), "--ctrl", "type=unixio,path=" + socket() + ".ctrl", "--flags",
             "not-need-init,startup-clear", "--log", "file=" + dir_ + "/swtpm.log"},
            &pid_, false, dir_ + "/swtpm.out");
        for (int i = 0; i < 1000; ++i) {  // 10 s
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("swtpm fixture: swtpm exited: " + slurp(dir_ + "/swtpm.log"));
            }
            // The data socket is connected for the check and closed right away; swtpm accepts the next
            // client afterwards.
            if (std::filesystem::exists(socket()) && answers()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        throw std::runtime_error("swtpm fixture: swtpm did not come up within 10 s: " + slurp(dir_ + "/swtpm.log"));
    }

    std::string dir_;
    pid_t pid_ = -1;
};

}  // namespace trustme::testing
