// The state directory (--root): one directory per container holding state.json (state.creating.json while
// `create` runs) and the exec fifo. Nothing else lives in --root: engines give runc and us the same one.
// Commands on one id serialize on flock(2) of that directory; every write is atomic (tmp + rename), so a
// crash leaves either the old or the new state.json, which `delete --force` can always clean up.
//
// The directory is distrusted when read back: a record is ours only when it carries our marker (a
// directory with no record of ours, e.g. runc's, is skipped as if absent); a record of ours that is
// malformed, of the wrong types, too large or too deep, or whose paths leave where they must stay (cgroup
// directories outside their hierarchy, relative bundle) is "broken": listed as such, and removed by
// `delete --force` without running its hooks or signalling what it names.
#pragma once
#include <ctime>
#include <sys/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/state.hpp"
#include "base/fd.hpp"

namespace trustme::state {

struct Record {
    oci::State st;           // status is computed, not stored
    uint64_t pid_start = 0;  // /proc/<pid>/stat starttime: guards against pid reuse
    bool created = false;    // false while `create` is still running (status "creating")
    nlohmann::json cgroup;   // cgroups::Manager::save()
    nlohmann::json config;   // config.json as parsed (exec defaults, poststop hooks)
    bool volumes = false;    // the volume plugin recorded state here
    bool systemd_cgroup = false;
    bool foreign = false;  // no record of ours in the directory (another runtime's container)
    std::string broken;    // why the record cannot be trusted; "" when it is sound
};

// The marker every record of ours carries ("runtime": kMarker).
inline constexpr const char* kMarker = "trustme-runtime";

class ContainerDir {
public:
    // mkdir <root>/<id> (EEXIST: "container \"id\" already exists"), making a missing root with its parents
    // (mode 0711, as runc); locked. Both refuse an id that fails oci::valid_id before forming a path.
    static ContainerDir create(const std::string& root, const std::string& id);
    // Open an existing one (no such directory: "container \"id\" does not exist", code() ENOENT; any
    // other failure carries its own errno); locked when `lock`.
    static ContainerDir open(const std::string& root, const std::string& id, bool lock = true);

    // The record, sound and ours; otherwise an error ("does not exist" for a directory not ours, the reason
    // for a broken one).
    Record read() const;
    // The record as it is: foreign or broken ones are returned marked, not thrown (list, delete).
    Record read_any() const;
    void write(const Record& r) const;
    // Remove every file and the directory itself.
    void remove() const;

    // `run` waits for its container in the foreground: other commands (kill, exec) must get through.
    void unlock() const;
    void lock() const;

    int fd() const { return fd_.get(); }
    const std::string& path() const { return path_; }
    std::string fifo_path() const { return path_ + "/exec.fifo"; }

private:
    UniqueFd fd_;
    std::string path_;
};

// The directories in --root whose names are valid ids: candidates, whose records say whether they are ours.
std::vector<std::string> list_ids(const std::string& root);

struct ProcInfo {
    bool alive = false;  // exists and is not a zombie
    uint64_t start = 0;
};
ProcInfo proc_info(pid_t pid);

// runtime.md states, plus runc's "paused". `frozen` is asked only for a live, started container.
std::string status_of(const Record& r, const ContainerDir& d, bool (*frozen)(const Record&) = nullptr);

std::string now_rfc3339();
// The same for a given time (no time zone file is read).
std::string rfc3339_utc(const struct timespec& ts);

}  // namespace trustme::state
