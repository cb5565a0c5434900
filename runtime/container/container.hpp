// The container lifecycle (runtime.md "Lifecycle" and runc's commands): each function is one CLI command
// and returns its exit code; errors are thrown as trustme::Error with one line of context.
#pragma once
#include <string>
#include <vector>

namespace trustme::container {

struct Globals {
    std::string root = "/run/trustme-runtime";  // container directories only: engines share it with runc
    // Caches that speed up the start path (compiled seccomp programs), kept out of `root`: the state root
    // holds nothing but container directories. $TRUSTME_CACHE_DIR overrides it; empty disables caching.
    std::string cache = "/run/trustme-runtime-cache";
    std::string seccomp_cache() const { return cache; }
    std::string policy;  // --policy (else $TRUSTME_POLICY, else /etc/trustme/policy.json)
    bool systemd_cgroup = false;
    // --rootless: "true", "false" or "auto" (rootless when not root, or root inside a user namespace that
    // is not the host's, as rootless podman calls us). Rootless: no cgroup unless one was delegated.
    std::string rootless = "auto";
};

// Whether --rootless (as given, or "auto" decided for this process) means rootless.
bool rootless(const Globals& g);

struct CreateOpts {
    std::string id;
    std::string bundle;  // "" = current directory
    std::string pid_file;
    std::string console_socket;
    bool no_pivot = false;
    bool no_new_keyring = false;
    int preserve_fds = 0;
    // run only
    bool detach = false;
    bool keep = false;
};

int create(const Globals& g, const CreateOpts& o);
int run(const Globals& g, const CreateOpts& o);
int start(const Globals& g, const std::string& id);
int state(const Globals& g, const std::string& id);
int kill(const Globals& g, const std::string& id, const std::string& signal, bool all);
int remove(const Globals& g, const std::string& id, bool force);
int list(const Globals& g, const std::string& format, bool quiet);
int pause(const Globals& g, const std::string& id);
int resume(const Globals& g, const std::string& id);
int ps(const Globals& g, const std::string& id, const std::string& format, const std::vector<std::string>& ps_args);
int events(const Globals& g, const std::string& id, bool stats, int interval_s);
int update(const Globals& g, const std::string& id, const std::string& resources_json);
int verify(const Globals& g, const std::string& bundle);

struct ExecOpts {
    std::string id;
    std::string process_file;  // --process
    std::vector<std::string> args;
    bool tty = false;
    std::string cwd;
    std::vector<std::string> env;
    std::string user;  // uid[:gid]
    std::vector<std::string> caps;
    bool no_new_privs = false;
    bool detach = false;
    std::string pid_file, console_socket, process_label, apparmor;
    int preserve_fds = 0;
    std::vector<uint32_t> additional_gids;
};
int exec(const Globals& g, const ExecOpts& o);

// Signal name ("TERM", "SIGKILL", "9") → number; throws on unknown.
int parse_signal(const std::string& s);

}  // namespace trustme::container
