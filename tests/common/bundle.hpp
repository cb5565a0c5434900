// Test helpers shared by integration tests that drive a runtime binary: a busybox-static bundle built
// once per test binary by tests/fixtures/make-rootfs.sh, a private --root, and running commands with
// captured output. Every container a test makes is force-deleted in TearDown.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace trustme::test {

struct Result {
    int status = -1;  // exit code, or 128+signal
    std::string out, err;
};

// Run argv (no shell), with optional stdin, bounded by timeout_s (SIGKILL after it).
Result run(const std::vector<std::string>& argv, const std::string& input = "", int timeout_s = 60);

std::string runtime_binary();  // TRUSTME_BINARY_DIR/bin/trustme-runtime
std::string source_dir();
std::string make_temp_dir(const std::string& tag);
void remove_tree(const std::string& path);
std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);

// A rootfs template assembled once per process; each bundle gets a copy (cp -a) or a bind of it.
const std::string& rootfs_template();

class Bundle {
public:
    explicit Bundle(const std::string& tag, bool copy_rootfs = false);
    ~Bundle();
    nlohmann::json config;          // runc spec's default, terminal false, args /bin/true
    std::string dir, rootfs, root;  // bundle dir, its rootfs, a private --root
    void save() const;              // write config.json
    // trustme-runtime --root <root> ARGS...
    Result rt(const std::vector<std::string>& args, const std::string& input = "", int timeout_s = 60) const;
    // run -b dir <id> with the given process args (saved first)
    Result run_sh(const std::string& id, const std::string& script);
    std::vector<std::string> ids;  // force-deleted at teardown
};

}  // namespace trustme::test
