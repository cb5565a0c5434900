/* Drives libtrustme-volume.so through its C ABI exactly as trustme-runtime does (dlopen), for tests:
 *   volume-tool PLUGIN volume ARGS...                      trustme_volume_main
 *   volume-tool PLUGIN open ID STATE_DIR ANNOTATIONS [POLICY]   prints "name device fstype destination ro"
 *   volume-tool PLUGIN close ID STATE_DIR                  trustme_volumes_close
 * Errors: the plugin's message on stderr, exit status 1. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "runtime/volume/volume_plugin.h"

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: volume-tool PLUGIN volume|open|close ...\n");
        return 2;
    }
    void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    const int* abi = (const int*)dlsym(h, "trustme_volume_abi");
    if (!abi || *abi != TRUSTME_VOLUME_ABI) {
        fprintf(stderr, "%s: ABI %d, %d expected\n", argv[1], abi ? *abi : 1, TRUSTME_VOLUME_ABI);
        return 2;
    }
    struct trustme_volume_error err = {0, ""};
    if (!strcmp(argv[2], "volume")) {
        int (*fn)(int, char**) = (int (*)(int, char**))dlsym(h, "trustme_volume_main");
        return fn(argc - 2, argv + 2);
    }
    if (!strcmp(argv[2], "open") && (argc == 6 || argc == 7)) {
        int (*fn)(const struct trustme_volume_request*, struct trustme_volume_mount*, size_t, size_t*,
                  struct trustme_volume_error*) =
            (int (*)(const struct trustme_volume_request*, struct trustme_volume_mount*, size_t, size_t*,
                     struct trustme_volume_error*))dlsym(h, "trustme_volumes_open");
        struct trustme_volume_request req = {TRUSTME_VOLUME_ABI, argv[3], argv[5], argc == 7 ? argv[6] : "", argv[4]};
        static struct trustme_volume_mount mounts[16];
        size_t n = 0;
        if (fn(&req, mounts, 16, &n, &err) != 0) {
            fprintf(stderr, "%s\n", err.text);
            return 1;
        }
        for (size_t i = 0; i < n; ++i)
            printf("%s %s %s %s %d\n", mounts[i].name, mounts[i].device, mounts[i].fstype, mounts[i].destination,
                   mounts[i].readonly);
        return 0;
    }
    if (!strcmp(argv[2], "close") && argc == 5) {
        int (*fn)(const char*, const char*, struct trustme_volume_error*) =
            (int (*)(const char*, const char*, struct trustme_volume_error*))dlsym(h, "trustme_volumes_close");
        if (fn(argv[3], argv[4], &err) != 0) {
            fprintf(stderr, "%s\n", err.text);
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "volume-tool: bad arguments\n");
    return 2;
}
