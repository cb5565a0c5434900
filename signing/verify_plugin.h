/* C ABI between trustme-runtime (lean, no OpenSSL) and libtrustme-verify.so (OpenSSL), which the runtime
 * dlopen()s only when the policy asks for signatures. The runtime passes directory fds it opened once and
 * the exact config.json bytes it parsed, and later mounts the very rootfs fd it passed: what is verified is
 * what runs (no path is resolved twice). */
#ifndef TRUSTME_VERIFY_PLUGIN_H
#define TRUSTME_VERIFY_PLUGIN_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 3: trustme_verify_result gained error_code. Fields are only ever appended, so a plugin of another ABI can
 * still fill `location` and `error` to refuse the request in one line. */
#define TRUSTME_VERIFY_ABI 3

struct trustme_verify_request {
    int abi;                 /* TRUSTME_VERIFY_ABI */
    const char* policy_path; /* policy file to apply */
    const char* bundle_path; /* for messages */
    int bundle_fd;           /* O_DIRECTORY fd of the bundle */
    int rootfs_fd;           /* O_DIRECTORY fd of the rootfs the runtime will mount */
    const char* config_json; /* exact bytes of config.json as parsed by the runtime */
    size_t config_len;
};

struct trustme_verify_result {
    char location[16];        /* "bundle", "rootfs" or "none" (unsigned, mode warn) */
    char manifest_digest[72]; /* hex SHA-256 of the manifest file's bytes */
    char config_digest[72];   /* hex SHA-256 of config.json */
    char signer_subject[512]; /* RFC 2253 subject of the signer certificate */
    char error[1024];         /* one line naming the file or field and the reason, when refused */
    char warning[1024];       /* set in mode "warn" when verification failed but the bundle may run */
    char image[1024];         /* the signed manifest's image line (trustme-manifest(5)) when the rootfs is a
                                 dm-verity image the runtime must mount instead of the directory, else "" */
    int error_code;           /* the errno behind `error`, 0 when none */
};

/* 0: verified (or allowed in warn mode); non-zero: refused, reason in result->error. */
int trustme_verify_bundle(const struct trustme_verify_request* req, struct trustme_verify_result* result);

#ifdef __cplusplus
}
#endif
#endif
