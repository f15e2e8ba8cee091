/*
 * ferryctl: what a workload runs inside its container to ask ferry to move it (the 2009 design's
 * self-checkpoint). It talks to the node agent over /run/ferry/ferry.sock, which ferry mounts into
 * every container; the agent knows the caller by the kernel's view of the socket's peer and its
 * cgroup, never by what the request says.
 * Usage: ferryctl migrate NODE   (prints the agent's JSON answer; exit 0 when accepted)
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "migrate")) {
        fprintf(stderr, "usage: ferryctl migrate NODE\n");
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, "/run/ferry/ferry.sock", sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr)) { perror("connect /run/ferry/ferry.sock"); return 1; }
    char req[512];
    int n = snprintf(req, sizeof req, "{\"action\":\"migrate\",\"target\":\"%s\"}\n", argv[2]);
    if (write(fd, req, (size_t)n) != n) { perror("write"); return 1; }
    char resp[4096];
    ssize_t got = 0, r;
    while (got < (ssize_t)sizeof resp - 1 && (r = read(fd, resp + got, sizeof resp - 1 - (size_t)got)) > 0) got += r;
    close(fd);
    resp[got > 0 ? got : 0] = 0;
    fputs(resp, stdout);
    return strstr(resp, "\"ok\":true") ? 0 : 1;
}
