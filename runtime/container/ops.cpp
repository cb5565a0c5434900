// state / kill / delete / list / pause / resume / run / verify.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "runtime/container/container.hpp"
#include "hooks/hooks.hpp"
#include "runtime/container/lifecycle.hpp"
#include "runtime/container/notify.hpp"
#include "runtime/container/plugins.hpp"
#include "base/error.hpp"
#include "base/files.hpp"
#include "base/log.hpp"
#include "runtime/volume/volume_plugin.h"
#include "signing/policy.hpp"
#include "signing/verify_plugin.h"

namespace trustme::container {
namespace {

struct SigName {
    const char* name;
    int num;
};
constexpr SigName kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},     {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},   {"FPE", SIGFPE},     {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},     {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},   {"ALRM", SIGALRM},
    {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"POLL", SIGPOLL}, {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

int pidfd_for(const state::Record& r) {
    UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, r.st.pid, 0)));
    if (!fd) return -1;
    // The pid may have been reused between reading state.json and pidfd_open: check the start time now
    // that the pidfd pins the process.
    if (state::proc_info(r.st.pid).start != r.pid_start) return -1;
    return fd.release();
}

void wait_dead(int pidfd, int timeout_ms) {
    struct pollfd p = {pidfd, POLLIN, 0};
    while (::poll(&p, 1, timeout_ms) < 0 && errno == EINTR) {
    }
}

}  // namespace

int parse_signal(const std::string& s) {
    if (s.empty()) fail("empty signal");
    if (std::isdigit(static_cast<unsigned char>(s[0]))) {
        char* end;
        long n = std::strtol(s.c_str(), &end, 10);
        if (*end || n <= 0 || n > SIGRTMAX) fail("invalid signal \"" + s + "\"");
        return static_cast<int>(n);
    }
    std::string n = s;
    for (auto& ch : n) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (n.rfind("SIG", 0) == 0) n = n.substr(3);
    for (auto& k : kSignals)
        if (n == k.name) return k.num;
    if (n.rfind("RTMIN", 0) == 0 || n.rfind("RTMAX", 0) == 0) {
        int base = n[2] == 'M' && n[3] == 'I' ? SIGRTMIN : SIGRTMAX;
        int off = n.size() > 5 ? std::atoi(n.c_str() + 5) : 0;
        int sig = base + off;
        if (sig >= SIGRTMIN && sig <= SIGRTMAX) return sig;
    }
    fail("unknown signal \"" + s + "\"");
}

bool is_frozen(const state::Record& r) {
    if (r.cgroup.is_null()) return false;
    try {
        return cgroups::Manager::load(r.cgroup)->frozen();
    } catch (...) {
        return false;
    }
}

void close_volumes(const std::string& id, const std::string& state_dir) {
    auto fn = reinterpret_cast<decltype(&trustme_volumes_close)>(plugins::volume_symbol("trustme_volumes_close"));
    trustme_volume_error err{};
    plugins::volume_check(fn(id.c_str(), state_dir.c_str(), &err), err, "closing volumes failed");
}

void destroy(state::ContainerDir& dir, state::Record& rec) {
    if (rec.volumes) plugins::require_loadable();  // closing them needs the volume plugin: before anything
    // The unit is stopped over D-Bus, unless systemd has freed it already (the container's processes all
    // exited): then this command never loads libsystemd, nor hands over to the twin that can.
    if (cgroups::saved_is_systemd(rec.cgroup) && !cgroups::systemd_unit_gone(rec.cgroup)) plugins::use_systemd();
    std::unique_ptr<cgroups::Manager> cg;
    if (!rec.cgroup.is_null()) cg = cgroups::Manager::load(rec.cgroup);
    if (rec.st.pid > 0) {
        UniqueFd pfd(pidfd_for(rec));
        if (pfd) {
            ::syscall(SYS_pidfd_send_signal, pfd.get(), SIGKILL, nullptr, 0);
            if (cg && cg->frozen()) cg->thaw();  // frozen tasks die only once thawed
            wait_dead(pfd.get(), 10000);
        }
    }
    if (cg) {
        // Other processes of the container (exec'd ones, daemons it started) go with it.
        if (!cg->pids().empty()) cg->kill_all(SIGKILL);
        cg->destroy();
    }
    if (rec.volumes) close_volumes(rec.st.id, dir.path());
    auto it = rec.config.find("hooks");
    if (it != rec.config.end() && it->contains("poststop")) {
        std::vector<oci::Hook> hooks;
        size_t i = 0;
        for (auto& h : (*it)["poststop"])
            hooks.push_back(oci::parse_hook(h, "state.json", "hooks.poststop[" + std::to_string(i++) + "]"));
        oci::State st = rec.st;
        st.status = "stopped";
        hooks::run_all_warn(hooks, oci::hook_state(st).dump(), "poststop");
    }
    notify::remove(dir);
    dir.remove();
}

int state(const Globals& g, const std::string& id) {
    auto dir = state::ContainerDir::open(g.root, id, false);
    auto rec = dir.read();
    rec.st.status = state::status_of(rec, dir, is_frozen);
    print(oci::runc_state(rec.st).dump(2) + "\n");
    return 0;
}

int kill(const Globals& g, const std::string& id, const std::string& signal, bool all) {
    int sig = parse_signal(signal);
    auto dir = state::ContainerDir::open(g.root, id);
    auto rec = dir.read();
    std::string status = state::status_of(rec, dir, is_frozen);
    if (all && !rec.cgroup.is_null() && status != "stopped") {
        cgroups::Manager::load(rec.cgroup)->kill_all(sig);
        return 0;
    }
    if (status == "stopped" || status == "creating") fail("container \"" + id + "\" is not running");
    UniqueFd pfd(pidfd_for(rec));
    if (!pfd) fail("container \"" + id + "\" is not running");
    if (::syscall(SYS_pidfd_send_signal, pfd.get(), sig, nullptr, 0) < 0) fail_errno("kill \"" + id + "\"");
    return 0;
}

int remove(const Globals& g, const std::string& id, bool force) {
    if (!oci::valid_id(id)) oci::invalid_id(id);
    std::unique_ptr<state::ContainerDir> dir;
    try {
        dir = std::make_unique<state::ContainerDir>(state::ContainerDir::open(g.root, id));
    } catch (const Error& e) {
        // runc: delete --force of a container that does not exist succeeds; an unreadable one is an error.
        if (force && e.code() == ENOENT) return 0;
        throw;
    }
    auto rec = dir->read_any();
    if (rec.foreign) {  // another runtime's container in a shared --root: not ours to delete
        if (force) return 0;
        fail("container \"" + id + "\" does not exist");
    }
    if (!rec.broken.empty()) {
        // Nothing in a broken record is believed: no hook runs, nothing it names is signalled or removed.
        if (!force) fail(rec.broken + " (delete --force removes the entry)");
        log::warn("removing broken state of container \"" + id + "\": " + rec.broken);
        dir->remove();
        return 0;
    }
    std::string status = state::status_of(rec, *dir, is_frozen);
    // runc deletes a "created" container without --force (engines rely on it); running/paused need --force.
    if (!force && (status == "running" || status == "paused"))
        fail("cannot delete container \"" + id + "\" that is " + status + " (use --force)");
    destroy(*dir, rec);
    return 0;
}

int list(const Globals& g, const std::string& format, bool quiet) {
    if (format != "table" && format != "json") fail("invalid --format \"" + format + "\" (table or json)");
    auto ids = state::list_ids(g.root);
    nlohmann::json arr = nlohmann::json::array();
    std::vector<oci::State> rows;
    for (auto& id : ids) {
        // One entry never stops the others: a broken one is listed as "broken", one not ours is skipped.
        try {
            auto dir = state::ContainerDir::open(g.root, id, false);
            auto rec = dir.read_any();
            if (rec.foreign) continue;
            if (!rec.broken.empty()) {
                oci::State st;
                st.id = id;
                st.status = "broken";
                rows.push_back(st);
                continue;
            }
            rec.st.status = state::status_of(rec, dir, is_frozen);
            rows.push_back(rec.st);
        } catch (const Error& e) {
            if (e.code() != ENOENT) throw;  // else gone meanwhile (a concurrent delete)
        }
    }
    if (quiet) {
        for (auto& s : rows) print(s.id + "\n");
        return 0;
    }
    if (format == "json") {
        for (auto& s : rows) {
            nlohmann::json j = {{"ociVersion", oci::kOciVersion},
                                {"id", s.id},
                                {"pid", s.status == "stopped" ? 0 : s.pid},
                                {"status", s.status},
                                {"bundle", s.bundle},
                                {"rootfs", s.rootfs},
                                {"created", s.created},
                                {"owner", s.owner}};
            if (!s.annotations.empty()) j["annotations"] = s.annotations;
            arr.push_back(j);
        }
        print(arr.dump() + "\n");
        return 0;
    }
    std::printf("%-20s %-8s %-10s %-40s %-31s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
    for (auto& s : rows)
        std::printf("%-20s %-8d %-10s %-40s %-31s %s\n", s.id.c_str(), s.status == "stopped" ? 0 : s.pid,
                    s.status.c_str(), s.bundle.c_str(), s.created.c_str(), s.owner.c_str());
    return 0;
}

int pause(const Globals& g, const std::string& id) {
    auto dir = state::ContainerDir::open(g.root, id);
    auto rec = dir.read();
    std::string status = state::status_of(rec, dir, is_frozen);
    if (status != "running" && status != "created") fail("cannot pause container \"" + id + "\": it is " + status);
    cgroups::Manager::load(rec.cgroup)->freeze();
    return 0;
}

int resume(const Globals& g, const std::string& id) {
    auto dir = state::ContainerDir::open(g.root, id);
    auto rec = dir.read();
    std::string status = state::status_of(rec, dir, is_frozen);
    if (status != "paused") fail("cannot resume container \"" + id + "\": it is " + status + ", not paused");
    cgroups::Manager::load(rec.cgroup)->thaw();
    return 0;
}

namespace {

struct RawTerminal {
    bool active = false;
    struct termios saved {};
    void enable() {
        if (!::isatty(0) || ::tcgetattr(0, &saved) < 0) return;
        struct termios raw = saved;
        ::cfmakeraw(&raw);
        if (::tcsetattr(0, TCSANOW, &raw) == 0) active = true;
    }
    ~RawTerminal() {
        if (active) ::tcsetattr(0, TCSANOW, &saved);
    }
};

void copy_some(int from, int to, bool& open) {
    char buf[8192];
    ssize_t n = ::read(from, buf, sizeof buf);
    if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
        open = false;
        return;
    }
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        off += w;
    }
}

void resize_from_stdin(int master) {
    struct winsize ws;
    if (::ioctl(0, TIOCGWINSZ, &ws) == 0) ::ioctl(master, TIOCSWINSZ, &ws);
}

}  // namespace

sigset_t forwarded_signals() {
    // All but those that cannot be caught or forwarded and those that report our own faults.
    sigset_t set;
    sigfillset(&set);
    for (int s : {SIGKILL, SIGSTOP, SIGCHLD, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS})
        sigdelset(&set, s);
    return set;
}

int wait_foreground(pid_t pid, int pidfd, int master, int sigfd) {
    RawTerminal raw;
    if (master >= 0) {
        raw.enable();
        resize_from_stdin(master);
    }
    bool stdin_open = master >= 0, master_open = master >= 0;
    for (;;) {
        struct pollfd p[4];
        int n = 0;
        p[n++] = {pidfd, POLLIN, 0};
        p[n++] = {sigfd, POLLIN, 0};
        int si = -1, mi = -1;
        if (stdin_open) {
            si = n;
            p[n++] = {0, POLLIN, 0};
        }
        if (master_open) {
            mi = n;
            p[n++] = {master, POLLIN, 0};
        }
        if (::poll(p, static_cast<nfds_t>(n), -1) < 0) {
            if (errno == EINTR) continue;
            fail_errno("poll");
        }
        if (p[1].revents & POLLIN) {
            struct signalfd_siginfo si_info;
            while (::read(sigfd, &si_info, sizeof si_info) == sizeof si_info) {
                int sig = static_cast<int>(si_info.ssi_signo);
                if (sig == SIGWINCH && master >= 0) resize_from_stdin(master);
                else ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
            }
        }
        if (si >= 0 && (p[si].revents & (POLLIN | POLLHUP))) copy_some(0, master, stdin_open);
        if (mi >= 0 && (p[mi].revents & (POLLIN | POLLHUP))) copy_some(master, 1, master_open);
        if (p[0].revents & POLLIN) break;
    }
    // Drain what the container wrote to its terminal before exiting.
    if (master >= 0) {
        ::fcntl(master, F_SETFL, O_NONBLOCK);
        bool open = true;
        for (int i = 0; i < 1000 && open; ++i) copy_some(master, 1, open);
    }
    siginfo_t info{};
    while (::waitid(static_cast<idtype_t>(3) /*P_PIDFD*/, static_cast<id_t>(pidfd), &info, WEXITED) < 0) {
        if (errno == EINTR) continue;
        if (::waitpid(pid, nullptr, 0) < 0) return 1;
        break;
    }
    if (info.si_code == CLD_EXITED) return info.si_status;
    return 128 + info.si_status;
}

int run(const Globals& g, const CreateOpts& o) {
    if (o.detach) {
        create(g, o);
        return start(g, o.id);
    }
    // Forwarded signals are taken through a signalfd; the container init restores the mask before exec.
    // They are blocked only right before the clone (do_create): reading and verifying the bundle, which
    // an attacker may make slow (a fifo, a growing file), stays interruptible by SIGTERM and SIGINT.
    const sigset_t fwd = forwarded_signals();
    UniqueFd sigfd(::signalfd(-1, &fwd, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sigfd) fail_errno("signalfd");

    Created c;
    c.foreground = true;
    c.block_at_clone = &fwd;
    do_create(g, o, c);
    int code;
    {
        UniqueFd ready = notify::bind(*c.dir);
        UniqueFd status = release_init(*c.dir, o.id);
        c.dir->unlock();
        await_exec(std::move(status), o.id);
        run_poststart(c.rec, "running");
        notify::forward(ready.get(), c.pid, c.rec.pid_start);
        code = wait_foreground(c.pid, c.pidfd.get(), c.console.get(), sigfd.get());
        c.dir->lock();
    }
    c.armed = false;
    c.pid = 0;
    if (!o.keep) destroy(*c.dir, c.rec);
    return code;
}

int verify(const Globals& g, const std::string& bundle) {
    signing::policy::Policy pol = signing::policy::load(g.policy);
    if (pol.path.empty()) fail("no policy file: give --policy FILE (or TRUSTME_POLICY) to verify against");
    std::string b = bundle.empty() ? "." : bundle;
    UniqueFd bfd(::open(b.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!bfd) fail_errno("bundle " + b);
    std::string text = read_file_at(bfd.get(), "config.json", b + "/config.json");  // as create reads it
    auto cfg = oci::parse_config(text, b + "/config.json");
    std::string rootfs = cfg.root_path[0] == '/' ? cfg.root_path : b + "/" + cfg.root_path;
    UniqueFd rfd(::open(rootfs.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!rfd) fail_errno("root.path " + rootfs);
    trustme_verify_request req{TRUSTME_VERIFY_ABI, pol.path.c_str(), b.c_str(),  bfd.get(),
                               rfd.get(),          text.data(),      text.size()};
    trustme_verify_result res = plugins::verify_bundle(pol, req);
    std::string out = "bundle:          " + b + "\npolicy:          " + pol.path +
                      "\nmanifest:        " + res.location + "\nmanifest digest: " + res.manifest_digest +
                      "\nconfig digest:   " + res.config_digest + "\nsigner:          " + res.signer_subject + "\n";
    if (res.warning[0]) out += std::string("warning:         ") + res.warning + "\n";
    print(out + "result:          verified\n");
    return 0;
}

}  // namespace trustme::container
