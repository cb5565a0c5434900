// exec / ps / events / update: commands on a running container.
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <thread>
#include <utility>

#include "runtime/container/child.hpp"
#include "runtime/container/container.hpp"
#include "runtime/container/lifecycle.hpp"
#include "base/error.hpp"
#include "base/files.hpp"
#include "base/log.hpp"
#include "base/procfs.hpp"
#include "base/strings.hpp"
#include "runtime/container/plugins.hpp"
#include "runtime/process/init.hpp"
#include "runtime/process/sync.hpp"
#include "runtime/security/security.hpp"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace trustme::container {

namespace {

struct Running {
    std::unique_ptr<state::ContainerDir> dir;
    state::Record rec;
    std::string status;
};

Running open_running(const Globals& g, const std::string& id, const char* what) {
    Running r;
    r.dir = std::make_unique<state::ContainerDir>(state::ContainerDir::open(g.root, id, false));
    r.rec = r.dir->read();
    r.status = state::status_of(r.rec, *r.dir, is_frozen);
    if (r.status != "running" && r.status != "created" && r.status != "paused")
        fail(std::string(what) + ": container \"" + id + "\" is " + r.status + ", not running");
    return r;
}

oci::Process exec_process_spec(const ExecOpts& o, const oci::Config& cfg) {
    if (!o.process_file.empty()) {
        std::string text = read_file(o.process_file, oci::kMaxConfigBytes);
        return oci::parse_process(oci::parse_json(text, o.process_file), o.process_file, "process");
    }
    if (o.args.empty()) fail("exec: a command (or --process FILE) is required");
    oci::Process p = cfg.process ? *cfg.process : oci::Process{};
    p.args = o.args;
    p.terminal = o.tty;
    if (!o.cwd.empty()) p.cwd = o.cwd;
    for (auto& e : o.env) {
        auto eq = e.find('=');
        if (eq == std::string::npos) fail("exec: --env \"" + e + "\": must be KEY=VALUE");
        std::string key = e.substr(0, eq + 1);
        bool replaced = false;
        for (auto& cur : p.env)
            if (cur.compare(0, key.size(), key) == 0) {
                cur = e;
                replaced = true;
            }
        if (!replaced) p.env.push_back(e);
    }
    if (!o.user.empty()) {
        auto colon = o.user.find(':');
        std::string_view user(o.user);
        auto uid = parse_decimal<uint32_t>(user.substr(0, colon));
        auto gid = colon == std::string::npos ? std::optional<uint32_t>(p.user.gid)
                                              : parse_decimal<uint32_t>(user.substr(colon + 1));
        if (!uid || !gid) fail("exec: --user \"" + o.user + "\": want UID[:GID]");
        p.user.uid = *uid;
        p.user.gid = *gid;
    }
    if (!o.additional_gids.empty()) p.user.additional_gids = o.additional_gids;
    if (o.no_new_privs) p.no_new_privileges = true;
    if (!o.process_label.empty()) p.selinux_label = o.process_label;
    if (!o.apparmor.empty()) p.apparmor_profile = o.apparmor;
    if (!o.caps.empty()) {
        if (p.capabilities.is_null()) p.capabilities = nlohmann::json::object();
        for (const char* set : {"bounding", "effective", "permitted"})
            for (auto& c : o.caps) p.capabilities[set].push_back(c);
    }
    return p;
}

// What `exec` runs: the container's config as recorded, the process from the command line or --process.
struct ExecSpec {
    oci::Config cfg;
    oci::Process proc;
    security::Capabilities caps;
    security::SeccompProgram seccomp;
};

ExecSpec read_exec_spec(const Globals& g, const ExecOpts& o, const Running& r) {
    ExecSpec spec;
    spec.cfg = oci::parse_config(r.rec.config.dump(), r.rec.st.bundle + "/config.json");
    spec.proc = exec_process_spec(o, spec.cfg);
    spec.caps = security::parse_capabilities(spec.proc.capabilities);
    spec.seccomp = security::compile_seccomp_cached(spec.cfg.linux_.seccomp, g.seccomp_cache());
    return spec;
}

process::InitConfig exec_config(const ExecOpts& o, const Running& r, ExecSpec& spec, int sync_fd) {
    process::InitConfig ic;
    ic.cfg = &spec.cfg;
    ic.proc = &spec.proc;
    ic.id = o.id;
    ic.bundle = r.rec.st.bundle;
    ic.sync_fd = sync_fd;
    ic.preserve_fds = o.preserve_fds;
    ic.seccomp = &spec.seccomp;
    ic.caps = spec.caps;
    ic.is_exec = true;
    return ic;
}

// The container's pid namespace, entered for our children only (pid_for_children) around the clone. Rootless
// it belongs to the container's user namespace, which we are not in: then a first child enters all of the
// container's namespaces and makes the process (process::exec_init_from_inside).
class PidNamespaceVisit {
public:
    PidNamespaceVisit(const oci::Config& cfg, pid_t init_pid) {
        if (!cfg.linux_.find(CLONE_NEWPID)) return;
        own_.reset(procfs::open_link("self/ns/pid", O_RDONLY));
        UniqueFd theirs(procfs::open_link(std::to_string(init_pid) + "/ns/pid", O_RDONLY));
        if (own_ && theirs && ::setns(theirs.get(), CLONE_NEWPID) == 0) return;
        if (!(errno == EPERM && cfg.linux_.find(CLONE_NEWUSER)))
            fail_errno("exec: enter the container's pid namespace");
        own_.reset();
        from_inside_ = true;
    }
    ~PidNamespaceVisit() { leave(); }
    bool from_inside() const { return from_inside_; }
    void leave() noexcept {
        if (own_) ::setns(own_.get(), CLONE_NEWPID);
        own_.reset();
    }

private:
    UniqueFd own_;  // set while we are visiting
    bool from_inside_ = false;
};

// The process being set up: killed and reaped if `exec` fails before it is ready.
struct ExecChild {
    pid_t pid = -1;
    UniqueFd pidfd;
    bool armed = false;

    ExecChild() = default;
    ExecChild(ExecChild&& other) noexcept
        : pid(other.pid), pidfd(std::move(other.pidfd)), armed(std::exchange(other.armed, false)) {}
    ~ExecChild() {
        if (!armed) return;
        ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
        ::waitpid(pid, nullptr, 0);
    }
};

// The clone's child: it never returns here, and nothing unwinds from it into our cleanup.
[[noreturn]] void become_exec_child(SetupPeer& peer, process::InitConfig& ic, int container_pidfd, int ns_flags,
                                    bool from_inside) noexcept {
    peer.enter_child();
    if (from_inside) process::exec_init_from_inside(ic, container_pidfd, ns_flags);
    process::exec_init(ic, container_pidfd, ns_flags);
}

// The child that joins the container (container_pidfd) and becomes the process; it waits for Go.
ExecChild clone_exec_child(const ExecOpts& o, const ExecSpec& spec, process::InitConfig& ic, int container_pidfd,
                           pid_t init_pid, SetupPeer& peer) {
    int ns_flags = 0;
    for (auto& ns : spec.cfg.linux_.namespaces)
        if (ns.flag != CLONE_NEWPID) ns_flags |= ns.flag;
    // The procfs handle the child inherits: opened here, in the runtime's own mount namespace, so the
    // child never looks at the container's /proc (base/procfs.hpp).
    if (procfs::root() < 0) fail_errno("exec: open /proc (a procfs is needed)");
    PidNamespaceVisit visit(spec.cfg, init_pid);
    // Forwarded signals are blocked before the clone so none is lost; the child clears its mask.
    if (!o.detach) {
        const sigset_t forwarded = forwarded_signals();
        ::sigprocmask(SIG_BLOCK, &forwarded, nullptr);
    }
    ExecChild child;
    int pidfd = -1;
    child.pid = process::clone_with_pidfd(0, &pidfd);
    if (child.pid == 0) become_exec_child(peer, ic, container_pidfd, ns_flags, visit.from_inside());
    const int clone_errno = errno;
    visit.leave();
    if (child.pid < 0) fail(clone_errno, "exec: clone3");
    child.pidfd.reset(pidfd);
    peer.close_child_end();
    if (visit.from_inside()) {
        // The first child's only message is the process it made (our child too: CLONE_PARENT), or why not.
        struct Reap {
            pid_t pid;
            ~Reap() {
                while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
                }
            }
        } reap{child.pid};
        process::sync::Packet made = peer.expect(process::sync::Msg::Pid);
        auto pid = parse_decimal<pid_t>(made.text);
        if (!made.fd) fail("exec: unexpected message from the process");
        if (!pid) fail("exec: the process sent a malformed pid");
        child.pid = *pid;
        child.pidfd = std::move(made.fd);
    }
    child.armed = true;
    return child;
}

// The process's setup, answered until it is ready; returns the pty master of a foreground `exec -t`.
UniqueFd serve_exec(const ExecOpts& o, const Running& r, const ExecSpec& spec, const SetupPeer& peer, pid_t pid) {
    if (!r.rec.cgroup.is_null()) cgroups::Manager::load(r.rec.cgroup)->add_process(pid);
    if (spec.proc.oom_score_adj)
        procfs::write(std::to_string(pid) + "/oom_score_adj", std::to_string(*spec.proc.oom_score_adj));
    peer.tell(process::sync::Msg::Go, std::to_string(r.rec.st.pid));
    UniqueFd master;
    peer.serve({
        .hooks = nullptr,
        .console =
            [&](UniqueFd pty, const std::string& pty_name) {
                if (!o.console_socket.empty()) send_console_fd(o.console_socket, pty.get(), pty_name);
                else if (o.detach) fail("exec: --tty with --detach needs --console-socket");
                else master = std::move(pty);
            },
        .seccomp =
            [&](UniqueFd listener) {
                oci::State st = r.rec.st;
                st.status = r.status;
                security::send_seccomp_listener(spec.seccomp, listener.get(), oci::hook_state(st));
            },
    });
    return master;
}

}  // namespace

int exec(const Globals& g, const ExecOpts& o) {
    Running r = open_running(g, o.id, "exec");
    if (r.status == "paused") fail("exec: container \"" + o.id + "\" is paused");
    ExecSpec spec = read_exec_spec(g, o, r);
    UniqueFd container_pidfd(static_cast<int>(::syscall(SYS_pidfd_open, r.rec.st.pid, 0)));
    if (!container_pidfd || state::proc_info(r.rec.st.pid).start != r.rec.pid_start)
        fail("exec: container \"" + o.id + "\" is not running");

    SetupPeer peer({"exec: the process exited during setup", "exec: ", "exec: unexpected message from the process"});
    process::InitConfig ic = exec_config(o, r, spec, peer.child_end());
    ExecChild child = clone_exec_child(o, spec, ic, container_pidfd.get(), r.rec.st.pid, peer);
    UniqueFd master = serve_exec(o, r, spec, peer, child.pid);
    if (!o.pid_file.empty()) write_pid_file_at(o.pid_file, child.pid);
    child.armed = false;
    if (o.detach) return 0;
    const sigset_t forwarded = forwarded_signals();
    UniqueFd sigfd(::signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK));
    return wait_foreground(child.pid, child.pidfd.get(), master.get(), sigfd.get());
}

int ps(const Globals& g, const std::string& id, const std::string& format, const std::vector<std::string>& ps_args) {
    auto dir = state::ContainerDir::open(g.root, id, false);
    auto rec = dir.read();
    std::vector<pid_t> pids;
    if (!rec.cgroup.is_null()) pids = cgroups::Manager::load(rec.cgroup)->pids();
    if (format == "json") {
        print(nlohmann::json(pids).dump() + "\n");
        return 0;
    }
    if (format != "table") fail("ps: invalid --format \"" + format + "\" (table or json)");
    // As runc: run the host's ps and keep the header plus the lines of the container's processes.
    std::string cmd = "ps";
    for (auto& a : ps_args.empty() ? std::vector<std::string>{"-ef"} : ps_args) {
        for (char ch : a)
            if (!std::isalnum(static_cast<unsigned char>(ch)) && !std::strchr("-,=_:", ch))
                fail("ps: unsupported character in ps argument \"" + a + "\"");
        cmd += " " + a;
    }
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) fail_errno("ps: run ps");
    char line[4096];
    int pid_col = -1;
    std::set<pid_t> want(pids.begin(), pids.end());
    bool header = true;
    while (std::fgets(line, sizeof line, f)) {
        std::vector<std::string> cols;
        {
            std::string l = line;
            size_t i = 0;
            while (i < l.size()) {
                while (i < l.size() && std::isspace(static_cast<unsigned char>(l[i]))) ++i;
                size_t j = i;
                while (j < l.size() && !std::isspace(static_cast<unsigned char>(l[j]))) ++j;
                if (j > i) cols.push_back(l.substr(i, j - i));
                i = j;
            }
        }
        if (header) {
            for (size_t c = 0; c < cols.size(); ++c)
                if (cols[c] == "PID") pid_col = static_cast<int>(c);
            if (pid_col < 0) {
                ::pclose(f);
                fail("ps: no PID column in ps output");
            }
            std::fputs(line, stdout);
            header = false;
            continue;
        }
        if (static_cast<int>(cols.size()) > pid_col && want.count(std::atoi(cols[pid_col].c_str())))
            std::fputs(line, stdout);
    }
    ::pclose(f);
    return 0;
}

int events(const Globals& g, const std::string& id, bool stats, int interval_s) {
    for (;;) {
        auto dir = state::ContainerDir::open(g.root, id, false);
        auto rec = dir.read();
        std::string status = state::status_of(rec, dir, is_frozen);
        if (status == "stopped") {
            if (stats) fail("events: container \"" + id + "\" is not running");
            return 0;
        }
        nlohmann::json data =
            rec.cgroup.is_null() ? nlohmann::json::object() : cgroups::Manager::load(rec.cgroup)->stats();
        print(nlohmann::json{{"type", "stats"}, {"id", id}, {"data", data}}.dump() + "\n");
        if (stats) return 0;
        std::this_thread::sleep_for(std::chrono::seconds(interval_s));
    }
}

int update(const Globals& g, const std::string& id, const std::string& resources_json) {
    auto dir = state::ContainerDir::open(g.root, id);
    auto rec = dir.read();
    std::string status = state::status_of(rec, dir, is_frozen);
    if (status == "stopped") fail("update: container \"" + id + "\" is not running");
    nlohmann::json r = oci::parse_json(resources_json, "--resources", oci::kMaxResourcesDepth);
    cgroups::validate(r);
    if (cgroups::saved_is_systemd(rec.cgroup)) plugins::use_systemd();  // SetUnitProperties over D-Bus
    cgroups::Manager::load(rec.cgroup)->update(r);
    // Keep the config in the state in step, so later `exec`s and `events` see the new limits.
    auto& res = rec.config["linux"]["resources"];
    if (!res.is_object()) res = nlohmann::json::object();
    res.merge_patch(r);
    dir.write(rec);
    return 0;
}

}  // namespace trustme::container
