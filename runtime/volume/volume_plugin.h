/* C ABI between trustme-runtime and libtrustme-volume.so (libcryptsetup + tpm2-tss), dlopen()ed only when a
 * bundle carries org.trustme.volume.* annotations or for `trustme-runtime volume ...`. */
#ifndef TRUSTME_VOLUME_PLUGIN_H
#define TRUSTME_VOLUME_PLUGIN_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: the error out-parameter became struct trustme_volume_error (with the errno), and trustme_volume_abi
 * appeared. The runtime reads trustme_volume_abi before calling anything else and refuses a plugin of another
 * ABI, or one without it (ABI 1), in one line; the plugin refuses a request of another ABI. */
#define TRUSTME_VOLUME_ABI 2

/* The plugin's TRUSTME_VOLUME_ABI (exported: the plugin is built with hidden visibility). */
extern __attribute__((visibility("default"))) const int trustme_volume_abi;

/* Why a call failed. */
struct trustme_volume_error {
    int code;        /* the errno behind text, 0 when none */
    char text[1024]; /* one line */
};

struct trustme_volume_request {
    int abi; /* TRUSTME_VOLUME_ABI */
    const char* container_id;
    const char* annotations_json; /* config.json "annotations" object, serialized */
    const char* policy_path;      /* policy file ("" for none): TCTI, PCRs */
    const char* state_dir;        /* the container's state directory: the plugin records what it opened here */
};

struct trustme_volume_mount {
    char name[64];          /* <name> of org.trustme.volume.<name>.* */
    char device[256];       /* /dev/mapper/... to mount */
    char fstype[32];        /* e.g. ext4 */
    char destination[4096]; /* absolute path inside the container */
    int readonly;
};

/* Unseal, attach loop, activate dm-crypt for every volume annotation. On failure, everything opened so far
 * is closed again before returning. 0 ok; *count set to the number of mounts written. */
int trustme_volumes_open(const struct trustme_volume_request* req, struct trustme_volume_mount* mounts,
                         size_t max_mounts, size_t* count, struct trustme_volume_error* err);

/* A rootfs that is a dm-verity image (trustme-sign sign --image): the parameters come from the signed
 * manifest's image line (trustme-manifest(5)). */
struct trustme_verity_root {
    int abi; /* TRUSTME_VOLUME_ABI */
    const char* container_id;
    const char* state_dir;  /* recorded here with the volumes: trustme_volumes_close undoes it */
    int image_fd;           /* the image file, opened read-only by the runtime */
    const char* image_path; /* for messages and cleanup */
    const char* root_hash;  /* hex, SHA-256 */
    const char* salt;       /* hex */
    unsigned long long data_blocks, hash_offset;
    unsigned block;
};

/* Attach the image read-only, open its dm-verity mapping and check the first block against the root hash.
 * On failure nothing stays attached. 0 ok, device set to /dev/mapper/... */
int trustme_verity_root_open(const struct trustme_verity_root* req, char* device, size_t devlen,
                             struct trustme_volume_error* err);

/* Deactivate and detach everything recorded in state_dir for this container. Idempotent; safe after a crash
 * at any step (delete --force). */
int trustme_volumes_close(const char* container_id, const char* state_dir, struct trustme_volume_error* err);

/* `trustme-runtime volume create|enroll|inspect ...`: argv[0] is "volume". Returns the exit code. */
int trustme_volume_main(int argc, char** argv);

#ifdef __cplusplus
}
#endif
#endif
