// Test data for bench/attest.py: a measurement history of N records in this boot's log, each one also
// extended into the PCR (one TPM connection for all), as N container starts would have left it.
//   trustme-bench-attest-fill --tcti TCTI --log BASE --count N [--pcr P]
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "attest/eventlog.hpp"
#include "tpm/pcr.hpp"
#include "base/error.hpp"
#include "base/fd.hpp"

using namespace trustme;

int main(int argc, char** argv) {
    std::string tcti, log;
    unsigned long count = 0, pcr = 11;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i];
        if (k == "--tcti") tcti = argv[i + 1];
        else if (k == "--log") log = argv[i + 1];
        else if (k == "--count") count = std::strtoul(argv[i + 1], nullptr, 10);
        else if (k == "--pcr") pcr = std::strtoul(argv[i + 1], nullptr, 10);
    }
    if (tcti.empty() || log.empty()) {
        std::fprintf(stderr, "usage: %s --tcti TCTI --log BASE --count N [--pcr P]\n", argv[0]);
        return 2;
    }
    try {
        std::string boot = attest::boot_id();
        std::string path = attest::boot_log_path(log, boot);
        tpm::PcrTpm t(tcti);
        int64_t reset = t.reset_count();
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!fd) fail_errno(path);
        std::string buf;
        for (unsigned long n = 0; n < count; ++n) {
            attest::Event e;
            e.recnum = n;
            e.pcr = static_cast<uint32_t>(pcr);
            std::string id = "bench-" + std::to_string(n);
            e.content = {{"event", "container-create"},
                         {"container_id", id},
                         {"bundle", "/var/lib/containers/bundles/" + id},
                         {"manifest_sha256", std::string(64, 'a')},
                         {"config_sha256", std::string(64, 'b')},
                         {"signer", "CN=release signer,O=example"},
                         {"source", "runtime-verified"},
                         {"time", "2026-12-01T00:00:00Z"},
                         {"boot_id", boot},
                         {"tpm_reset_count", reset}};
            e.digest = attest::content_digest(e.content);
            buf += attest::serialize_record(e);
            t.pcr_extend(e.pcr, e.digest);
            if (buf.size() > (1 << 20) || n + 1 == count) {
                if (::write(fd.get(), buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) fail_errno(path);
                buf.clear();
            }
        }
        ::unlink(attest::Checkpoint::path_for(path).c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "trustme-bench-attest-fill: %s\n", e.what());
        return 1;
    }
}
