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
        auto gid = colon == std::string::npos ? std::optional<uint32_t>(p.user.gid) : parse_decimal<uint32_t>(user.substr(colon + 1));
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

}  // namespace

int exec(const Globals& g, const ExecOpts& o) {
    Running r = open_running(g, o.id, "exec");
    if (r.status == "paused") fail("exec: container \"" + o.id + "\" is paused");
    oci::Config cfg = oci::parse_config(r.rec.config.dump(), r.rec.st.bundle + "/config.json");
    oci::Process proc = exec_process_spec(o, cfg);
    security::Capabilities caps = security::parse_capabilities(proc.capabilities);
    security::SeccompProgram seccomp = security::compile_seccomp_cached(cfg.linux_.seccomp, g.seccomp_cache());

    UniqueFd cpid(static_cast<int>(::syscall(SYS_pidfd_open, r.rec.st.pid, 0)));
    if (!cpid || state::proc_info(r.rec.st.pid).start != r.rec.pid_start)
        fail("exec: container \"" + o.id + "\" is not running");
    int ns_flags = 0;
    for (auto& ns : cfg.linux_.namespaces)
        if (ns.flag != CLONE_NEWPID) ns_flags |= ns.flag;
    bool pidns = cfg.linux_.find(CLONE_NEWPID) != nullptr;

    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) fail_errno(errno, "socketpair");
    UniqueFd parent_sock(sp[0]), child_sock(sp[1]);

    process::InitConfig ic;
    ic.cfg = &cfg;
    ic.proc = &proc;
    ic.id = o.id;
    ic.bundle = r.rec.st.bundle;
    ic.sync_fd = child_sock.get();
    ic.preserve_fds = o.preserve_fds;
    ic.seccomp = &seccomp;
    ic.caps = caps;
    ic.is_exec = true;

    // The procfs handle the child inherits: opened here, in the runtime's own mount namespace, so the
    // child never looks at the container's /proc (base/procfs.hpp).
    if (procfs::root() < 0) fail_errno(errno, "exec: open /proc (a procfs is needed)");
    // Enter the container's pid namespace for our children only, clone, and come back.
    UniqueFd own_pidns, their_pidns;
    bool from_inside = false;  // rootless: a first child enters and makes the process (exec_init_from_inside)
    if (pidns) {
        own_pidns.reset(procfs::open_link("self/ns/pid", O_RDONLY));
        their_pidns.reset(procfs::open_link(std::to_string(r.rec.st.pid) + "/ns/pid", O_RDONLY));
        if (!own_pidns || !their_pidns || ::setns(their_pidns.get(), CLONE_NEWPID) < 0) {
            // Its pid namespace belongs to the container's user namespace, which we are not in.
            if (!(errno == EPERM && cfg.linux_.find(CLONE_NEWUSER)))
                fail_errno(errno, "exec: enter the container's pid namespace");
            from_inside = true;
            pidns = false;
        }
    }
    struct clone_args args {};
    int pidfd = -1;
    args.flags = CLONE_PIDFD;
    args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    // Forwarded signals are blocked before the clone so none is lost; the child clears its mask.
    sigset_t fwd;
    sigfillset(&fwd);
    for (int s : {SIGKILL, SIGSTOP, SIGCHLD, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS}) sigdelset(&fwd, s);
    if (!o.detach) ::sigprocmask(SIG_BLOCK, &fwd, nullptr);
    pid_t pid = static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
    if (pid == 0) {
        parent_sock.reset();
        if (from_inside) process::exec_init_from_inside(ic, cpid.get(), ns_flags);
        process::exec_init(ic, cpid.get(), ns_flags);
    }
    int clone_errno = errno;
    if (pidns) ::setns(own_pidns.get(), CLONE_NEWPID);
    if (pid < 0) fail_errno(clone_errno, "exec: clone3");
    UniqueFd child_pidfd(pidfd);
    child_sock.reset();
    if (from_inside) {
        // The first child's only message is the process it made (our child too: CLONE_PARENT), or why not.
        process::sync::Packet p;
        bool got = process::sync::recv(parent_sock.get(), p);
        UniqueFd made = std::move(p.fd);
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        if (!got) fail("exec: the process exited during setup");
        if (p.type == process::sync::Msg::Error) throw Error("exec: " + p.text, p.code);
        if (p.type != process::sync::Msg::Pid || !made) fail("exec: unexpected message from the process");
        auto n = parse_decimal<pid_t>(p.text);
        if (!n) fail("exec: the process sent a malformed pid");
        pid = *n;
        child_pidfd = std::move(made);
    }
    auto kill_child = [&] {
        ::syscall(SYS_pidfd_send_signal, child_pidfd.get(), SIGKILL, nullptr, 0);
        ::waitpid(pid, nullptr, 0);
    };
    UniqueFd master;
    try {
        if (!r.rec.cgroup.is_null()) cgroups::Manager::load(r.rec.cgroup)->add_process(pid);
        if (proc.oom_score_adj)
            procfs::write(std::to_string(pid) + "/oom_score_adj", std::to_string(*proc.oom_score_adj));
        process::sync::send(parent_sock.get(), process::sync::Msg::Go, std::to_string(r.rec.st.pid));
        for (bool ready = false; !ready;) {
            process::sync::Packet p;
            if (!process::sync::recv(parent_sock.get(), p)) fail("exec: the process exited during setup");
            UniqueFd pfd = std::move(p.fd);
            switch (p.type) {
                case process::sync::Msg::ConsoleFd:
                    if (!o.console_socket.empty()) {
                        send_console_fd(o.console_socket, pfd.get(), p.text);
                    } else if (o.detach) {
                        fail("exec: --tty with --detach needs --console-socket");
                    } else {
                        master = std::move(pfd);
                    }
                    break;
                case process::sync::Msg::SeccompFd: {
                    oci::State st = r.rec.st;
                    st.status = r.status;
                    security::send_seccomp_listener(seccomp, pfd.get(), oci::hook_state(st));
                    break;
                }
                case process::sync::Msg::Error:
                    throw Error("exec: " + p.text, p.code);
                case process::sync::Msg::Ready:
                    ready = true;
                    break;
                default:
                    fail("exec: unexpected message from the process");
            }
        }
        if (!o.pid_file.empty()) write_pid_file_at(o.pid_file, pid);
    } catch (...) {
        kill_child();
        throw;
    }
    if (o.detach) return 0;
    UniqueFd sigfd(::signalfd(-1, &fwd, SFD_CLOEXEC | SFD_NONBLOCK));
    return wait_foreground(pid, child_pidfd.get(), master.get(), sigfd.get());
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
    if (!f) fail_errno(errno, "ps: run ps");
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
        if (static_cast<int>(cols.size()) > pid_col && want.count(std::atoi(cols[pid_col].c_str()))) std::fputs(line, stdout);
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
        nlohmann::json data = rec.cgroup.is_null() ? nlohmann::json::object() : cgroups::Manager::load(rec.cgroup)->stats();
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
