// Shared by the volume tests: run a program and capture its output, a private temporary directory.
#pragma once
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace voltest {

inline const std::string kPlugin = std::string(TRUSTME_BINARY_DIR) + "/lib/trustme/libtrustme-volume.so";
inline const std::string kTool = std::string(TRUSTME_BINARY_DIR) + "/bin/trustme-volume-tool";

struct Result {
    int status = -1;
    std::string out, err;
};

inline std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline void spit(const std::string& path, const std::string& data) {
    std::ofstream f(path, std::ios::binary);
    f << data;
}

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/trustme-voltest-XXXXXX";
        path_ = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// Runs argv (PATH lookup) with stdin from /dev/null; stdout and stderr captured through files.
inline Result run(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env = {}) {
    TempDir io;
    Result r;
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) envs.push_back(*e);
    for (auto& e : extra_env) envs.push_back(e);
    std::vector<char*> envp;
    for (auto& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, (io / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, (io / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        r.status = 127;
        r.err = "cannot run " + argv[0];
        return r;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(io / "out");
    r.err = slurp(io / "err");
    return r;
}

// `trustme-runtime volume ARGS...` through the plugin.
inline Result volume(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), {kTool, kPlugin, "volume"});
    return run(args, env);
}

inline int count_lines(const std::string& s) {
    int n = 0;
    for (char c : s) n += c == '\n';
    return n;
}

}  // namespace voltest
