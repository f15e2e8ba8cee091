/*
 * The test workload: holds MEM MiB of state in anonymous memory and appends a counter to a file on
 * its own filesystem, forever. On SIGUSR1 it checks itself and writes a verdict to DIR/verify.txt:
 *  - memory: every page holds the pattern derived from (seed, page, word), except word 0 of a page,
 *    which holds the last counter value n with n % pages == page (or the pattern if none yet);
 *  - file: DIR/counter.log holds exactly the lines 1..n, so nothing written before a freeze was lost
 *    and the counter went on from where it stopped.
 * Static, so it needs nothing in its root filesystem.
 * Usage: workload --mem-mib N [--interval-ms I] [--dir D] [--open PATH]...
 * --open keeps PATH open for the workload's life (tests: a device ferry must refuse to move).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static volatile sig_atomic_t verify_requested;
static void on_usr1(int sig) { (void)sig; verify_requested = 1; }

static uint64_t pattern(uint64_t seed, uint64_t page, uint64_t word) {
    uint64_t x = seed ^ (page * 0x9E3779B97F4A7C15ULL) ^ (word * 0xC2B2AE3D27D4EB4FULL);
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return x;
}

static void write_file(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    if (write(fd, text, strlen(text)) < 0) { close(fd); return; }
    fsync(fd);
    close(fd);
    rename(tmp, path);
}

/* Expected word 0 of `page` after counter n: the last m <= n with m % pages == page, m >= 1. */
static uint64_t expected_marker(uint64_t seed, uint64_t pages, uint64_t page, uint64_t n) {
    if (n == 0) return pattern(seed, page, 0);
    uint64_t m = n - ((n - page + pages) % pages);
    if (m > n || m == 0) return pattern(seed, page, 0);
    return m;
}

static int check_file(const char *path, uint64_t n, char *why, size_t whylen) {
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(why, whylen, "cannot open counter.log: %s", strerror(errno)); return 0; }
    uint64_t expect = 1, v;
    char line[64];
    while (fgets(line, sizeof line, f)) {
        v = strtoull(line, NULL, 10);
        if (v != expect) { snprintf(why, whylen, "file line %llu holds %llu", (unsigned long long)expect, (unsigned long long)v); fclose(f); return 0; }
        expect++;
    }
    fclose(f);
    if (expect - 1 != n) { snprintf(why, whylen, "file ends at %llu but memory says %llu", (unsigned long long)(expect - 1), (unsigned long long)n); return 0; }
    return 1;
}

int main(int argc, char **argv) {
    uint64_t mib = 64, interval_ms = 20, seed = 0x5eed;
    const char *dir = "/data";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mem-mib")) mib = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--interval-ms")) interval_ms = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--open")) {
            if (open(argv[i + 1], O_RDONLY) < 0) { perror(argv[i + 1]); return 1; }
        }
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    uint64_t pages = mib * 1024 * 1024 / PAGE;
    uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap"); return 1; }
    for (uint64_t p = 0; p < pages; p++)
        for (uint64_t w = 0; w < WORDS; w++) mem[p * WORDS + w] = pattern(seed, p, w);

    char logpath[4096], verifypath[4096], readypath[4096];
    snprintf(logpath, sizeof logpath, "%s/counter.log", dir);
    snprintf(verifypath, sizeof verifypath, "%s/verify.txt", dir);
    snprintf(readypath, sizeof readypath, "%s/ready", dir);
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
    if (fd < 0) { perror("open counter.log"); return 1; }

    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    write_file(readypath, "ready\n");

    uint64_t n = 0;
    struct timespec ts = { (time_t)(interval_ms / 1000), (long)(interval_ms % 1000) * 1000000L };
    for (;;) {
        n++;
        mem[(n % pages) * WORDS] = n;
        char line[32];
        int len = snprintf(line, sizeof line, "%llu\n", (unsigned long long)n);
        if (write(fd, line, (size_t)len) != len) { perror("write"); return 1; }
        if (verify_requested) {
            verify_requested = 0;
            char why[256] = "";
            int ok = 1;
            for (uint64_t p = 0; ok && p < pages; p++) {
                if (mem[p * WORDS] != expected_marker(seed, pages, p, n)) {
                    snprintf(why, sizeof why, "page %llu marker is %llu", (unsigned long long)p, (unsigned long long)mem[p * WORDS]);
                    ok = 0;
                }
                for (uint64_t w = 1; ok && w < WORDS; w++)
                    if (mem[p * WORDS + w] != pattern(seed, p, w)) {
                        snprintf(why, sizeof why, "page %llu word %llu differs", (unsigned long long)p, (unsigned long long)w);
                        ok = 0;
                    }
            }
            if (ok) ok = check_file(logpath, n, why, sizeof why);
            char out[512];
            snprintf(out, sizeof out, "%s n=%llu mem_mib=%llu pages=%llu%s%s\n", ok ? "PASS" : "FAIL",
                     (unsigned long long)n, (unsigned long long)mib, (unsigned long long)pages, ok ? "" : " reason=", why);
            write_file(verifypath, out);
        }
        nanosleep(&ts, NULL);
    }
}
