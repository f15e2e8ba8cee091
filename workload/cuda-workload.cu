/*
 * The GPU test workload (test/gpu/): holds GPU_MIB MiB of device memory filled with a pattern
 * derived from (seed, word), and a counter it bumps on the device every INTERVAL_MS, appending each
 * value to DIR/counter.log, forever. On SIGUSR1 it checks itself and writes a verdict to
 * DIR/verify.txt, as workload.c does:
 *  - device memory: every word still holds its pattern (counted on the GPU, so it also proves the
 *    context came back and runs kernels);
 *  - counter: the device's counter equals the last value written, and DIR/counter.log holds
 *    exactly the lines 1..n, so nothing done before a freeze was lost and it went on from there.
 * Build: nvcc -O2 -o cuda-workload cuda-workload.cu (the CUDA runtime linked in; the driver's
 * libcuda.so.1 is found at run time).
 * Usage: cuda-workload --gpu-mib N [--interval-ms I] [--dir D]
 */
#include <cuda_runtime.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t verify_requested;
static void on_usr1(int sig) { (void)sig; verify_requested = 1; }

__host__ __device__ static uint64_t pattern(uint64_t seed, uint64_t word) {
    uint64_t x = seed ^ (word * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return x;
}

__global__ void fill(uint64_t *buf, uint64_t words, uint64_t seed) {
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < words; i += (uint64_t)gridDim.x * blockDim.x)
        buf[i] = pattern(seed, i);
}

__global__ void check(const uint64_t *buf, uint64_t words, uint64_t seed, unsigned long long *bad) {
    for (uint64_t i = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; i < words; i += (uint64_t)gridDim.x * blockDim.x)
        if (buf[i] != pattern(seed, i)) atomicAdd(bad, 1ULL);
}

__global__ void bump(unsigned long long *counter) { *counter += 1; }

static void die(const char *what, cudaError_t e) {
    fprintf(stderr, "cuda-workload: %s: %s\n", what, cudaGetErrorString(e));
    exit(1);
}
#define CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) die(#call, e_); } while (0)

static void write_file(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fputs(text, f);
    fflush(f);
    fsync(fileno(f));
    fclose(f);
    rename(tmp, path);
}

/* DIR/counter.log holds exactly 1..n. */
static int check_log(const char *path, unsigned long long n, char *why, size_t len) {
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(why, len, "cannot open counter.log: %s", strerror(errno)); return 0; }
    unsigned long long expect = 1, v;
    while (fscanf(f, "%llu", &v) == 1) {
        if (v != expect) { snprintf(why, len, "counter.log has %llu where %llu was due", v, expect); fclose(f); return 0; }
        expect++;
    }
    fclose(f);
    if (expect - 1 != n) { snprintf(why, len, "counter.log ends at %llu, the counter is %llu", expect - 1, n); return 0; }
    return 1;
}

int main(int argc, char **argv) {
    uint64_t mib = 64, interval_ms = 100;
    const char *dir = ".";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--gpu-mib")) mib = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--interval-ms")) interval_ms = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else { fprintf(stderr, "usage: cuda-workload --gpu-mib N [--interval-ms I] [--dir D]\n"); return 2; }
    }
    char logpath[4096], verifypath[4096], readypath[4096];
    snprintf(logpath, sizeof logpath, "%s/counter.log", dir);
    snprintf(verifypath, sizeof verifypath, "%s/verify.txt", dir);
    snprintf(readypath, sizeof readypath, "%s/ready", dir);
    signal(SIGUSR1, on_usr1);

    const uint64_t seed = 0xfe77e5eedULL ^ (uint64_t)mib;
    const uint64_t words = mib * 1024 * 1024 / 8;
    uint64_t *buf;
    unsigned long long *counter, *bad;
    CK(cudaMalloc(&buf, words * 8));
    CK(cudaMalloc(&counter, sizeof *counter));
    CK(cudaMalloc(&bad, sizeof *bad));
    CK(cudaMemset(counter, 0, sizeof *counter));
    fill<<<1024, 256>>>(buf, words, seed);
    CK(cudaDeviceSynchronize());
    FILE *log = fopen(logpath, "w");
    if (!log) { perror(logpath); return 1; }
    write_file(readypath, "ready\n");

    unsigned long long n = 0;
    for (;;) {
        if (verify_requested) {
            verify_requested = 0;
            unsigned long long wrong = 0, on_device = 0;
            char why[512] = "";
            CK(cudaMemset(bad, 0, sizeof *bad));
            check<<<1024, 256>>>(buf, words, seed, bad);
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(&wrong, bad, sizeof wrong, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(&on_device, counter, sizeof on_device, cudaMemcpyDeviceToHost));
            char verdict[1024];
            if (wrong)
                snprintf(verdict, sizeof verdict, "FAIL reason=%llu of %llu device words changed\n", wrong, (unsigned long long)words);
            else if (on_device != n)
                snprintf(verdict, sizeof verdict, "FAIL reason=device counter %llu, host counter %llu\n", on_device, n);
            else if (!check_log(logpath, n, why, sizeof why))
                snprintf(verdict, sizeof verdict, "FAIL reason=%s\n", why);
            else
                snprintf(verdict, sizeof verdict, "PASS n=%llu gpu_mib=%llu\n", n, (unsigned long long)mib);
            write_file(verifypath, verdict);
        }
        bump<<<1, 1>>>(counter);
        CK(cudaDeviceSynchronize());
        n++;
        fprintf(log, "%llu\n", n);
        fflush(log);
        struct timespec ts = {(time_t)(interval_ms / 1000), (long)(interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}
