// cgroup v2 has no devices.allow/deny files: device access is decided by BPF_PROG_TYPE_CGROUP_DEVICE
// programs attached to the cgroup (Documentation/admin-guide/cgroup-v2.rst "Device controller").
// The program has the shape crun introduced (src/libcrun/ebpf.c) and runc adopted
// (libcontainer/cgroups/devices/devicefilter.go): load type, access and major/minor from
// struct bpf_cgroup_dev_ctx into r2..r5, then one block per rule that jumps to the next block on a
// mismatch and otherwise returns the rule's verdict; the last block returns the default.
// The rule list is first reduced with the v1 kernel semantics (emulate_devices), so v1 and v2 enforce
// the same thing for the same config.
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "runtime/cgroups/bpf_devices.hpp"

namespace trustme::cgroups::detail {
namespace {

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn i;
    std::memset(&i, 0, sizeof i);
    i.code = code;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    return i;
}

constexpr uint8_t R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5;

unsigned bpf_access(const std::string& a) {
    unsigned b = 0;
    for (char c : a)
        b |= c == 'r' ? BPF_DEVCG_ACC_READ : c == 'w' ? BPF_DEVCG_ACC_WRITE : c == 'm' ? BPF_DEVCG_ACC_MKNOD : 0;
    return b;
}

long sys_bpf(int cmd, bpf_attr& attr) { return ::syscall(__NR_bpf, cmd, &attr, sizeof attr); }

}  // namespace

std::vector<bpf_insn> build_device_program(const DeviceState& st) {
    std::vector<bpf_insn> p;
    // ctx (r1): u32 access_type = (access << 16) | type; u32 major; u32 minor (uapi bpf.h
    // struct bpf_cgroup_dev_ctx).
    p.push_back(insn(BPF_LDX | BPF_MEM | BPF_W, R2, R1, 0, 0));
    p.push_back(insn(BPF_ALU | BPF_AND | BPF_K, R2, 0, 0, 0xFFFF));
    p.push_back(insn(BPF_LDX | BPF_MEM | BPF_W, R3, R1, 0, 0));
    p.push_back(insn(BPF_ALU | BPF_RSH | BPF_K, R3, 0, 0, 16));
    p.push_back(insn(BPF_LDX | BPF_MEM | BPF_W, R4, R1, 4, 0));
    p.push_back(insn(BPF_LDX | BPF_MEM | BPF_W, R5, R1, 8, 0));

    for (const auto& e : st.exceptions) {
        std::vector<bpf_insn> b;  // jumps carry off = -1 as "to the next block", fixed below
        int type = e.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK;
        b.push_back(insn(BPF_JMP32 | BPF_JNE | BPF_K, R2, 0, -1, type));
        unsigned acc = bpf_access(e.access);
        const unsigned all = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
        if (acc != all) {
            b.push_back(insn(BPF_ALU | BPF_MOV | BPF_X, R1, R3, 0, 0));
            b.push_back(insn(BPF_ALU | BPF_AND | BPF_K, R1, 0, 0, static_cast<int32_t>(acc)));
            if (e.allow) {
                // allow-list entry: every requested access must be granted (kernel match_exception).
                b.push_back(insn(BPF_JMP32 | BPF_JNE | BPF_X, R1, R3, -1, 0));
            } else {
                // deny entry in allow-all mode: any overlap denies (kernel match_exception_partial).
                b.push_back(insn(BPF_JMP32 | BPF_JEQ | BPF_K, R1, 0, -1, 0));
            }
        }
        if (e.major >= 0) b.push_back(insn(BPF_JMP32 | BPF_JNE | BPF_K, R4, 0, -1, static_cast<int32_t>(e.major)));
        if (e.minor >= 0) b.push_back(insn(BPF_JMP32 | BPF_JNE | BPF_K, R5, 0, -1, static_cast<int32_t>(e.minor)));
        b.push_back(insn(BPF_ALU | BPF_MOV | BPF_K, R0, 0, 0, e.allow ? 1 : 0));
        b.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
        for (size_t i = 0; i < b.size(); ++i)
            if (b[i].off == -1) b[i].off = static_cast<int16_t>(b.size() - i - 1);
        p.insert(p.end(), b.begin(), b.end());
    }
    p.push_back(insn(BPF_ALU | BPF_MOV | BPF_K, R0, 0, 0, st.default_allow ? 1 : 0));
    p.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    return p;
}

void attach_device_filter(const std::string& cgroup_dir, const std::vector<DeviceRule>& rules) {
    auto prog = build_device_program(emulate_devices(rules));

    static const char license[] = "Apache";  // runc's choice; the program calls no GPL-only helper
    bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = reinterpret_cast<uint64_t>(prog.data());
    attr.insn_cnt = static_cast<uint32_t>(prog.size());
    attr.license = reinterpret_cast<uint64_t>(license);
    UniqueFd prog_fd(static_cast<int>(sys_bpf(BPF_PROG_LOAD, attr)));
    if (!prog_fd) {
        int err = errno;
        // Load again with the verifier log, only to explain the failure.
        std::vector<char> log(16384);
        attr.log_level = 1;
        attr.log_buf = reinterpret_cast<uint64_t>(log.data());
        attr.log_size = static_cast<uint32_t>(log.size());
        UniqueFd again(static_cast<int>(sys_bpf(BPF_PROG_LOAD, attr)));
        std::string msg(log.data());
        for (auto& c : msg)
            if (c == '\n') c = ' ';
        if (msg.size() > 300) msg = msg.substr(msg.size() - 300);
        fail(err, "cgroups: load the device filter (BPF_PROG_LOAD)" + (msg.empty() ? "" : " [" + msg + "]"));
    }

    UniqueFd cg(::open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg) fail_errno("cgroups: open " + cgroup_dir);

    // Programs attached before (a previous apply/update): replaced after the new one is in place,
    // so there is never a moment without a filter (runc devices/ebpf_linux.go does the same).
    std::vector<uint32_t> old(64);
    std::memset(&attr, 0, sizeof attr);
    attr.query.target_fd = static_cast<uint32_t>(cg.get());
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = reinterpret_cast<uint64_t>(old.data());
    attr.query.prog_cnt = static_cast<uint32_t>(old.size());
    if (sys_bpf(BPF_PROG_QUERY, attr) == 0) old.resize(attr.query.prog_cnt);
    else old.clear();

    std::memset(&attr, 0, sizeof attr);
    attr.target_fd = static_cast<uint32_t>(cg.get());
    attr.attach_bpf_fd = static_cast<uint32_t>(prog_fd.get());
    attr.attach_type = BPF_CGROUP_DEVICE;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (sys_bpf(BPF_PROG_ATTACH, attr) < 0) fail_errno("cgroups: attach the device filter to " + cgroup_dir);

    for (uint32_t id : old) {
        std::memset(&attr, 0, sizeof attr);
        attr.prog_id = id;
        UniqueFd ofd(static_cast<int>(sys_bpf(BPF_PROG_GET_FD_BY_ID, attr)));
        if (!ofd) continue;
        std::memset(&attr, 0, sizeof attr);
        attr.target_fd = static_cast<uint32_t>(cg.get());
        attr.attach_bpf_fd = static_cast<uint32_t>(ofd.get());
        attr.attach_type = BPF_CGROUP_DEVICE;
        if (sys_bpf(BPF_PROG_DETACH, attr) < 0)
            fail_errno("cgroups: detach the previous device filter from " + cgroup_dir);
    }
}

}  // namespace trustme::cgroups::detail
