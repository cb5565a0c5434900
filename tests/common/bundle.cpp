#include "tests/common/bundle.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace trustme::test {

std::string source_dir() { return TRUSTME_SOURCE_DIR; }
std::string runtime_binary() { return std::string(TRUSTME_BINARY_DIR) + "/bin/trustme-runtime"; }

std::string make_temp_dir(const std::string& tag) {
    std::string t = "/tmp/trustme-test-" + tag + "-XXXXXX";
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
    return t;
}

void remove_tree(const std::string& path) {
    if (path.size() < 10 || path.rfind("/tmp/trustme-test-", 0) != 0) return;  // never anything else
    run({"rm", "-rf", "--one-file-system", path});
}

std::string read_text(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::trunc);
    f << text;
}

Result run(const std::vector<std::string>& argv, const std::string& input, int timeout_s) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::vector<char*> av;
    for (auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    pid_t pid;
    int rc = posix_spawnp(&pid, av[0], &fa, nullptr, av.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    Result r;
    if (rc != 0) {
        close(in[1]);
        close(out[0]);
        close(err[0]);
        r.err = "spawn failed";
        return r;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!input.empty()) (void)!write(in[1], input.data(), input.size());
    close(in[1]);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    // Read until both pipes close, or until the process has exited and nothing more is readable: a
    // detached container keeps our pipes as its stdio, so EOF alone would wait for the container.
    bool oo = true, eo = true;
    int st = 0;
    bool exited = false;
    while (oo || eo) {
        struct pollfd p[2] = {{oo ? out[0] : -1, POLLIN, 0}, {eo ? err[0] : -1, POLLIN, 0}};
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int left = timeout_s * 1000 - int((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        int n = poll(p, 2, exited ? 0 : std::min(left, 50));
        if (n == 0) {
            if (exited) break;
            if (waitpid(pid, &st, WNOHANG) == pid) exited = true;
            continue;
        }
        char buf[4096];
        for (int i = 0; i < 2; ++i) {
            if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
            ssize_t rn = read(p[i].fd, buf, sizeof buf);
            if (rn <= 0) (i ? eo : oo) = false;
            else (i ? r.err : r.out).append(buf, rn);
        }
    }
    close(out[0]);
    close(err[0]);
    if (!exited) waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

const std::string& rootfs_template() {
    // Never destroyed: the atexit handler that removes it runs after the static destructors of everything
    // constructed later, this string's included (AddressSanitizer found the handler reading freed memory).
    static const std::string* const dir = [] {
        std::string d = make_temp_dir("rootfs");
        // bounded generously: on a loaded machine the busybox copy and links take tens of seconds
        Result r = run({source_dir() + "/tests/fixtures/make-rootfs.sh", d + "/rootfs"}, "", 300);
        if (r.status != 0) throw std::runtime_error("make-rootfs.sh failed: " + r.err);
        std::atexit([] { remove_tree(rootfs_template().substr(0, rootfs_template().rfind('/'))); });
        return new std::string(d + "/rootfs");
    }();
    return *dir;
}

Bundle::Bundle(const std::string& tag, bool copy_rootfs) {
    dir = make_temp_dir(tag);
    root = dir + "/state";
    rootfs = dir + "/rootfs";
    run({"cp", "-a", rootfs_template(), rootfs});
    Result r = run({runtime_binary(), "spec", "--bundle", dir});
    if (r.status != 0) throw std::runtime_error("spec failed: " + r.err);
    config = nlohmann::json::parse(read_text(dir + "/config.json"));
    config["process"]["terminal"] = false;
    config["process"]["args"] = {"/bin/true"};
    config["root"]["path"] = rootfs;
    (void)copy_rootfs;
}

Bundle::~Bundle() {
    for (auto& id : ids) rt({"delete", "--force", id}, "", 20);
    remove_tree(dir);
}

void Bundle::save() const { write_text(dir + "/config.json", config.dump(2)); }

Result Bundle::rt(const std::vector<std::string>& args, const std::string& input, int timeout_s) const {
    std::vector<std::string> argv = {runtime_binary(), "--root", root};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, input, timeout_s);
}

Result Bundle::run_sh(const std::string& id, const std::string& script) {
    config["process"]["args"] = {"/bin/sh", "-c", script};
    save();
    ids.push_back(id);
    return rt({"run", "--bundle", dir, id});
}

}  // namespace trustme::test
