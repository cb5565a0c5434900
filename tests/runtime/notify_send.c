/* sd_notify(3) in a few lines, for containers built from busybox (which has no unix datagram client):
 * notify_send MESSAGE sends MESSAGE to $NOTIFY_SOCKET; "notify_send" alone prints $NOTIFY_SOCKET. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char** argv) {
    const char* path = getenv("NOTIFY_SOCKET");
    if (argc < 2) {
        printf("%s\n", path ? path : "");
        return 0;
    }
    if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un*)0)->sun_path)) return 2;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path));
    if (path[0] == '@') sa.sun_path[0] = 0;
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (s < 0 || sendto(s, argv[1], strlen(argv[1]), 0, (struct sockaddr*)&sa, len) < 0) {
        perror("notify_send");
        return 1;
    }
    return 0;
}
