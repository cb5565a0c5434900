// linux.seccomp → classic BPF, compiled with libseccomp in the parent and loaded with the raw seccomp(2)
// syscall in the child (no libseccomp work, no allocation between clone and exec).
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/log.hpp"
#include "base/owned.hpp"
#include "runtime/security/json_util.hpp"
#include "runtime/security/seccomp_internal.hpp"
#include "runtime/security/security.hpp"

namespace trustme::security {
using nlohmann::json;
using namespace detail;

namespace {

struct ActionName {
    const char* name;
    uint32_t action;   // libseccomp action without return data
    bool takes_errno;  // ERRNO and TRACE carry a 16-bit return value
};
// OCI runtime-spec config-linux.md "Seccomp": the action names. SCMP_ACT_KILL is KILL_THREAD in
// libseccomp and in runc.
constexpr ActionName kActions[] = {
    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD, false},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP, false},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), true},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), true},
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG, false},
    {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY, false},
};

constexpr std::pair<const char*, scmp_compare> kOperators[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

// The architectures the OCI spec names; libseccomp spells them in lower case without the prefix.
constexpr const char* kArches[] = {
    "SCMP_ARCH_X86",         "SCMP_ARCH_X86_64", "SCMP_ARCH_X32",       "SCMP_ARCH_ARM",     "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",        "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",    "SCMP_ARCH_PPC64",     "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",       "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64",  "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
};

uint32_t parse_action(const json& j, const std::string& path, const json* errno_ret, const std::string& errno_path) {
    std::string name = as_string(j, path);
    for (const auto& a : kActions) {
        if (name != a.name) continue;
        if (!a.takes_errno) {
            // runc ignores errnoRet on other actions (getAction); so do we.
            if (errno_ret) log::debug(errno_path + ": ignored for " + name);
            return a.action;
        }
        // runc's default return value for ERRNO and TRACE is EPERM. The kernel clamps the 16-bit
        // SECCOMP_RET_DATA to MAX_ERRNO (kernel/seccomp.c, __seccomp_filter).
        uint64_t e = EPERM;
        if (errno_ret) {
            e = as_u64(*errno_ret, errno_path);
            if (e > 0xffff) fail(errno_path + ": " + std::to_string(e) + " does not fit in 16 bits");
        }
        return a.action | static_cast<uint32_t>(e);
    }
    fail(path + ": unknown action " + name);
}

unsigned int parse_flag(const json& j, const std::string& path) {
    std::string name = as_string(j, path);
    // TSYNC: the child is single-threaded, there is nothing to synchronise (runc ignores it too).
    if (name == "SECCOMP_FILTER_FLAG_TSYNC") return 0;
    if (name == "SECCOMP_FILTER_FLAG_LOG") return SECCOMP_FILTER_FLAG_LOG;
    if (name == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") return SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    if (name == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") return SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    fail(path + ": unknown flag " + name);
}

uint32_t parse_arch(const json& j, const std::string& path) {
    std::string name = as_string(j, path);
    if (std::find_if(std::begin(kArches), std::end(kArches), [&](const char* a) { return name == a; }) ==
        std::end(kArches))
        fail(path + ": unknown architecture " + name);
    std::string lower = name.substr(std::strlen("SCMP_ARCH_"));
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    uint32_t token = seccomp_arch_resolve_name(lower.c_str());
    if (token == 0) fail(path + ": architecture " + name + " is not supported by this libseccomp");
    return token;
}

// linux.seccomp.syscalls[].args[k]: {index, value, valueTwo, op}.
ParsedArg parse_arg(const json& a, const std::string& ap) {
    expect_object(a, ap);
    ParsedArg arg;
    const json* index = field(a, "index");
    if (!index) fail(ap + ".index: required");
    uint64_t ix = as_u64(*index, ap + ".index");
    if (ix > 5) fail(ap + ".index: " + std::to_string(ix) + " is not a syscall argument (0-5)");
    arg.index = static_cast<unsigned>(ix);
    const json* value = field(a, "value");
    if (!value) fail(ap + ".value: required");
    arg.value = as_u64(*value, ap + ".value");
    if (const json* v2 = field(a, "valueTwo")) arg.value_two = as_u64(*v2, ap + ".valueTwo");
    const json* op = field(a, "op");
    if (!op) fail(ap + ".op: required");
    std::string opname = as_string(*op, ap + ".op");
    auto it =
        std::find_if(std::begin(kOperators), std::end(kOperators), [&](const auto& o) { return opname == o.first; });
    if (it == std::end(kOperators)) fail(ap + ".op: unknown operator " + opname);
    arg.op = it->second;
    return arg;
}

// linux.seccomp.syscalls[i]: {names, action, errnoRet, args}.
ParsedRule parse_rule(const json& r, const std::string& path) {
    ParsedRule rule;
    rule.path = path;
    expect_object(r, rule.path);
    const json* names = field(r, "names");
    if (!names) fail(rule.path + ".names: required");
    expect_array(*names, rule.path + ".names");
    for (size_t n = 0; n < names->size(); ++n) {
        std::string name = as_string((*names)[n], idx(rule.path + ".names", n));
        if (name.empty()) fail(idx(rule.path + ".names", n) + ": empty syscall name");
        rule.names.push_back(std::move(name));
    }
    const json* act = field(r, "action");
    if (!act) fail(rule.path + ".action: required");
    rule.action = parse_action(*act, rule.path + ".action", field(r, "errnoRet"), rule.path + ".errnoRet");
    if (rule.action == SCMP_ACT_NOTIFY) {
        // The child hands the listener fd to the runtime after loading the filter; a notified
        // syscall on that path waits for a listener nobody holds yet. runc writes the fd number
        // (so it refuses "write"); our init sends the fd with sendmsg (runtime/process/sync.cpp).
        for (const char* handover : {"write", "sendmsg"})
            if (std::find(rule.names.begin(), rule.names.end(), handover) != rule.names.end())
                fail(rule.path + ".action: SCMP_ACT_NOTIFY cannot be used for the " + handover + " syscall");
    }
    if (const json* args = field(r, "args")) {
        std::string argp = rule.path + ".args";
        expect_array(*args, argp);
        for (size_t k = 0; k < args->size(); ++k) rule.args.push_back(parse_arg((*args)[k], idx(argp, k)));
    }
    return rule;
}

}  // namespace

namespace detail {

ParsedSeccomp parse_seccomp(const json& s, const std::string& path) {
    ParsedSeccomp p;
    expect_object(s, path);
    const json* def = field(s, "defaultAction");
    if (!def) fail(path + ".defaultAction: required");
    p.default_action =
        parse_action(*def, key(path, "defaultAction"), field(s, "defaultErrnoRet"), key(path, "defaultErrnoRet"));
    // runc: the child must still write the listener fd to the parent after loading the filter, and every
    // syscall (including that write) would wait on a listener nobody holds yet.
    if (p.default_action == SCMP_ACT_NOTIFY)
        fail(path + ".defaultAction: SCMP_ACT_NOTIFY cannot be used as the default action");

    if (const json* a = field(s, "architectures")) {
        std::string ap = key(path, "architectures");
        expect_array(*a, ap);
        for (size_t i = 0; i < a->size(); ++i) p.arches.push_back(parse_arch((*a)[i], idx(ap, i)));
    }
    if (const json* f = field(s, "flags")) {
        std::string fp = key(path, "flags");
        expect_array(*f, fp);
        for (size_t i = 0; i < f->size(); ++i) p.flags |= parse_flag((*f)[i], idx(fp, i));
    }
    if (const json* l = field(s, "listenerPath")) {
        p.listener_path = as_string(*l, key(path, "listenerPath"));
        if (!p.listener_path.empty() && p.listener_path[0] != '/')
            fail(path + ".listenerPath: must be an absolute path");
        if (p.listener_path.size() >= sizeof(sockaddr_un::sun_path))
            fail(path + ".listenerPath: longer than a unix socket path may be");
    }
    if (const json* m = field(s, "listenerMetadata"))
        p.listener_metadata = as_string(*m, key(path, "listenerMetadata"));

    if (const json* sc = field(s, "syscalls")) {
        std::string sp = key(path, "syscalls");
        expect_array(*sc, sp);
        for (size_t i = 0; i < sc->size(); ++i) {
            p.rules.push_back(parse_rule((*sc)[i], idx(sp, i)));
            if (p.rules.back().action == SCMP_ACT_NOTIFY) p.uses_notify = true;
        }
    }
    if (p.uses_notify && p.listener_path.empty())
        fail(path + ".listenerPath: required when a rule uses SCMP_ACT_NOTIFY");
    return p;
}

}  // namespace detail

namespace {

using Ctx = Owned<void, seccomp_release>;

// The kernel answers EFAULT for a NULL program once it has accepted the flags, EINVAL for flags it does
// not know (the probe libseccomp uses too, src/system.c sys_chk_seccomp_flag_kernel).
bool kernel_has_flag(unsigned int flag) {
    errno = 0;
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flag, nullptr);
    return rc < 0 && errno == EFAULT;
}

// runc's patchbpf, in spirit: a profile written before a syscall existed must not answer that syscall
// with its default action (EPERM or a kill), because libc probes new syscalls (clone3, faccessat2,
// openat2, ...) and falls back to the old one only on ENOSYS. So for every architecture we prepend
// "if nr > the highest syscall the profile names → return ENOSYS". Syscalls in between that the profile
// does not name keep the default action. Done only when the default action denies (not ALLOW/LOG).
// x32 shares AUDIT_ARCH_X86_64 and marks its numbers with bit 30 (__X32_SYSCALL_BIT); libseccomp
// resolves x32 names to numbers with that bit set.
constexpr uint32_t kX32Bit = 0x40000000U;

struct Insn {
    sock_filter f;
    int jt = -1, jf = -1;  // label ids, resolved later; -1 = literal 0
};

std::vector<sock_filter> enosys_stub(const std::map<uint32_t, int>& max_by_arch) {
    enum Label { kEnosys = 0, kOrig = 1 };
    std::vector<Insn> code;
    std::vector<int> label_pos(2, -1);
    auto stmt = [&](uint16_t code_, uint32_t k) { code.push_back({BPF_STMT(code_, k)}); };
    auto jump = [&](uint16_t code_, uint32_t k, int jt, int jf) { code.push_back({BPF_JUMP(code_, k, 0, 0), jt, jf}); };
    auto ja = [&](int label) { code.push_back({BPF_STMT(BPF_JMP | BPF_JA, 0), label, -1}); };
    auto new_label = [&]() {
        label_pos.push_back(-1);
        return static_cast<int>(label_pos.size() - 1);
    };
    auto place = [&](int label) { label_pos[label] = static_cast<int>(code.size()); };

    std::optional<int> max64, maxx32;
    if (auto it = max_by_arch.find(SCMP_ARCH_X86_64); it != max_by_arch.end()) max64 = it->second;
    if (auto it = max_by_arch.find(SCMP_ARCH_X32); it != max_by_arch.end()) maxx32 = it->second;

    stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
    if (max64 || maxx32) {
        int next = new_label();
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, -1, next);
        stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
        int x32 = new_label();
        jump(BPF_JMP | BPF_JGE | BPF_K, kX32Bit, x32, -1);
        if (max64) jump(BPF_JMP | BPF_JGT | BPF_K, static_cast<uint32_t>(*max64), kEnosys, kOrig);
        else ja(kOrig);
        place(x32);
        if (maxx32) jump(BPF_JMP | BPF_JGT | BPF_K, static_cast<uint32_t>(*maxx32), kEnosys, kOrig);
        else ja(kOrig);
        place(next);
    }
    for (const auto& [arch, max] : max_by_arch) {
        if (arch == SCMP_ARCH_X86_64 || arch == SCMP_ARCH_X32) continue;
        int next = new_label();
        jump(BPF_JMP | BPF_JEQ | BPF_K, arch, -1, next);
        stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
        jump(BPF_JMP | BPF_JGT | BPF_K, static_cast<uint32_t>(max), kEnosys, kOrig);
        place(next);
    }
    // Fall-through for unmatched arches goes to the original program, past the ENOSYS return.
    ja(kOrig);
    place(kEnosys);
    stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
    place(kOrig);

    std::vector<sock_filter> out;
    out.reserve(code.size());
    for (size_t i = 0; i < code.size(); ++i) {
        Insn in = code[i];
        auto rel = [&](int label) -> uint32_t {
            if (label < 0) return 0;
            int target = label_pos[label];
            int off = target - static_cast<int>(i) - 1;
            if (off < 0 || off > 255) fail("linux.seccomp: internal error building the ENOSYS stub");
            return static_cast<uint32_t>(off);
        };
        if (BPF_CLASS(in.f.code) == BPF_JMP && BPF_OP(in.f.code) == BPF_JA) {
            in.f.k = rel(in.jt);  // JA takes its offset in k
        } else if (BPF_CLASS(in.f.code) == BPF_JMP) {
            in.f.jt = static_cast<uint8_t>(rel(in.jt));
            in.f.jf = static_cast<uint8_t>(rel(in.jf));
        }
        out.push_back(in.f);
    }
    return out;
}

std::vector<sock_filter> export_bpf(void* ctx) {
    // libseccomp 2.5 exports only to an fd (seccomp_export_bpf_mem arrived in 2.6).
    UniqueFd mem(static_cast<int>(check(memfd_create("trustme-seccomp", MFD_CLOEXEC), "memfd_create")));
    if (int rc = seccomp_export_bpf(ctx, mem.get()); rc < 0) fail(-rc, "linux.seccomp: exporting the BPF program");
    struct stat st {};
    check(fstat(mem.get(), &st), "fstat");
    if (st.st_size % sizeof(sock_filter) != 0) fail("linux.seccomp: libseccomp exported a truncated program");
    std::vector<sock_filter> prog(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
    size_t done = 0;
    auto* bytes = reinterpret_cast<char*>(prog.data());
    while (done < static_cast<size_t>(st.st_size)) {
        ssize_t n = pread(mem.get(), bytes + done, static_cast<size_t>(st.st_size) - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail(n < 0 ? errno : EIO, "reading the exported seccomp program");
        done += static_cast<size_t>(n);
    }
    return prog;
}

std::string p_arch_name(const json& seccomp, size_t i) {
    const json& a = seccomp["architectures"][i];
    return a.is_string() ? a.get<std::string>() : std::string("?");
}

// The native architecture and those the profile adds, each once, in that order.
std::vector<uint32_t> add_arches(void* ctx, const ParsedSeccomp& p, const json& seccomp, const std::string& path) {
    const uint32_t native = seccomp_arch_native();
    std::vector<uint32_t> arches{native};
    for (size_t i = 0; i < p.arches.size(); ++i) {
        uint32_t a = p.arches[i];
        if (std::find(arches.begin(), arches.end(), a) != arches.end()) continue;
        if (int rc = seccomp_arch_add(ctx, a); rc < 0 && rc != -EEXIST) {
            // libseccomp keeps one filter per byte order: a big-endian arch (s390x, mips, ppc64) cannot
            // join a little-endian native one (EDOM, src/db.c arch_filter_add).
            if (rc == -EDOM)
                fail(idx(path + ".architectures", i) + ": " + p_arch_name(seccomp, i) +
                     " has another byte order than this machine and cannot be in the same filter");
            fail(-rc, idx(path + ".architectures", i));
        }
        arches.push_back(a);
    }
    return arches;
}

// Rule r for the syscall `name` (number nr), with its argument conditions.
void add_rule(void* ctx, const ParsedRule& r, const std::string& name, int nr) {
    auto add = [&](const scmp_arg_cmp* conds, unsigned n) {
        int rc = seccomp_rule_add_array(ctx, r.action, nr, n, conds);
        if (rc < 0) fail(-rc, r.path + ": adding the rule for " + name);
    };
    if (r.args.empty()) {
        add(nullptr, 0);
        return;
    }
    std::vector<scmp_arg_cmp> conds;
    std::array<int, 6> per_index{};
    for (const ParsedArg& a : r.args) {
        conds.push_back(scmp_arg_cmp{a.index, a.op, a.value, a.value_two});
        ++per_index[a.index];
    }
    // libseccomp cannot AND two conditions on the same argument; runc then adds one rule per
    // condition (an OR), and so do we, to give the same filter for the same profile.
    if (std::any_of(per_index.begin(), per_index.end(), [](int c) { return c > 1; })) {
        for (const auto& c : conds) add(&c, 1);
    } else {
        add(conds.data(), static_cast<unsigned>(conds.size()));
    }
}

// Every rule of p into ctx; returns the highest syscall number the profile names, per architecture
// (for enosys_stub).
std::map<uint32_t, int> add_rules(void* ctx, const ParsedSeccomp& p, const std::vector<uint32_t>& arches) {
    std::map<uint32_t, int> max_by_arch;
    for (const ParsedRule& r : p.rules) {
        for (const std::string& name : r.names) {
            int nr = seccomp_syscall_resolve_name(name.c_str());
            if (nr == __NR_SCMP_ERROR) {
                // Names from newer profiles (or other arches) are normal: runc skips them too.
                log::debug(r.path + ": unknown syscall " + name + " ignored");
                continue;
            }
            for (uint32_t a : arches) {
                int anr = seccomp_syscall_resolve_name_arch(a, name.c_str());
                if (anr >= 0) max_by_arch[a] = std::max(max_by_arch.count(a) ? max_by_arch[a] : 0, anr);
            }
            // libseccomp refuses a rule whose action equals the default (EACCES); it is redundant anyway.
            if (r.action == p.default_action) continue;
            add_rule(ctx, r, name, nr);
        }
    }
    return max_by_arch;
}

// The seccomp(2) flags of the program: those the profile asks for, NEW_LISTENER with a notify rule;
// each one checked against the running kernel.
unsigned int filter_flags(const ParsedSeccomp& p, const std::string& path) {
    unsigned int flags = p.flags;
    if (p.uses_notify) flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    if ((flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) && !p.uses_notify) {
        // The kernel refuses WAIT_KILLABLE_RECV without NEW_LISTENER (kernel/seccomp.c,
        // seccomp_set_mode_filter); libseccomp 2.6 likewise sets it only when notify is used.
        log::debug(path + ".flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored, no rule uses SCMP_ACT_NOTIFY");
        flags &= ~static_cast<unsigned>(SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
    }
    // The flags are unsigned long constants (linux/seccomp.h); listed as unsigned int, the type of the flags.
    for (unsigned int f : std::initializer_list<unsigned int>{SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW,
                                                              SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV}) {
        if (!(flags & f)) continue;
        unsigned int probe = f == SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ? f | SECCOMP_FILTER_FLAG_NEW_LISTENER : f;
        if (!kernel_has_flag(probe))
            fail(path + ".flags: flag " + std::to_string(f) + " is not supported by this kernel");
    }
    return flags;
}

}  // namespace

SeccompProgram compile_seccomp(const json& seccomp) {
    SeccompProgram prog;
    if (seccomp.is_null()) return prog;
    const std::string path = "linux.seccomp";
    ParsedSeccomp p = parse_seccomp(seccomp, path);

    Ctx ctx(seccomp_init(p.default_action));
    if (!ctx) fail(path + ".defaultAction: libseccomp refused the action (not supported by this kernel?)");
    const std::vector<uint32_t> arches = add_arches(ctx.get(), p, seccomp, path);
    // libseccomp's binary-tree layout keeps long profiles fast at syscall time; runc enables it above 32
    // syscalls (it counts one per name) because libseccomp <= 2.5.4 misbehaves with it on an empty rule set.
    size_t names = 0;
    for (const ParsedRule& r : p.rules) names += r.names.size();
    if (names > 32) seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
    const std::map<uint32_t, int> max_by_arch = add_rules(ctx.get(), p, arches);

    std::vector<sock_filter> body = export_bpf(ctx.get());
    const uint32_t def = p.default_action & SECCOMP_RET_ACTION_FULL;
    if (def != SCMP_ACT_ALLOW && def != SCMP_ACT_LOG && !max_by_arch.empty()) {
        prog.bpf = enosys_stub(max_by_arch);
        prog.bpf.insert(prog.bpf.end(), body.begin(), body.end());
    } else {
        prog.bpf = std::move(body);
    }
    if (prog.bpf.size() > BPF_MAXINSNS)
        fail(path + ": the compiled filter has " + std::to_string(prog.bpf.size()) +
             " instructions, more than the kernel's limit of " + std::to_string(BPF_MAXINSNS));

    prog.uses_notify = p.uses_notify;
    prog.listener_path = p.listener_path;
    prog.listener_metadata = p.listener_metadata;
    prog.flags = filter_flags(p, path);
    return prog;
}

json seccomp_features() {
    json actions = json::array(), operators = json::array(), archs = json::array();
    for (const auto& a : kActions) actions.push_back(a.name);
    for (const auto& o : kOperators) operators.push_back(o.first);
    for (const char* a : kArches) {
        std::string lower = std::string(a).substr(std::strlen("SCMP_ARCH_"));
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (seccomp_arch_resolve_name(lower.c_str()) != 0) archs.push_back(a);
    }
    json known = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"};
    json supported = {"SECCOMP_FILTER_FLAG_TSYNC"};
    if (kernel_has_flag(SECCOMP_FILTER_FLAG_LOG)) supported.push_back("SECCOMP_FILTER_FLAG_LOG");
    if (kernel_has_flag(SECCOMP_FILTER_FLAG_SPEC_ALLOW)) supported.push_back("SECCOMP_FILTER_FLAG_SPEC_ALLOW");
    if (kernel_has_flag(SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | SECCOMP_FILTER_FLAG_NEW_LISTENER))
        supported.push_back("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
    return {{"enabled", true}, {"actions", actions},  {"operators", operators},
            {"archs", archs},  {"knownFlags", known}, {"supportedFlags", supported}};
}

int load_seccomp(const SeccompProgram& prog) {
    if (prog.empty()) return -1;
    sock_fprog fprog{static_cast<unsigned short>(prog.bpf.size()), const_cast<sock_filter*>(prog.bpf.data())};
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, prog.flags, &fprog);
    if (rc < 0) {
        int e = errno;
        if (e == EACCES) fail(e, "loading the seccomp filter (needs no_new_privs or CAP_SYS_ADMIN)");
        fail(e, "loading the seccomp filter");
    }
    // With NEW_LISTENER the kernel returns the listener fd, already O_CLOEXEC (seccomp_set_mode_filter).
    return prog.uses_notify ? static_cast<int>(rc) : -1;
}

void send_seccomp_listener(const SeccompProgram& prog, int notify_fd, const json& state) {
    if (prog.listener_path.empty()) fail("linux.seccomp.listenerPath: not set, cannot pass the notify fd");
    // OCI runtime-spec config-linux.md "The Container Process State": ociVersion, fds, pid, metadata,
    // state; fds names the descriptors sent with SCM_RIGHTS in order.
    json msg = {
        {"ociVersion", state.is_object() ? state.value("ociVersion", std::string("1.0.2")) : std::string("1.0.2")},
        {"fds", json::array({"seccompFd"})},
        {"pid", state.is_object() ? state.value("pid", 0) : 0},
        {"state", state},
    };
    if (!prog.listener_metadata.empty()) msg["metadata"] = prog.listener_metadata;
    const std::string payload = msg.dump();

    UniqueFd sock(static_cast<int>(check(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, prog.listener_path.c_str(), prog.listener_path.size() + 1);
    if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
        fail_errno("connecting to the seccomp listener " + prog.listener_path);

    iovec iov{const_cast<char*>(payload.data()), payload.size()};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &notify_fd, sizeof(int));
    ssize_t n;
    do n = sendmsg(sock.get(), &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) fail_errno("sending the seccomp fd to " + prog.listener_path);
    // A stream socket may take the message in pieces; the fd went with the first one.
    size_t sent = static_cast<size_t>(n);
    while (sent < payload.size()) {
        n = send(sock.get(), payload.data() + sent, payload.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_errno("sending the container state to " + prog.listener_path);
        sent += static_cast<size_t>(n);
    }
}

}  // namespace trustme::security
