/* C ABI of libtrustme-attest-tool.so, the module trustme-attest loads for every command but `hook measure`
 * (attest/main.cpp loads it, attest/tool.cpp is it). C only: the module and trustme-attest each link their
 * own libstdc++, so no exception or C++ object crosses it. */
#ifndef TRUSTME_ATTEST_TOOL_MODULE_H
#define TRUSTME_ATTEST_TOOL_MODULE_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: the error out-parameter became struct trustme_attest_error (with the errno), and
 * trustme_attest_tool_abi appeared. trustme-attest reads it before calling anything else and refuses a
 * module of another ABI, or one without it (ABI 1), in one line. */
#define TRUSTME_ATTEST_TOOL_ABI 2

/* The module's TRUSTME_ATTEST_TOOL_ABI (exported: the module is built with hidden visibility). */
extern __attribute__((visibility("default"))) const int trustme_attest_tool_abi;

/* Why a call failed. */
struct trustme_attest_error {
    int code;        /* the errno behind text, 0 when none */
    char text[1024]; /* one line */
};

/* `trustme-attest ARGS...` for every command but `hook`: the exit code. */
int trustme_attest_tool_main(int argc, char** argv);

/* Hex SHA-256 (64 characters and a NUL into hex[65]) of the manifest built from the bundle; 0, or 1 with
 * the reason in err. */
int trustme_attest_manifest_sha256(int bundle_fd, int root_fd, int bundle_form, char* hex,
                                   struct trustme_attest_error* err);

#ifdef __cplusplus
}
#endif
#endif
