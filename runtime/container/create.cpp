// create / run / start: the parent side of container creation.
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <poll.h>
#include <spawn.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <span>

#include "runtime/container/child.hpp"
#include "runtime/container/container.hpp"
#include "runtime/container/image_root.hpp"
#include "hooks/hooks.hpp"
#include "runtime/container/lifecycle.hpp"
#include "oci/config.hpp"
#include "runtime/container/plugins.hpp"
#include "base/pages.hpp"
#include "base/error.hpp"
#include "base/files.hpp"
#include "base/log.hpp"
#include "base/procfs.hpp"
#include "runtime/cgroups/cgroups.hpp"
#include "runtime/process/idmap.hpp"
#include "runtime/process/checks.hpp"
#include "runtime/container/notify.hpp"
#include "runtime/process/init.hpp"
#include "runtime/process/rootfs.hpp"
#include "runtime/process/sync.hpp"
#include "runtime/security/security.hpp"
#include "runtime/state/state.hpp"
#include "runtime/volume/volume_plugin.h"
#include "signing/manifest.hpp"
#include "signing/policy.hpp"
#include "signing/verify_plugin.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace trustme::container {
namespace {

std::string abs_path(const std::string& p) {
    char buf[PATH_MAX];
    if (!::realpath(p.empty() ? "." : p.c_str(), buf)) fail_errno("bundle " + (p.empty() ? "." : p));
    return buf;
}

}  // namespace

void write_pid_file_at(const std::string& path, pid_t pid) {
    // runc writes the pid file via a temporary file + rename so a reader never sees a partial pid.
    std::string dir = ".", name = path;
    if (auto pos = path.find_last_of('/'); pos != std::string::npos) {
        dir = pos == 0 ? "/" : path.substr(0, pos);
        name = path.substr(pos + 1);
    }
    UniqueFd dfd(::open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!dfd) fail_errno("pid file directory " + dir);
    write_file_atomic(dfd.get(), name, std::to_string(pid), 0644);
}

namespace {

// newuidmap/newgidmap (the uidmap package: setuid helpers that allow the ranges /etc/subuid and
// /etc/subgid give the caller). Their complaint becomes our one line.
void run_idmap_helper(const char* helper, pid_t pid, const std::vector<oci::IdMapping>& maps, const char* field) {
    std::vector<std::string> args = {helper, std::to_string(pid)};
    for (auto& m : maps)
        for (uint32_t v : {m.container_id, m.host_id, m.size}) args.push_back(std::to_string(v));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (::pipe2(out, O_CLOEXEC) < 0) fail_errno(field);
    UniqueFd rd(out[0]), wr(out[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    pid_t child;
    int rc = ::posix_spawnp(&child, helper, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail(rc, std::string(field) + ": " + helper + " (install the uidmap package)");
    wr.reset();
    std::string err = read_all(rd.get(), helper, 4096);
    int st = 0;
    while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        while (!err.empty() && err.back() == '\n') err.pop_back();
        if (auto nl = err.find('\n'); nl != std::string::npos) err.resize(nl);
        fail(std::string(field) + ": " + helper + " refused the mapping" + (err.empty() ? "" : ": " + err));
    }
}

// As root, the maps are written directly. Unprivileged (rootless), only a mapping of our own id alone may
// be written directly, gid_map only after setgroups is denied (user_namespaces(7)); any other mapping goes
// through newuidmap/newgidmap.
void write_id_maps(pid_t pid, const oci::Linux& l) {
    const uid_t euid = ::geteuid();
    const gid_t egid = ::getegid();
    auto own = [](const std::vector<oci::IdMapping>& m, uint32_t id) {
        return m.size() == 1 && m[0].host_id == id && m[0].size == 1;
    };
    if (euid == 0 || own(l.uid_mappings, euid)) process::rootfs::write_id_map(pid, "uid_map", l.uid_mappings);
    else run_idmap_helper("newuidmap", pid, l.uid_mappings, "linux.uidMappings");
    if (euid == 0) {
        process::rootfs::write_id_map(pid, "gid_map", l.gid_mappings);
    } else if (own(l.gid_mappings, egid)) {
        procfs::write(std::to_string(pid) + "/setgroups", "deny");
        process::rootfs::write_id_map(pid, "gid_map", l.gid_mappings);
    } else {
        run_idmap_helper("newgidmap", pid, l.gid_mappings, "linux.gidMappings");
    }
}

// Joining namespaces by path happens in the parent around clone3 (so the child is created inside them and
// new namespaces are owned correctly), then the parent returns to its own namespaces.
class NsJoiner {
public:
    void join(int flag, const std::string& path) {
        UniqueFd target(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!target) fail_errno(std::string("linux.namespaces ") + oci::namespace_proc_name(flag) + " path " + path);
        std::string self = std::string("self/ns/") + (flag == CLONE_NEWPID    ? "pid_for_children"
                                                      : flag == CLONE_NEWTIME ? "time_for_children"
                                                                              : oci::namespace_proc_name(flag));
        UniqueFd orig(procfs::open_link(self, O_RDONLY));
        if (!orig) fail_errno("/proc/" + self);
        if (::setns(target.get(), flag) < 0)
            fail_errno(std::string("join ") + oci::namespace_proc_name(flag) + " namespace " + path);
        saved_.emplace_back(flag, std::move(orig));
    }
    void restore() {
        for (auto it = saved_.rbegin(); it != saved_.rend(); ++it)
            if (::setns(it->second.get(), it->first) < 0)
                fail_errno(std::string("return to own ") + oci::namespace_proc_name(it->first) + " namespace");
        saved_.clear();
    }
    ~NsJoiner() {
        try {
            restore();
        } catch (...) {
        }
    }

private:
    std::vector<std::pair<int, UniqueFd>> saved_;
};

bool has_volumes(const oci::Config& cfg) {
    for (auto& [k, v] : cfg.annotations)
        if (k.rfind("org.trustme.volume.", 0) == 0) return true;
    return false;
}

// Without a mount namespace the container is a chroot into root.path: runc and crun accept such a config,
// but runc still makes its mounts (and the rootfs bind) in the host's mount namespace, where they outlive
// the container. Here whatever needs a mount is refused instead.
void check_without_mount_ns(const oci::Config& cfg, const std::string& origin) {
    const char* what = !cfg.mounts.empty() ? "mounts"
                       : !cfg.linux_.masked_paths.empty() || !cfg.linux_.readonly_paths.empty()
                           ? "linux.maskedPaths/readonlyPaths"
                       : cfg.root_readonly                                             ? "root.readonly"
                       : !cfg.linux_.rootfs_propagation.empty()                        ? "linux.rootfsPropagation"
                       : has_volumes(cfg)                                              ? "volumes"
                       : cfg.linux_.find(CLONE_NEWUSER) && !cfg.linux_.devices.empty() ? "linux.devices"
                                                                                       : nullptr;
    if (what) fail(origin + ": " + what + ": needs a mount namespace (linux.namespaces has no \"mount\")");
}

// On cgroup v1 with real-time group scheduling a new cgroup gets cpu.rt_runtime_us 0, and sched_setattr
// of SCHED_FIFO/SCHED_RR then fails with EPERM for every task in it (kernel
// Documentation/scheduler/sched-rt-group.rst). Say which setting is missing instead of a bare EPERM.
void check_rt_budget(const oci::Process& proc, cgroups::Manager& cg, const std::string& origin) {
    if (!proc.scheduler.is_object() || cg.mode() != cgroups::Mode::Legacy) return;
    std::string policy = proc.scheduler.value("policy", "");
    if (policy != "SCHED_FIFO" && policy != "SCHED_RR") return;
    std::string dir = cg.dir("cpu");
    if (dir.empty() || !path_exists(dir + "/cpu.rt_runtime_us")) return;
    if (std::atoll(read_file(dir + "/cpu.rt_runtime_us").c_str()) > 0) return;
    fail(origin + ": process.scheduler: " + policy + " needs a real-time budget, and the container's cgroup " + dir +
         " has cpu.rt_runtime_us 0: set linux.resources.cpu.realtimeRuntime (its parent cgroups need a budget too)");
}

// systemd socket activation, as runc passes it on (utils_linux.go, go-systemd activation.Files): with
// LISTEN_PID naming this process and LISTEN_FDS=N, fds 3..3+N-1 go to the container ahead of the
// --preserve-fds ones, and its environment gets LISTEN_FDS=N and LISTEN_PID=1.
int listen_fds() {
    const char* n = ::getenv("LISTEN_FDS");
    const char* p = ::getenv("LISTEN_PID");
    if (!n || !*n || !p || std::atol(p) != ::getpid()) return 0;
    char* end;
    long v = std::strtol(n, &end, 10);
    return *end || v <= 0 || v > (1 << 16) ? 0 : static_cast<int>(v);
}

}  // namespace

Created::~Created() { abort(); }

bool rootless(const Globals& g) {
    if (g.rootless == "true") return true;
    if (g.rootless == "false") return false;
    if (::geteuid() != 0) return true;
    // Root, but of a user namespace that is not the host's (rootless podman runs us so). Read only where a
    // decision needs it, never on the rootful start path.
    return !procfs::initial_user_ns();
}

namespace {

// What `create` takes from the bundle before anything is verified or made.
struct Bundle {
    UniqueFd fd;
    std::string config_text;  // config.json as read: what a signature covers
    std::string origin;       // "<bundle>/config.json", the start of errors about the config
    bool mount_ns = false;    // linux.namespaces has "mount"
    int listen_fds = 0;       // systemd socket activation fds passed on (listen_fds())
};

// 0. The config, parsed and checked; the process's security settings compiled; root.path opened.
Bundle read_bundle(const Globals& g, const CreateOpts& o, Created& c) {
    Bundle bundle;
    c.bundle = abs_path(o.bundle);
    bundle.fd.reset(::open(c.bundle.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!bundle.fd) fail_errno("bundle " + c.bundle);
    bundle.origin = c.bundle + "/config.json";
    bundle.config_text = read_file_at(bundle.fd.get(), "config.json", bundle.origin, oci::kMaxConfigBytes);
    c.cfg = std::make_unique<oci::Config>(oci::parse_config(bundle.config_text, bundle.origin));
    oci::Config& cfg = *c.cfg;
    if (!cfg.process) fail(bundle.origin + ": process: required to create a container");
    if (has_volumes(cfg)) plugins::require_loadable();  // the volume plugin is needed after side effects
    try {
        cgroups::validate(cfg.linux_.resources);
        process::checks::sysctls(cfg);
        process::checks::proc_mounts(cfg);
        security::validate_process_extras(cfg.raw.value("process", nlohmann::json()),
                                          cfg.raw.value("linux", nlohmann::json()));
        c.caps = security::parse_capabilities(cfg.process->capabilities);
        // Compiled profiles are cached (Globals::cache_dir: owned by us, mode 0700, checked by the cache):
        // libseccomp takes 25-110 ms for an engine's default profile, a cache hit ~0.1 ms.
        c.seccomp = security::compile_seccomp_cached(cfg.linux_.seccomp, g.seccomp_cache());
    } catch (const Error& e) {
        fail(bundle.origin + ": " + e.what());
    }
    c.rootfs = cfg.root_path[0] == '/' ? cfg.root_path : c.bundle + "/" + cfg.root_path;
    // runc refuses a root.path with a symlink in it ("invalid rootfs: not an absolute path, or a symlink"),
    // crun follows it; we refuse, in the same one lookup that opens it (the bundle itself is resolved).
    struct open_how how {};
    how.flags = O_DIRECTORY | O_RDONLY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    c.rootfs_fd.reset(static_cast<int>(::syscall(SYS_openat2, cfg.root_path[0] == '/' ? AT_FDCWD : bundle.fd.get(),
                                                 cfg.root_path.c_str(), &how, sizeof how)));
    if (!c.rootfs_fd && errno == ELOOP)
        fail(bundle.origin + ": root.path " + c.rootfs + ": invalid rootfs: not an absolute path, or a symlink");
    if (!c.rootfs_fd) fail_errno(bundle.origin + ": root.path " + c.rootfs);
    bundle.mount_ns = cfg.linux_.find(CLONE_NEWNS) != nullptr;
    if (!bundle.mount_ns) check_without_mount_ns(cfg, bundle.origin);
    bundle.listen_fds = listen_fds();
    if (bundle.listen_fds) {
        auto& env = cfg.process->env;
        std::erase_if(
            env, [](const std::string& e) { return e.rfind("LISTEN_FDS=", 0) == 0 || e.rfind("LISTEN_PID=", 0) == 0; });
        env.push_back("LISTEN_FDS=" + std::to_string(bundle.listen_fds));
        env.push_back("LISTEN_PID=1");
    }
    return bundle;
}

struct Trust {
    signing::policy::Policy policy;
    std::optional<signing::Image> image;  // the signed rootfs is a dm-verity image (image_root.hpp)
};

// 1. Trust: verify before anything is mounted or cloned (docs/signing.md).
Trust verify_bundle(const Globals& g, Created& c, const Bundle& bundle) {
    oci::Config& cfg = *c.cfg;
    // org.trustme.verified.* are ours to set: a bundle author must not be able to forge them (the
    // attestation hook records them as verified).
    for (auto it = cfg.annotations.begin(); it != cfg.annotations.end();)
        it = it->first.rfind("org.trustme.verified.", 0) == 0 ? cfg.annotations.erase(it) : std::next(it);
    Trust trust{signing::policy::load(g.policy), std::nullopt};
    const signing::policy::Policy& pol = trust.policy;
    // What needs root of the host is refused before anything is made: the system TPM (measuring) and
    // device-mapper with loop devices (volumes) are not a rootless container's to use.
    if ((pol.attestation || has_volumes(cfg)) && rootless(g)) {
        if (pol.attestation)
            fail("policy " + pol.path +
                 ": attestation: measuring into the TPM needs root of the host; "
                 "a rootless container cannot be measured");
        fail(bundle.origin +
             ": annotations org.trustme.volume.*: TPM-sealed volumes need root of the host "
             "(device-mapper, loop devices); a rootless container cannot have them");
    }
    if (pol.signature != signing::policy::SignatureMode::Off) {
        trustme_verify_request req{TRUSTME_VERIFY_ABI,       pol.path.c_str(),  c.bundle.c_str(),
                                   bundle.fd.get(),          c.rootfs_fd.get(), bundle.config_text.data(),
                                   bundle.config_text.size()};
        trustme_verify_result res = plugins::verify_bundle(pol, req);
        if (std::strcmp(res.location, "none") != 0) {
            cfg.annotations["org.trustme.verified.manifest"] = res.manifest_digest;
            cfg.annotations["org.trustme.verified.config"] = res.config_digest;
            cfg.annotations["org.trustme.verified.signer"] = res.signer_subject;
        }
        if (res.image[0]) {
            std::string why;
            trust.image = signing::parse_image_line(res.image, &why);
            if (!trust.image) fail(c.bundle + "/" + signing::kBundleManifest + ": " + why);
            const char* need = !bundle.mount_ns ? "a mount namespace" : rootless(g) ? "root of the host" : nullptr;
            if (need)
                fail(bundle.origin + ": the rootfs is the dm-verity image " + trust.image->file + ", which needs " +
                     need);
            plugins::require_loadable();  // the volume plugin opens it, after side effects
        }
    }
    if (pol.attestation) {
        // Measuring before the container process starts is the point: a createRuntime hook, first in line.
        oci::Hook h;
        h.path = plugins::exe_dir() + "/trustme-attest";
        h.args = {"trustme-attest", "hook", "measure"};
        if (!pol.path.empty()) {
            h.args.push_back("--policy");
            h.args.push_back(pol.path);
        }
        cfg.hooks.create_runtime.insert(cfg.hooks.create_runtime.begin(), h);
    }
    return trust;
}

// 2. State directory and cgroup, undone by Created::abort from here on.
// The cgroup manager touches nothing on disk yet; it comes first so that the record, with its cgroup,
// is in the state directory from the moment the directory exists: a directory without our record is
// never ours (another runtime sharing --root makes its directory before its state.json).
void make_state_and_cgroup(const Globals& g, const CreateOpts& o, Created& c, const std::string& origin) {
    oci::Config& cfg = *c.cfg;
    c.cg = cgroups::Manager::create(cfg.linux_.cgroups_path, o.id,
                                    {g.systemd_cgroup, &cfg.annotations, g.systemd_cgroup && rootless(g)});
    c.dir = std::make_unique<state::ContainerDir>(state::ContainerDir::create(g.root, o.id));
    c.rec.st.id = o.id;
    c.rec.st.bundle = c.bundle;
    c.rec.st.rootfs = c.rootfs;
    c.rec.st.created = state::now_rfc3339();
    c.rec.st.owner =
        std::to_string(::getuid());  // a uid; resolved to a name only by state/list (no NSS on the start path)
    c.rec.st.annotations = cfg.annotations;
    c.rec.config = cfg.raw;
    c.armed = true;
    c.rec.cgroup = c.cg->save();
    c.dir->write(c.rec);  // from here on, delete --force finds the cgroup even if we crash
    notify::setup_spec(cfg, *c.dir);
    try {
        c.cg->create_dirs();
    } catch (const Error& e) {
        // Rootless without a delegated cgroup: none at all, as runc's rootless manager (permission errors
        // ignored); limits that need one are refused by name.
        if (!rootless(g)) throw;
        if (auto field = cgroups::first_setting(cfg.linux_.resources); !field.empty())
            fail(origin + ": linux.resources." + field + ": needs a cgroup, and none could be made (" + e.what() + ")");
        c.cg = cgroups::Manager::none();
        c.rec.cgroup = c.cg->save();
        c.dir->write(c.rec);
    }
    c.cg->apply(cfg.linux_.resources);
    check_rt_budget(*cfg.process, *c.cg, origin);
}

// The init's ends of the two fifos in the state directory: `start` writes the exec fifo to release it;
// the exec status fifo is its way back to `start`: closed by its exec (EOF: the program runs), or the
// reason it will not.
struct StartFifos {
    UniqueFd start, status;
};

StartFifos make_start_fifos(const state::ContainerDir& dir) {
    StartFifos fifos;
    if (::mkfifoat(dir.fd(), "exec.fifo", 0600) < 0) fail_errno("create exec fifo");
    fifos.start.reset(::openat(dir.fd(), "exec.fifo", O_RDWR | O_CLOEXEC));
    if (!fifos.start) fail_errno("open exec fifo");
    if (::mkfifoat(dir.fd(), "exec.status", 0600) < 0) fail_errno("create exec status fifo");
    fifos.status.reset(::openat(dir.fd(), "exec.status", O_RDWR | O_CLOEXEC));
    if (!fifos.status) fail_errno("open exec status fifo");
    return fifos;
}

// The TPM-sealed volumes of the annotations, opened by the volume plugin and mounted here, in the
// runtime's namespaces, as detached mounts (kept in c.volume_mounts) that only the child attaches: the
// container never needs access to the dm device (its device cgroup would rightly refuse it).
std::vector<oci::Mount> open_volumes(const CreateOpts& o, Created& c, const signing::policy::Policy& pol) {
    std::vector<oci::Mount> volume_mounts;
    c.rec.volumes = true;
    c.dir->write(c.rec);
    auto open_fn = reinterpret_cast<decltype(&trustme_volumes_open)>(plugins::volume_symbol("trustme_volumes_open"));
    std::string ann = nlohmann::json(c.cfg->annotations).dump();
    trustme_volume_request req{TRUSTME_VOLUME_ABI, o.id.c_str(), ann.c_str(), pol.path.c_str(), c.dir->path().c_str()};
    trustme_volume_mount mounts[16];
    size_t count = 0;
    trustme_volume_error err{};
    plugins::volume_check(open_fn(&req, mounts, 16, &count, &err), err, "volume open failed");
    for (const trustme_volume_mount& volume : std::span(mounts, count)) {
        std::string what = std::string("volume ") + volume.name + " (" + volume.device + ")";
        UniqueFd fs(::fsopen(volume.fstype, FSOPEN_CLOEXEC));
        if (!fs) fail_errno(what + ": fsopen " + volume.fstype);
        if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, "source", volume.device, 0) < 0 ||
            (volume.readonly && ::fsconfig(fs.get(), FSCONFIG_SET_FLAG, "ro", nullptr, 0) < 0) ||
            ::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0)
            fail_errno(what + ": mount");
        unsigned attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (volume.readonly ? MOUNT_ATTR_RDONLY : 0);
        UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, attrs));
        if (!mnt) fail_errno(what + ": fsmount");
        oci::Mount m;
        m.destination = volume.destination;
        m.type = volume.fstype;
        m.source = volume.device;
        m.detached_fd = mnt.get();
        c.volume_mounts.push_back(std::move(mnt));
        volume_mounts.push_back(m);
    }
    return volume_mounts;
}

// linux.namespaces sorted by when each is made or joined.
struct Namespaces {
    uint64_t clone_flags = 0;  // made by clone3
    int late = 0;              // made by the child: cgroup after the parent has put it in its cgroup, time before exec
    UniqueFd userns;           // a user namespace joined by path: by the child, first thing after Go
    NsJoiner joined;           // the others joined by path: by us, around clone3
};

void enter_namespaces(const oci::Config& cfg, const std::string& origin, Namespaces& ns) {
    for (auto& entry : cfg.linux_.namespaces) {
        if (entry.flag == CLONE_NEWUSER && !entry.path.empty()) {
            ns.userns.reset(::open(entry.path.c_str(), O_RDONLY | O_CLOEXEC));
            if (!ns.userns) fail_errno("linux.namespaces user path " + entry.path);
        } else if (!entry.path.empty()) {
            ns.joined.join(entry.flag, entry.path);
        } else if (entry.flag == CLONE_NEWCGROUP || entry.flag == CLONE_NEWTIME) {
            ns.late |= entry.flag;
        } else {
            ns.clone_flags |= static_cast<uint64_t>(entry.flag);
        }
    }
    if (ns.userns && (ns.clone_flags & CLONE_NEWPID))
        fail(origin + ": linux.namespaces: a new pid namespace with a user namespace joined by path is not supported");
}

// What the init is handed besides what `c` holds; the fds in it stay ours until the clone.
struct InitInputs {
    const Bundle& bundle;
    StartFifos fifos;
    std::vector<oci::Mount> volume_mounts;
    bool parent_clones;  // ours to clone: the rootfs tree, the null device for maskedPaths (else the init's)
};

process::InitConfig init_config(const CreateOpts& o, Created& c, InitInputs& in, const Namespaces& ns, int dev_null,
                                int sync_fd) {
    process::InitConfig ic;
    ic.cfg = c.cfg.get();
    ic.proc = &*c.cfg->process;
    ic.id = o.id;
    ic.bundle = c.bundle;
    ic.rootfs_path = c.rootfs;
    // No mount namespace: chroot into the directory. Rootless: the init clones it
    // (process::rootfs::Plan::rootfs_is_dir).
    ic.rootfs_fd = in.bundle.mount_ns && c.rootfs_tree ? c.rootfs_tree.get() : c.rootfs_fd.get();
    ic.rootfs_is_dir = in.bundle.mount_ns && !c.rootfs_tree;
    ic.sync_fd = sync_fd;
    ic.start_fd = in.fifos.start.get();
    ic.status_fd = in.fifos.status.get();
    ic.no_pivot = o.no_pivot;
    ic.no_new_keyring = o.no_new_keyring;
    ic.preserve_fds = in.bundle.listen_fds + o.preserve_fds;
    ic.new_netns = (ns.clone_flags & CLONE_NEWNET) != 0;
    ic.userns_fd = ns.userns.get();
    ic.dev_null_fd = dev_null;
    ic.new_ns_late = ns.late;
    ic.seccomp = &c.seccomp;
    ic.caps = c.caps;
    ic.extra_mounts = std::move(in.volume_mounts);
    return ic;
}

// The clone's child: it never returns here, and nothing unwinds from it into our cleanup.
[[noreturn]] void become_init(const pages::Runs& present, SetupPeer& peer, process::InitConfig& ic) noexcept {
    pages::populate(present);
    peer.enter_child();
    process::container_init(ic);
}

// 3. Namespaces and the child: returns once the init is in its namespaces and waits for Go.
void clone_init(const CreateOpts& o, Created& c, InitInputs in, SetupPeer& peer) {
    const oci::Config& cfg = *c.cfg;
    // Before any namespace is joined: the procfs handle the init inherits (base/procfs.hpp) and
    // the null device that masks files.
    if (procfs::root() < 0) fail_errno("open /proc (a procfs is needed)");
    UniqueFd dev_null;  // else the init clones it
    if (!cfg.linux_.masked_paths.empty() && in.parent_clones) dev_null = process::rootfs::clone_dev_null();
    Namespaces ns;
    enter_namespaces(cfg, in.bundle.origin, ns);
    process::InitConfig ic = init_config(o, c, in, ns, dev_null.get(), peer.child_end());

    // fork does not copy the page table entries of file mappings: the child would fault again on every page
    // of our text it runs. It maps the ones we have in one call per run instead (base/pages.hpp).
    const pages::Runs present = pages::present_exe_pages();
    int pidfd = -1;
    // Blocked before the clone so none is lost (the child clears its mask), and not earlier: nothing
    // before this point may run deaf to SIGTERM/SIGINT while it reads the bundle.
    if (c.block_at_clone) ::sigprocmask(SIG_BLOCK, c.block_at_clone, nullptr);
    pid_t pid = process::clone_with_pidfd(ns.clone_flags, &pidfd);
    if (pid < 0) fail_errno("clone3");
    if (pid == 0) become_init(present, peer, ic);
    c.pid = pid;
    c.pidfd.reset(pidfd);
    // The child holds the volume mounts and the rootfs tree now; ours would keep the filesystems busy at delete.
    c.volume_mounts.clear();
    c.rootfs_tree.reset();
    ns.joined.restore();
    peer.close_child_end();
    in.fifos = {};  // only the child holds the fifos now: `start` can tell whether it is still waiting

    if (cfg.linux_.find(CLONE_NEWUSER) && !ns.userns) write_id_maps(pid, cfg.linux_);
    c.cg->add_process(pid);
    if (cfg.process->oom_score_adj)
        procfs::write(std::to_string(pid) + "/oom_score_adj", std::to_string(*cfg.process->oom_score_adj));
    c.rec.st.pid = pid;
}

// 4. The init's setup, answered until it is ready: hooks in the runtime's namespaces, its pty, its
// seccomp listener.
void serve_init(const CreateOpts& o, Created& c, const SetupPeer& peer) {
    const oci::Config& cfg = *c.cfg;
    auto creating = [&] {
        oci::State st = c.rec.st;
        st.status = "creating";
        return st;
    };
    peer.tell(process::sync::Msg::Go, std::to_string(c.pid));
    peer.serve({
        .hooks =
            [&] {
                oci::State st = creating();
                st.annotations = cfg.annotations;
                std::string state_json = oci::hook_state(st).dump();
                // runtime.md: prestart (deprecated) and createRuntime run in the runtime namespace; a failure
                // stops creation and the runtime deletes what it made.
                hooks::run_all(cfg.hooks.prestart, state_json, "prestart");
                hooks::run_all(cfg.hooks.create_runtime, state_json, "createRuntime");
            },
        .console =
            [&](UniqueFd master, const std::string& pty_name) {
                if (!o.console_socket.empty()) send_console_fd(o.console_socket, master.get(), pty_name);
                else if (o.detach || !c.foreground) fail("process.terminal is true: --console-socket is required");
                else c.console = std::move(master);
            },
        .seccomp =
            [&](UniqueFd listener) {
                security::send_seccomp_listener(c.seccomp, listener.get(), oci::hook_state(creating()));
            },
    });
}

}  // namespace

void do_create(const Globals& g, const CreateOpts& o, Created& c) {
    if (!oci::valid_id(o.id)) oci::invalid_id(o.id);
    if (g.systemd_cgroup) plugins::use_systemd();
    Bundle bundle = read_bundle(g, o, c);
    Trust trust = verify_bundle(g, c, bundle);
    oci::Config& cfg = *c.cfg;

    // What was verified is what gets mounted: a detached clone of the verified directory fd.
    // Unprivileged (rootless), the clone is made by the init in its own mount namespace instead, and
    // checked there to be this same directory (process::rootfs::Plan::rootfs_is_dir): we may not clone here.
    const bool parent_clones = ::geteuid() == 0 && g.rootless != "true";
    if (parent_clones && !trust.image)
        c.rootfs_tree = process::rootfs::clone_tree(c.rootfs_fd.get(), c.rootfs, cfg.linux_.rootfs_propagation);

    make_state_and_cgroup(g, o, c, bundle.origin);
    StartFifos fifos = make_start_fifos(*c.dir);
    std::vector<oci::Mount> volume_mounts;
    if (has_volumes(cfg)) volume_mounts = open_volumes(o, c, trust.policy);
    if (trust.image) {
        c.rec.volumes = true;  // close_volumes undoes the mapping with the volumes'
        c.dir->write(c.rec);
        c.rootfs_tree =
            open_image_root({&*trust.image, bundle.fd.get(), c.bundle, o.id, c.dir->path(), cfg.root_readonly});
    }
    // Idmapped binds are made here, where we are privileged over the filesystems (runtime/process/idmap.hpp).
    process::rootfs::prepare_idmapped_mounts(cfg, c.bundle, c.volume_mounts);

    SetupPeer peer({"container init exited during setup", "", "container init: unexpected message"});
    clone_init(o, c, {bundle, std::move(fifos), std::move(volume_mounts), parent_clones}, peer);
    serve_init(o, c, peer);

    c.rec.pid_start = state::proc_info(c.pid).start;
    c.rec.created = true;
    c.dir->write(c.rec);
    if (!o.pid_file.empty()) write_pid_file_at(o.pid_file, c.pid);
}

void Created::abort() noexcept {
    if (!armed) return;
    armed = false;
    try {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
            }
        }
        if (cg) cg->destroy();
        if (rec.volumes) close_volumes(rec.st.id, dir->path());
        if (dir) {
            notify::remove(*dir);
            dir->remove();
        }
    } catch (const std::exception& e) {
        log::warn(std::string("cleanup after failed create: ") + e.what());
    }
}

int create(const Globals& g, const CreateOpts& o) {
    Created c;
    do_create(g, o, c);
    c.armed = false;  // made: `start` or `delete` takes it from here
    return 0;
}

UniqueFd release_init(const state::ContainerDir& dir, const std::string& id) {
    // Open the status fifo's read end first: whatever the init writes there after our byte stays buffered
    // until we read it (a fifo's data goes when the last fd on it closes).
    UniqueFd status(::openat(dir.fd(), "exec.status", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    UniqueFd f(::openat(dir.fd(), "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (!f) {
        if (errno == ENXIO) fail("container \"" + id + "\": init is no longer waiting to start");
        fail_errno("open exec fifo of \"" + id + "\"");
    }
    if (::write(f.get(), "0", 1) != 1) fail_errno("start \"" + id + "\"");
    ::unlinkat(dir.fd(), "exec.fifo", 0);
    ::unlinkat(dir.fd(), "exec.status", 0);
    return status;
}

void await_exec(UniqueFd status, const std::string& id) {
    // runtime.md: "If any startContainer hook fails, the runtime MUST generate an error, stop the container".
    // runc and crun return from start before the init runs those hooks and cannot report it; we wait until
    // the init's exec closes its end (EOF), or read why it did not exec (a failed hook, a failed execve).
    if (!status) return;
    ::fcntl(status.get(), F_SETFL, 0);
    std::string why = read_all(status.get(), "exec status of \"" + id + "\"");
    if (!why.empty()) fail("container \"" + id + "\" did not start: " + why);
}

void run_poststart(const state::Record& r, const std::string& status) {
    auto it = r.config.find("hooks");
    if (it == r.config.end() || !it->contains("poststart")) return;
    oci::State st = r.st;
    st.status = status;
    std::string sj = oci::hook_state(st).dump();
    std::vector<oci::Hook> hooks;
    size_t i = 0;
    for (auto& h : (*it)["poststart"])
        hooks.push_back(oci::parse_hook(h, "state.json", "hooks.poststart[" + std::to_string(i++) + "]"));
    hooks::run_all_warn(hooks, sj, "poststart");
}

namespace {
// The init told why it did not exec and is on its way out: it is gone before `start` returns, so the
// caller's next command (`delete` without --force) finds the container stopped. runtime.md: when a
// startContainer hook fails the runtime "MUST generate an error, stop the container".
void stop_init(const state::Record& rec) {
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, rec.st.pid, 0)));
    if (!pidfd || state::proc_info(rec.st.pid).start != rec.pid_start) return;  // gone, or the pid was reused
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
    struct pollfd p = {pidfd.get(), POLLIN, 0};
    while (::poll(&p, 1, 10000) < 0 && errno == EINTR) {
    }
}
}  // namespace

int start(const Globals& g, const std::string& id) {
    auto dir = state::ContainerDir::open(g.root, id);
    auto rec = dir.read();
    std::string status = state::status_of(rec, dir);
    if (status != "created") fail("cannot start container \"" + id + "\": it is " + status + ", not created");
    UniqueFd ready = notify::bind(dir);  // before the program can send to it
    UniqueFd st = release_init(dir, id);
    dir.unlock();  // state, kill and delete stay usable while startContainer hooks run
    try {
        await_exec(std::move(st), id);
    } catch (const Error&) {
        stop_init(rec);
        throw;
    }
    run_poststart(rec, "running");  // after the program was executed (runtime.md)
    notify::forward(ready.get(), rec.st.pid, rec.pid_start);
    return 0;
}

}  // namespace trustme::container
