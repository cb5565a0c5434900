// Test helpers: a forked child that performs actions on command, so tests observe cgroup effects
// (device access, fork under a pids limit, freezing) from inside the cgroup.
#pragma once
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "base/files.hpp"
#include "base/owned.hpp"

namespace cgtest {

// A directory with its own device nodes: c 1:11 (kmsg, harmless to open read-only) and b 7:0
// (loop0), so device rules are checked on numbers we choose rather than on the host's /dev.
struct DeviceDir {
    std::string dir;
    DeviceDir() {
        char tmpl[] = "/tmp/trustme-cgtest-XXXXXX";
        dir = ::mkdtemp(tmpl);
        ::mknod((dir + "/kmsg").c_str(), S_IFCHR | 0600, makedev(1, 11));
        ::mknod((dir + "/loop0").c_str(), S_IFBLK | 0600, makedev(7, 0));
    }
    ~DeviceDir() {
        ::unlink((dir + "/kmsg").c_str());
        ::unlink((dir + "/loop0").c_str());
        ::rmdir(dir.c_str());
    }
};

// Commands: 'n' open /dev/null rw, 'r' open kmsg ro, 'w' open kmsg wo, 'b' open loop0 ro,
// 'f' fork a child that exits at once. Reply: one byte, 0 on success or the errno.
class Child {
public:
    explicit Child(const std::string& devdir) {
        int to[2], from[2];
        if (::pipe2(to, O_CLOEXEC) < 0 || ::pipe2(from, O_CLOEXEC) < 0) std::abort();
        trustme::UniqueFd to_rd(to[0]), to_wr(to[1]), from_rd(from[0]), from_wr(from[1]);
        pid_ = ::fork();
        if (pid_ == 0) {
            to_wr.reset();
            from_rd.reset();
            std::string kmsg = devdir + "/kmsg", loop0 = devdir + "/loop0";
            for (;;) {
                char c;
                if (::read(to_rd.get(), &c, 1) != 1) ::_exit(0);
                int r = 0;
                bool opens = true;
                trustme::UniqueFd fd;
                switch (c) {
                    case 'n': fd.reset(::open("/dev/null", O_RDWR | O_CLOEXEC)); break;
                    case 'r': fd.reset(::open(kmsg.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)); break;
                    case 'w': fd.reset(::open(kmsg.c_str(), O_WRONLY | O_CLOEXEC)); break;
                    case 'b': fd.reset(::open(loop0.c_str(), O_RDONLY | O_CLOEXEC)); break;
                    case 'f': {
                        pid_t p = ::fork();
                        if (p == 0) ::_exit(0);
                        if (p < 0) r = errno;
                        else ::waitpid(p, nullptr, 0);
                        opens = false;
                        break;
                    }
                    default: r = EINVAL; opens = false;
                }
                if (opens && !fd) r = errno;
                fd.reset();
                char out = static_cast<char>(r);
                if (::write(from_wr.get(), &out, 1) != 1) ::_exit(1);
            }
        }
        cmd_ = std::move(to_wr);
        reply_ = std::move(from_rd);
    }
    ~Child() { stop(); }

    pid_t pid() const { return pid_; }

    // Send a command; wait up to `timeout_ms` for the reply. -1 = no reply in time.
    void send(char c) {
        if (::write(cmd_.get(), &c, 1) != 1) std::abort();
    }
    int reply(int timeout_ms = 10000) {
        pollfd p{reply_.get(), POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) != 1) return -1;
        char r;
        if (::read(reply_.get(), &r, 1) != 1) return -1;
        return static_cast<unsigned char>(r);
    }
    int run(char c) {
        send(c);
        return reply();
    }

    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
        cmd_.reset();
        reply_.reset();
    }

private:
    pid_t pid_ = -1;
    trustme::UniqueFd cmd_, reply_;
};

// "maj:min" of a whole-disk block device (for blkio/io throttling): a real disk if there is one,
// else a loop device (the test VM has no disk); "" if none.
inline std::string some_block_device(bool allow_loop = true) {
    trustme::UniqueDir d(::opendir("/sys/block"));
    if (!d) return "";
    std::string out;
    while (dirent* e = ::readdir(d.get())) {
        std::string n = e->d_name;
        if (n[0] == '.' || n.rfind("loop", 0) == 0 || n.rfind("ram", 0) == 0 || n.rfind("zram", 0) == 0) continue;
        try {
            out = trustme::read_file("/sys/block/" + n + "/dev");
            while (!out.empty() && out.back() == '\n') out.pop_back();
            break;
        } catch (...) {
        }
    }
    d.reset();
    if (out.empty() && allow_loop) {
        try {
            out = trustme::read_file("/sys/block/loop0/dev");
            while (!out.empty() && out.back() == '\n') out.pop_back();
        } catch (...) {
        }
    }
    return out;
}

inline std::string read_trim(const std::string& path) {
    std::string s = trustme::read_file(path);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

inline bool dir_exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace cgtest
