// See tcti.hpp. The swtpm server socket speaks the TPM command stream as is: a command, then its response
// (TPM 2.0 Part 1, "Command/Response Structure": a 10-byte header whose size field covers the whole
// response), for as many commands as the client sends on one connection.
#include "tpm/tcti.hpp"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>
#include <unistd.h>

#include <string>

#include "tpm/tpm.hpp"
#include "base/fd.hpp"

namespace trustme::tpm {
namespace {

constexpr uint64_t kMagic = 0x74727573746d6531ull;  // "trustme1"
constexpr size_t kHeader = 10;
constexpr size_t kMaxResponse = 16384;  // well above a TPM's MAX_RESPONSE_SIZE (4096 on swtpm)

// Standard layout, the common part first: the context pointer tss2 passes around points at `common`.
struct SwtpmSocket {
    TSS2_TCTI_CONTEXT_COMMON_V2 common;
    UniqueFd fd;      // closed by finalize (the TCTI contract), else when the context is deleted
    bool pending;     // a command was sent and its response not yet handed out
    size_t resp_len;  // the response is read whole before it is handed out (a caller may ask its size first)
    uint8_t resp[kMaxResponse];
};

SwtpmSocket* cast(TSS2_TCTI_CONTEXT* c) {
    auto* s = reinterpret_cast<SwtpmSocket*>(c);
    return s && s->common.v1.magic == kMagic ? s : nullptr;
}

uint32_t be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

// Read exactly n bytes; false on EOF or error (the connection is then useless).
bool read_exact(int fd, uint8_t* p, size_t n) {
    while (n > 0) {
        ssize_t got = ::read(fd, p, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        p += got;
        n -= static_cast<size_t>(got);
    }
    return true;
}

TSS2_RC transmit(TSS2_TCTI_CONTEXT* c, size_t size, const uint8_t* cmd) {
    SwtpmSocket* s = cast(c);
    if (!s) return TSS2_TCTI_RC_BAD_CONTEXT;
    if (!cmd || size < kHeader || be32(cmd + 2) != size) return TSS2_TCTI_RC_BAD_VALUE;
    if (s->pending) return TSS2_TCTI_RC_BAD_SEQUENCE;
    if (!s->fd) return TSS2_TCTI_RC_IO_ERROR;
    for (size_t off = 0; off < size;) {
        ssize_t n = ::send(s->fd.get(), cmd + off, size - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return TSS2_TCTI_RC_IO_ERROR;
        off += static_cast<size_t>(n);
    }
    s->pending = true;
    s->resp_len = 0;
    return TSS2_RC_SUCCESS;
}

TSS2_RC receive(TSS2_TCTI_CONTEXT* c, size_t* size, uint8_t* out, int32_t timeout) {
    SwtpmSocket* s = cast(c);
    if (!s) return TSS2_TCTI_RC_BAD_CONTEXT;
    if (!size) return TSS2_TCTI_RC_BAD_REFERENCE;
    if (!s->pending) return TSS2_TCTI_RC_BAD_SEQUENCE;
    if (s->resp_len == 0) {
        if (timeout != TSS2_TCTI_TIMEOUT_BLOCK) {
            pollfd pfd{s->fd.get(), POLLIN, 0};
            int r;
            do r = ::poll(&pfd, 1, timeout);
            while (r < 0 && errno == EINTR);
            if (r == 0) return TSS2_TCTI_RC_TRY_AGAIN;
            if (r < 0) return TSS2_TCTI_RC_IO_ERROR;
        }
        // The rest of a response follows its header at once: no timeout once it has begun.
        if (!read_exact(s->fd.get(), s->resp, kHeader)) return TSS2_TCTI_RC_IO_ERROR;
        uint32_t total = be32(s->resp + 2);
        if (total < kHeader || total > kMaxResponse) return TSS2_TCTI_RC_MALFORMED_RESPONSE;
        if (!read_exact(s->fd.get(), s->resp + kHeader, total - kHeader)) return TSS2_TCTI_RC_IO_ERROR;
        s->resp_len = total;
    }
    size_t total = s->resp_len;
    if (!out) {
        *size = total;
        return TSS2_RC_SUCCESS;
    }
    if (*size < total) {
        *size = total;
        return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
    }
    memcpy(out, s->resp, total);
    *size = total;
    s->resp_len = 0;
    s->pending = false;
    return TSS2_RC_SUCCESS;
}

void finalize(TSS2_TCTI_CONTEXT* c) {
    SwtpmSocket* s = cast(c);
    if (s) s->fd.reset();
}

TSS2_RC cancel(TSS2_TCTI_CONTEXT*) { return TSS2_TCTI_RC_NOT_IMPLEMENTED; }

TSS2_RC poll_handles(TSS2_TCTI_CONTEXT* c, TSS2_TCTI_POLL_HANDLE* handles, size_t* n) {
    SwtpmSocket* s = cast(c);
    if (!s) return TSS2_TCTI_RC_BAD_CONTEXT;
    if (!n) return TSS2_TCTI_RC_BAD_REFERENCE;
    if (handles) {
        if (*n < 1) return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
        handles[0] = pollfd{s->fd.get(), POLLIN, 0};
    }
    *n = 1;
    return TSS2_RC_SUCCESS;
}

// swtpm starts in locality 0, the only one this code uses; changing it needs the control channel.
TSS2_RC set_locality(TSS2_TCTI_CONTEXT*, uint8_t locality) {
    return locality == 0 ? TSS2_RC_SUCCESS : TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

// "swtpm:path=SOCK" and nothing else: other keys (host, port) are tctildr's business.
bool swtpm_unix_path(const std::string& tcti, std::string* path) {
    const std::string prefix = "swtpm:path=";
    if (tcti.rfind(prefix, 0) != 0) return false;
    *path = tcti.substr(prefix.size());
    return !path->empty() && path->find(',') == std::string::npos;
}

}  // namespace

Tcti::Tcti(const std::string& tcti) {
    std::string path;
    if (!swtpm_unix_path(tcti, &path)) {
        TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &ctx_);
        if (rc != TSS2_RC_SUCCESS)
            throw TpmError(
                Cause::NoTpm,
                "TPM (" + tcti +
                    "): cannot open the TPM through this TCTI (no TPM, or a wrong TCTI string): " + Tss2_RC_Decode(rc));
        return;
    }
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) throw TpmError(Cause::NoTpm, "TPM (" + tcti + "): socket path too long");
    path.copy(sa.sun_path, sizeof sa.sun_path - 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw TpmError(Cause::NoTpm, "TPM (" + tcti + "): socket: " + strerror(errno));
    int rc;
    do rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        throw TpmError(Cause::NoTpm,
                       "TPM (" + tcti + "): cannot connect to " + path + " (no swtpm there?): " + strerror(errno));
    auto* s = new SwtpmSocket{};
    s->fd = std::move(fd);
    auto& v1 = s->common.v1;
    v1.magic = kMagic;
    v1.version = 2;
    v1.transmit = transmit;
    v1.receive = receive;
    v1.finalize = finalize;
    v1.cancel = cancel;
    v1.getPollHandles = poll_handles;
    v1.setLocality = set_locality;
    s->common.makeSticky = nullptr;  // reported as not implemented by the Tss2_Tcti_MakeSticky macro
    ctx_ = reinterpret_cast<TSS2_TCTI_CONTEXT*>(s);
    own_ = true;
}

Tcti::~Tcti() {
    if (!ctx_) return;
    if (own_) {
        finalize(ctx_);
        delete reinterpret_cast<SwtpmSocket*>(ctx_);
    } else {
        Tss2_TctiLdr_Finalize(&ctx_);
    }
}

}  // namespace trustme::tpm
