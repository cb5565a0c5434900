// trustme-runtime: runc's command line over the lifecycle library. Help texts here are the source the
// man pages in man/ follow (tests/cli checks that every flag of --help is documented there).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "runtime/cli/args.hpp"
#include "oci/config.hpp"
#include "oci/spec.hpp"
#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "base/log.hpp"
#include "base/procfs.hpp"
#include "base/version.hpp"
#include "base/strings.hpp"
#include "runtime/container/container.hpp"
#include "base/pages.hpp"
#include "runtime/container/plugins.hpp"
#include "runtime/security/security.hpp"
#include "runtime/volume/volume_plugin.h"
#include "runtime/cli/selfexe.hpp"

namespace trustme::cli {
namespace {

using container::Globals;

const std::vector<Flag> kGlobal = {
    {"root", 0, "DIR",
     "state directory, made with its parents if missing (default /run/trustme-runtime; rootless: "
     "$XDG_RUNTIME_DIR/trustme-runtime)"},
    {"log", 0, "FILE", "write log lines to FILE instead of stderr (one that cannot be opened: exit 1)"},
    {"log-format", 0, "text|json", "log line format (default text); engines use json"},
    {"debug", 0, nullptr, "log debug messages"},
    {"systemd-cgroup", 0, nullptr,
     "use the systemd cgroup driver: a transient unit per container (cgroupsPath \"slice:prefix:name\")"},
    {"policy", 0, "FILE",
     "trust policy (default $TRUSTME_POLICY, then /etc/trustme/policy.json; rootless: "
     "$XDG_CONFIG_HOME/trustme/policy.json)"},
    {"criu", 0, "PATH", "accepted for runc compatibility; checkpoint/restore is not supported"},
    {"rootless", 0, "true|false|auto",
     "rootless mode: no cgroup unless delegated (default auto: when not root, or root of a user namespace)"},
    {"version", 'v', nullptr, "print the version"},
    {"help", 'h', nullptr, "show help"},
};

struct Command {
    const char* name;
    const char* args;  // positional usage
    const char* summary;
    std::vector<Flag> flags;
    int (*run)(const Globals&, const Args&);
};

// Every command that takes an id comes through here: the id is checked before any path is made of it
// (state::ContainerDir checks again).
// `update --resources -` of a systemd-driven container: the static runtime hands the command to its
// dynamically linked twin (container::plugins::require_loadable), which parses the same arguments and reads standard
// input again. Put what was read back there, as a memfd at offset 0, so the twin reads the same text.
void put_back_stdin(const std::string& text) {
    UniqueFd mem(::memfd_create("trustme-resources", MFD_CLOEXEC));
    if (!mem) fail_errno("--resources -: memfd_create");
    for (size_t off = 0; off < text.size();) {
        ssize_t n = ::write(mem.get(), text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_errno("--resources -: write memfd");
        off += static_cast<size_t>(n);
    }
    if (::lseek(mem.get(), 0, SEEK_SET) != 0 || ::dup2(mem.get(), 0) < 0) fail_errno("--resources -: standard input");
}

std::string need_id(const Args& a, const char* cmd) {
    if (a.positional.empty()) fail(std::string(cmd) + ": container id required");
    if (!oci::valid_id(a.positional[0])) oci::invalid_id(a.positional[0]);
    return a.positional[0];
}

int int_flag(const Args& a, const char* name, int def) {
    std::string v = a.get(name);
    if (v.empty()) return def;
    char* end;
    long n = std::strtol(v.c_str(), &end, 10);
    if (*end || n < 0 || n > 1 << 20) fail(std::string("--") + name + ": invalid number \"" + v + "\"");
    return static_cast<int>(n);
}

container::CreateOpts create_opts(const Args& a, const char* cmd) {
    container::CreateOpts o;
    o.id = need_id(a, cmd);
    o.bundle = a.get("bundle");
    o.pid_file = a.get("pid-file");
    o.console_socket = a.get("console-socket");
    o.no_pivot = a.has("no-pivot");
    o.no_new_keyring = a.has("no-new-keyring");
    o.preserve_fds = int_flag(a, "preserve-fds", 0);
    o.detach = a.has("detach");
    o.keep = a.has("keep");
    return o;
}

long long integer(const std::string& v, const char* flag) {
    char* end;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || errno) fail(std::string("--") + flag + ": invalid number \"" + v + "\"");
    return n;
}

// go-units RAMInBytes, as runc update parses memory sizes: ^\d+(\.\d+)* ?[kmgtp]?i?b?$ (case-insensitive,
// binary multiples: "512", "1.5k", "64m", "1G", "2gb", "1GiB"); "-1" means unlimited.
long long ram_in_bytes(const std::string& v, const char* flag) {
    if (v == "-1") return -1;
    const auto bad = [&] { fail(std::string("--") + flag + ": invalid size \"" + v + "\""); };
    if (v.empty() || !std::isdigit(static_cast<unsigned char>(v[0]))) bad();
    char* end;
    double n = std::strtod(v.c_str(), &end);
    const char* u = end;
    if (*u == ' ') ++u;
    static constexpr char kUnits[] = "kmgtp";
    int shift = 0;
    if (const char* at = *u ? std::strchr(kUnits, std::tolower(static_cast<unsigned char>(*u))) : nullptr) {
        shift = static_cast<int>(at - kUnits) + 1;
        ++u;
    }
    if (std::tolower(static_cast<unsigned char>(*u)) == 'i') ++u;
    if (std::tolower(static_cast<unsigned char>(*u)) == 'b') ++u;
    if (*u) bad();
    for (int i = 0; i < shift; ++i) n *= 1024;
    if (n >= 9.2e18) fail(std::string("--") + flag + ": size \"" + v + "\" too large");
    return static_cast<long long>(n);
}

const std::vector<Flag> kCreateFlags = {
    {"bundle", 'b', "DIR", "path to the bundle directory (default: current directory)"},
    {"console-socket", 0, "PATH", "unix socket that receives the pty master when process.terminal is true"},
    {"pid-file", 0, "FILE", "write the container process id to FILE"},
    {"no-pivot", 0, nullptr, "do not use pivot_root (MS_MOVE + chroot instead)"},
    {"no-new-keyring", 0, nullptr, "do not create a new session keyring for the container"},
    {"preserve-fds", 0, "N", "pass N extra file descriptors (3 .. 3+N-1) into the container"},
};

std::vector<Flag> run_flags() {
    auto f = kCreateFlags;
    f.push_back({"detach", 'd', nullptr, "start the container and return without waiting for it"});
    f.push_back({"keep", 0, nullptr, "keep the container's state after it exits"});
    return f;
}

const std::vector<Flag> kExecFlags = {
    {"process", 'p', "FILE", "process.json describing the process (runtime-spec process object)"},
    {"tty", 't', nullptr, "allocate a pseudo-terminal"},
    {"cwd", 0, "DIR", "working directory inside the container"},
    {"env", 'e', "KEY=VALUE", "set an environment variable (repeatable)"},
    {"user", 'u', "UID[:GID]", "user id (and group id) to run as"},
    {"additional-gids", 'g', "GID", "additional group id (repeatable)"},
    {"cap", 'c', "CAP", "add a capability (repeatable)"},
    {"no-new-privs", 0, nullptr, "set no_new_privs for the process"},
    {"detach", 'd', nullptr, "do not wait for the process to exit"},
    {"pid-file", 0, "FILE", "write the process id to FILE"},
    {"console-socket", 0, "PATH", "unix socket that receives the pty master with --tty"},
    {"process-label", 0, "LABEL", "SELinux label of the process"},
    {"apparmor", 0, "PROFILE", "AppArmor profile of the process"},
    {"preserve-fds", 0, "N", "pass N extra file descriptors into the process"},
};

const std::vector<Flag> kUpdateFlags = {
    {"resources", 'r', "FILE|-", "linux.resources JSON from FILE or standard input"},
    {"memory", 0, "BYTES", "memory limit (a number with an optional k, m, g, t, p suffix; -1: unlimited)"},
    {"memory-reservation", 0, "BYTES", "memory soft limit"},
    {"memory-swap", 0, "BYTES", "memory + swap limit; -1: unlimited swap"},
    {"cpu-share", 0, "N", "CPU shares (relative weight)"},
    {"cpu-shares", 0, "N", "the same as --cpu-share"},
    {"cpu-quota", 0, "USEC", "CPU CFS quota"},
    {"cpu-period", 0, "USEC", "CPU CFS period"},
    {"cpu-rt-runtime", 0, "USEC", "CPU realtime runtime"},
    {"cpu-rt-period", 0, "USEC", "CPU realtime period"},
    {"cpuset-cpus", 0, "LIST", "CPUs the container may use"},
    {"cpuset-mems", 0, "LIST", "memory nodes the container may use"},
    {"blkio-weight", 0, "N", "block I/O weight (10-1000)"},
    {"pids-limit", 0, "N", "maximum number of processes"},
    {"l3-cache-schema", 0, "SCHEMA", "Intel RDT/CAT L3 cache schema (not supported: an error)"},
    {"mem-bw-schema", 0, "SCHEMA", "Intel RDT/MBA memory bandwidth schema (not supported: an error)"},
    {"kernel-memory", 0, "BYTES", "ignored with a warning, as runc 1.1 does"},
    {"kernel-memory-tcp", 0, "BYTES", "ignored with a warning, as runc 1.1 does"},
};

int cmd_create(const Globals& g, const Args& a) { return container::create(g, create_opts(a, "create")); }
int cmd_start(const Globals& g, const Args& a) { return container::start(g, need_id(a, "start")); }
int cmd_run(const Globals& g, const Args& a) { return container::run(g, create_opts(a, "run")); }
int cmd_state(const Globals& g, const Args& a) { return container::state(g, need_id(a, "state")); }
int cmd_pause(const Globals& g, const Args& a) { return container::pause(g, need_id(a, "pause")); }
int cmd_resume(const Globals& g, const Args& a) { return container::resume(g, need_id(a, "resume")); }

int cmd_kill(const Globals& g, const Args& a) {
    return container::kill(g, need_id(a, "kill"), a.positional.size() > 1 ? a.positional[1] : "SIGTERM", a.has("all"));
}

int cmd_delete(const Globals& g, const Args& a) { return container::remove(g, need_id(a, "delete"), a.has("force")); }

int cmd_list(const Globals& g, const Args& a) { return container::list(g, a.get("format", "table"), a.has("quiet")); }

int cmd_exec(const Globals& g, const Args& a) {
    container::ExecOpts o;
    o.id = need_id(a, "exec");
    o.args.assign(a.positional.begin() + 1, a.positional.end());
    o.process_file = a.get("process");
    o.tty = a.has("tty");
    o.cwd = a.get("cwd");
    o.env = a.all("env");
    o.user = a.get("user");
    for (auto& s : a.all("additional-gids")) {
        auto gid = parse_decimal<uint32_t>(s);
        if (!gid) fail("--additional-gids: not a group id \"" + s + "\"");
        o.additional_gids.push_back(*gid);
    }
    o.caps = a.all("cap");
    o.no_new_privs = a.has("no-new-privs");
    o.detach = a.has("detach");
    o.pid_file = a.get("pid-file");
    o.console_socket = a.get("console-socket");
    o.process_label = a.get("process-label");
    o.apparmor = a.get("apparmor");
    o.preserve_fds = int_flag(a, "preserve-fds", 0);
    return container::exec(g, o);
}

int cmd_ps(const Globals& g, const Args& a) {
    std::vector<std::string> rest(a.positional.size() > 1 ? a.positional.begin() + 1 : a.positional.end(),
                                  a.positional.end());
    return container::ps(g, need_id(a, "ps"), a.get("format", "table"), rest);
}

int cmd_events(const Globals& g, const Args& a) {
    std::string iv = a.get("interval", "5");
    if (!iv.empty() && iv.back() == 's') iv.pop_back();
    int n = std::atoi(iv.c_str());
    if (n <= 0) fail("--interval: invalid value \"" + a.get("interval") + "\"");
    return container::events(g, need_id(a, "events"), a.has("stats"), n);
}

// `update --resources FILE|-`: the linux.resources object as given.
nlohmann::json resources_from_file(const std::string& f) {
    std::string text =
        f == "-" ? read_all(0, "--resources -", oci::kMaxResourcesBytes) : read_file(f, oci::kMaxResourcesBytes);
    if (f == "-") put_back_stdin(text);
    nlohmann::json r = oci::parse_json(text, "--resources " + f, oci::kMaxResourcesDepth);
    if (!r.is_object()) fail("--resources " + f + ": must be a JSON object (linux.resources)");
    return r;
}

// `update` without --resources: the linux.resources object the single-value flags make.
nlohmann::json resources_from_flags(const Args& a) {
    nlohmann::json r = nlohmann::json::object();
    struct M {
        const char* flag;
        const char* group;
        const char* key;
        bool bytes;
    } map[] = {{"memory", "memory", "limit", true},
               {"memory-reservation", "memory", "reservation", true},
               {"memory-swap", "memory", "swap", true},
               {"cpu-share", "cpu", "shares", false},
               {"cpu-shares", "cpu", "shares", false},
               {"cpu-quota", "cpu", "quota", false},
               {"cpu-period", "cpu", "period", false},
               {"cpu-rt-runtime", "cpu", "realtimeRuntime", false},
               {"cpu-rt-period", "cpu", "realtimePeriod", false},
               {"blkio-weight", "blockIO", "weight", false},
               {"pids-limit", "pids", "limit", false}};
    for (auto& m : map)
        if (a.has(m.flag))
            r[m.group][m.key] = m.bytes ? ram_in_bytes(a.get(m.flag), m.flag) : integer(a.get(m.flag), m.flag);
    if (r.contains("memory") && r["memory"].value("limit", 0LL) == -1 && !r["memory"].contains("swap"))
        r["memory"]["swap"] = -1;  // runc: unlimited memory without --memory-swap means unlimited swap too
    if (a.has("cpuset-cpus")) r["cpu"]["cpus"] = a.get("cpuset-cpus");
    if (a.has("cpuset-mems")) r["cpu"]["mems"] = a.get("cpuset-mems");
    for (const char* f : {"kernel-memory", "kernel-memory-tcp"})
        if (a.has(f)) log::warn(std::string("setting --") + f + " is ignored");
    return r;
}

int cmd_update(const Globals& g, const Args& a) {
    nlohmann::json r = a.has("resources") ? resources_from_file(a.get("resources")) : nlohmann::json::object();
    // runc 1.1 (update.go): with --resources every other flag is ignored; memory sizes take units.
    for (const char* f : {"l3-cache-schema", "mem-bw-schema"})
        if (a.has(f)) fail(std::string("update: --") + f + ": Intel RDT is not supported");
    if (!a.has("resources")) r = resources_from_flags(a);
    return container::update(g, need_id(a, "update"), r.dump());
}

int cmd_spec(const Globals&, const Args& a) {
    std::string dir = a.get("bundle", ".");
    std::string path = dir + "/config.json";
    if (path_exists(path)) fail("spec: " + path + " already exists");
    UniqueFd d(::open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!d) fail_errno("spec: " + dir);
    write_file_atomic(d.get(), "config.json", oci::default_spec(a.has("rootless")).dump(4) + "\n", 0644);
    return 0;
}

int cmd_features(const Globals&, const Args&) {
    auto f = oci::features();
    // What this machine's libseccomp and kernel support, probed rather than assumed.
    f["linux"]["seccomp"] = security::seccomp_features();
    f["linux"]["capabilities"] = security::known_capabilities();
    print(f.dump(4) + "\n");
    return 0;
}

int cmd_verify(const Globals& g, const Args& a) {
    return container::verify(g, a.positional.empty() ? "." : a.positional[0]);
}

// The commands in the order --help lists them.
const std::vector<Command>& commands() {
    static const std::vector<Command> cmds = {
        {"create", "<container-id>", "create a container: set it up and leave its process waiting for start",
         kCreateFlags, cmd_create},
        {"start", "<container-id>", "start the user program of a created container", {}, cmd_start},
        {"run", "<container-id>", "create and start a container; in the foreground, exit with its status", run_flags(),
         cmd_run},
        {"state", "<container-id>", "print the state of a container as JSON", {}, cmd_state},
        {"kill",
         "<container-id> [signal]",
         "send a signal (default SIGTERM) to the container process",
         {{"all", 'a', nullptr, "send the signal to every process of the container"}},
         cmd_kill},
        {"delete",
         "<container-id>",
         "delete a container and everything it holds",
         {{"force", 'f', nullptr, "kill the container first if it is still running"}},
         cmd_delete},
        {"list",
         "",
         "list containers",
         {{"format", 'f', "table|json", "output format (default table)"},
          {"quiet", 'q', nullptr, "print only the ids"}},
         cmd_list},
        {"exec", "<container-id> [command args...]", "run a new process inside a running container", kExecFlags,
         cmd_exec},
        {"ps",
         "<container-id> [ps options]",
         "list the processes of a container",
         {{"format", 'f', "table|json", "output format (default table)"}},
         cmd_ps},
        {"events",
         "<container-id>",
         "print container events and resource statistics as JSON lines",
         {{"stats", 0, nullptr, "print the statistics once and exit"},
          {"interval", 0, "SECONDS", "statistics interval (default 5)"}},
         cmd_events},
        {"pause", "<container-id>", "freeze every process of a container", {}, cmd_pause},
        {"resume", "<container-id>", "thaw a paused container", {}, cmd_resume},
        {"update", "<container-id>", "change the resource limits of a running container", kUpdateFlags, cmd_update},
        {"spec",
         "",
         "write a default config.json (like runc spec)",
         {{"bundle", 'b', "DIR", "directory to write config.json into (default: current directory)"},
          {"rootless", 0, nullptr, "a config for a rootless container (user namespace)"}},
         cmd_spec},
        {"features", "", "print the runtime's features.json", {}, cmd_features},
        {"verify",
         "<bundle>",
         "verify a bundle's signature and manifest against the policy, as create does",
         {},
         cmd_verify},
    };
    return cmds;
}

void print_main_help() {
    std::printf(
        "trustme-runtime - an OCI container runtime with signed bundles, TPM-sealed volumes and attestation\n\n"
        "usage: trustme-runtime [global options] <command> [command options] [arguments...]\n\n"
        "commands:\n");
    for (auto& c : commands()) std::printf("   %-10s %s\n", c.name, c.summary);
    std::printf("   %-10s %s\n", "volume", "create, enroll and inspect TPM-sealed LUKS2 volumes (see volume --help)");
    print("\nglobal options:\n" + format_flags(kGlobal));
}

void print_command_help(const Command& c) {
    std::printf("trustme-runtime %s - %s\n\nusage: trustme-runtime %s [command options] %s\n", c.name, c.summary,
                c.name, c.args);
    if (!c.flags.empty()) print("\noptions:\n" + format_flags(c.flags));
    print("   --help, -h                     show help\n");
}

// Logging as the global options ask; an exit status when they are wrong.
std::optional<int> setup_logging(const Args& ga) {
    std::string fmt = ga.get("log-format", "text");
    int log_errno = log::setup(ga.get("log"), fmt == "json" ? log::Format::Json : log::Format::Text, ga.has("debug"));
    if (fmt != "text" && fmt != "json") {
        log::error("--log-format: invalid value \"" + fmt + "\" (text or json)");
        return 2;
    }
    if (log_errno && !ga.has("help") && !ga.has("version")) {
        // runc fails with exit 1 when it cannot open its --log file: the engine would lose every error line.
        log::error("--log " + ga.get("log") + ": " + std::strerror(log_errno));
        return 1;
    }
    return std::nullopt;
}

// Rootless, as runc: state under $XDG_RUNTIME_DIR (the user's own tmpfs), else /run/user/<uid>. Root of a
// user namespace (rootless podman runs us so, without --root) honours $XDG_RUNTIME_DIR too unless $USER
// is root; root of the host never does (runc main.go, shouldHonorXDGRuntimeDir).
std::string state_root(const Args& ga, const std::string& def) {
    std::string root = def;
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    const bool has_xdg = xdg && *xdg == '/';
    if (::geteuid() != 0) {
        root = (has_xdg ? std::string(xdg) : "/run/user/" + std::to_string(::geteuid())) + "/trustme-runtime";
    } else if (has_xdg && !ga.has("root")) {
        const char* user = std::getenv("USER");
        if ((!user || std::strcmp(user, "root") != 0) && !procfs::initial_user_ns())
            root = std::string(xdg) + "/trustme-runtime";
    }
    return ga.get("root", root);
}

// The global options into g; an exit status when one is invalid.
std::optional<int> read_globals(const Args& ga, Globals& g) {
    g.root = state_root(ga, g.root);
    g.rootless = ga.get("rootless", g.rootless);
    if (g.rootless != "true" && g.rootless != "false" && g.rootless != "auto") {
        log::error("--rootless: invalid value \"" + g.rootless + "\" (true, false or auto)");
        return 2;
    }
    if (const char* c = std::getenv("TRUSTME_CACHE_DIR")) g.cache = c;
    g.policy = ga.get("policy");
    g.systemd_cgroup = ga.has("systemd-cgroup");
    return std::nullopt;
}

// `volume ...` is the volume plugin's own command line (argv[i..]).
int run_volume(const Globals& g, int argc, char** argv, int i) {
    auto fn =
        reinterpret_cast<decltype(&trustme_volume_main)>(container::plugins::volume_symbol("trustme_volume_main"));
    // The volume commands take the TPM from the policy: pass the global --policy on.
    std::vector<char*> args(argv + i, argv + argc);
    std::string pol = g.policy;
    if (!pol.empty()) {
        args.push_back(const_cast<char*>("--policy"));
        args.push_back(pol.data());
    }
    args.push_back(nullptr);
    return fn(static_cast<int>(args.size() - 1), args.data());
}

// Command c with its options from argv[i + 1..].
int run_command(const Command& c, const Globals& g, int argc, char** argv, int i) {
    const std::string name = c.name;
    Args a;
    auto flags = c.flags;
    flags.push_back({"help", 'h', nullptr, "show help"});
    bool command_follows = name == "exec" || name == "ps";
    parse({flags, "trustme-runtime " + name, false, command_follows ? 1 : 0}, argc, argv, i + 1, a);
    if (a.has("help")) {
        print_command_help(c);
        return 0;
    }
    if (name == "create" || name == "run" || name == "exec") {
        // A systemd-driven container needs the sd-bus plugin, which only the dynamically linked twin loads:
        // hand the command over before sealing and prefaulting this image, work the twin does anew.
        if (g.systemd_cgroup && name != "exec") container::plugins::require_loadable();
        seal_self_exe(argv);
        pages::prefault_heap_and_stack();
    }
    return c.run(g, a);
}

}  // namespace
}  // namespace trustme::cli

#if defined(__SANITIZE_ADDRESS__)
// A sanitizer build's defaults, compiled in: engines run the runtime with an environment of their own
// (rootless podman through `env -i`), so ASAN_OPTIONS does not reach it. No leak check: the runtime exits
// or execs right after it allocates, and LeakSanitizer's check at exit stops the world with a ptrace
// helper, which inside a rootless container's namespaces spun forever (the process never exited).
extern "C" const char* __asan_default_options();
extern "C" const char* __asan_default_options() { return "detect_leaks=0:abort_on_error=1"; }
extern "C" const char* __ubsan_default_options();
extern "C" const char* __ubsan_default_options() { return "halt_on_error=1:print_stacktrace=1"; }
#endif

int main(int argc, char** argv) {
    using namespace trustme;
    using namespace trustme::cli;
    container::plugins::set_argv(argv);
    Args ga;
    int i;
    try {
        i = parse({kGlobal, "trustme-runtime", true}, argc, argv, 1, ga);
    } catch (const Error& e) {
        std::fprintf(stderr, "trustme-runtime: %s\n", e.what());
        return 2;
    }
    if (auto status = setup_logging(ga)) return *status;
    if (ga.has("version")) {
        print(std::string("trustme-runtime version ") + kVersion + "\nspec: " + oci::kOciVersion + "\n");
        return 0;
    }
    if (i >= argc || ga.has("help")) {
        print_main_help();
        return i >= argc && !ga.has("help") ? 2 : 0;
    }
    Globals g;
    if (auto status = read_globals(ga, g)) return *status;
    std::string name = argv[i];
    try {
        if (name == "volume") return run_volume(g, argc, argv, i);
        for (auto& c : commands())
            if (name == c.name) return run_command(c, g, argc, argv, i);
        if (name == "checkpoint" || name == "restore") fail(name + ": checkpoint/restore is not supported");
        fail("unknown command \"" + name + "\" (see --help)");
    } catch (const std::exception& e) {
        log::error(e.what());
        return 1;
    }
}
