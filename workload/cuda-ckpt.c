/*
 * ferry-cuda: ferry's helper for a process's CUDA state, through the CUDA driver's own checkpoint
 * API (cuCheckpointProcess*, driver 550+; no NVIDIA tool needed). The agent runs it with argument
 * arrays; every answer is one JSON line on stdout, every failure one line on stderr and a non-zero
 * exit status:
 *   ferry-cuda probe                  the driver's version and each GPU: name, UUID, memory total and free
 *   ferry-cuda state PID              "running", "locked", "checkpointed", "failed", or "none" (no CUDA state)
 *   ferry-cuda lock PID [TIMEOUT_MS]  stops new CUDA work and waits for the running work to finish
 *   ferry-cuda checkpoint PID         GPU memory copied into the process's host memory, GPU released
 *   ferry-cuda restore PID            GPU memory put back (the process must be CHECKPOINTED)
 *   ferry-cuda unlock PID             lets the process's CUDA calls go on
 * The driver is libcuda.so.1 from the loader's path, or the file $FERRY_LIBCUDA names.
 * Exit status: 0 done, 2 usage, 3 no CUDA driver here (libcuda.so.1 not found), 4 the driver lacks
 * the checkpoint API (too old), 5 the driver refused (its error name and text follow).
 *
 * libcuda is opened at run time, so the helper builds on machines without CUDA (CI) and fails there
 * with exit 3. Where cuda.h is installed, scripts/setup.sh builds with -DFERRY_HAVE_CUDA_H and the
 * declarations below come from it instead, so they are checked against the real header.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FERRY_HAVE_CUDA_H
#include <cuda.h>
#else
/* The driver API's stable C ABI, as cuda.h (CUDA 12.8 and later) declares the parts used here. */
typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef unsigned long long cuuint64_t;
typedef struct { char bytes[16]; } CUuuid;
typedef enum {
    CU_PROCESS_STATE_RUNNING = 0,
    CU_PROCESS_STATE_LOCKED = 1,
    CU_PROCESS_STATE_CHECKPOINTED = 2,
    CU_PROCESS_STATE_FAILED = 3,
} CUprocessState;
typedef struct {
    unsigned int timeoutMs;
    unsigned int reserved0;
    cuuint64_t reserved1[7];
} CUcheckpointLockArgs;
#define CUDA_SUCCESS 0
#define CUDA_ERROR_NOT_FOUND 500
#endif

/* The driver reads 64 bytes of lock arguments, whichever declarations are in use. */
_Static_assert(sizeof(CUcheckpointLockArgs) == 64, "CUcheckpointLockArgs is 64 bytes in cuda.h");

typedef CUresult (*init_fn)(unsigned int);
typedef CUresult (*version_fn)(int *);
typedef CUresult (*count_fn)(int *);
typedef CUresult (*device_fn)(CUdevice *, int);
typedef CUresult (*name_fn)(char *, int, CUdevice);
typedef CUresult (*uuid_fn)(CUuuid *, CUdevice);
typedef CUresult (*total_fn)(size_t *, CUdevice);
typedef CUresult (*retain_fn)(CUcontext *, CUdevice);
typedef CUresult (*release_fn)(CUdevice);
typedef CUresult (*set_ctx_fn)(CUcontext);
typedef CUresult (*mem_info_fn)(size_t *, size_t *);
typedef CUresult (*error_fn)(CUresult, const char **);
typedef CUresult (*get_state_fn)(int, CUprocessState *);
typedef CUresult (*lock_fn)(int, CUcheckpointLockArgs *);
typedef CUresult (*pid_op_fn)(int, void *);

static void *lib;

static void *need(const char *name, int missing_status) {
    void *f = dlsym(lib, name);
    if (!f) {
        fprintf(stderr, "ferry-cuda: the CUDA driver has no %s (driver too old for checkpoints?)\n", name);
        exit(missing_status);
    }
    return f;
}

/* Exits with status 5 and the driver's own words for `r`, if `r` is an error. */
static void check(CUresult r, const char *what) {
    if (r == CUDA_SUCCESS) return;
    const char *name = "unknown", *text = "";
    error_fn en = (error_fn)dlsym(lib, "cuGetErrorName");
    error_fn es = (error_fn)dlsym(lib, "cuGetErrorString");
    if (en) en(r, &name);
    if (es) es(r, &text);
    fprintf(stderr, "ferry-cuda: %s: %s (%d): %s\n", what, name, (int)r, text);
    exit(5);
}

static int parse_pid(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0 || v > 4194304) {
        fprintf(stderr, "ferry-cuda: not a process ID: %s\n", s);
        exit(2);
    }
    return (int)v;
}

static void probe(void) {
    int version = 0, count = 0;
    check(((version_fn)need("cuDriverGetVersion", 4))(&version), "cuDriverGetVersion");
    check(((count_fn)need("cuDeviceGetCount", 4))(&count), "cuDeviceGetCount");
    /* Whether this driver can checkpoint at all: the symbol is there. */
    int api = dlsym(lib, "cuCheckpointProcessCheckpoint") != NULL;
    printf("{\"driverVersion\":%d,\"checkpointApi\":%s,\"devices\":[", version, api ? "true" : "false");
    for (int i = 0; i < count; i++) {
        CUdevice dev;
        char name[256] = {0};
        CUuuid uuid;
        size_t total = 0, free_b = 0, total_b = 0;
        CUcontext ctx;
        check(((device_fn)need("cuDeviceGet", 4))(&dev, i), "cuDeviceGet");
        check(((name_fn)need("cuDeviceGetName", 4))(name, sizeof name - 1, dev), "cuDeviceGetName");
        check(((uuid_fn)need("cuDeviceGetUuid", 4))(&uuid, dev), "cuDeviceGetUuid");
        check(((total_fn)need("cuDeviceTotalMem_v2", 4))(&total, dev), "cuDeviceTotalMem");
        /* Free memory needs a context: the device's primary one, retained only for the question. */
        check(((retain_fn)need("cuDevicePrimaryCtxRetain", 4))(&ctx, dev), "cuDevicePrimaryCtxRetain");
        check(((set_ctx_fn)need("cuCtxSetCurrent", 4))(ctx), "cuCtxSetCurrent");
        check(((mem_info_fn)need("cuMemGetInfo_v2", 4))(&free_b, &total_b), "cuMemGetInfo");
        ((release_fn)need("cuDevicePrimaryCtxRelease_v2", 4))(dev);
        for (char *p = name; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = '?';
        printf("%s{\"index\":%d,\"name\":\"%s\",\"uuid\":\"GPU-", i ? "," : "", i, name);
        const unsigned char *u = (const unsigned char *)uuid.bytes;
        for (int k = 0; k < 16; k++) printf("%s%02x", (k == 4 || k == 6 || k == 8 || k == 10) ? "-" : "", u[k]);
        printf("\",\"totalBytes\":%zu,\"freeBytes\":%zu}", total, free_b);
    }
    printf("]}\n");
}

static const char *state_name(CUprocessState s) {
    switch (s) {
    case CU_PROCESS_STATE_RUNNING: return "running";
    case CU_PROCESS_STATE_LOCKED: return "locked";
    case CU_PROCESS_STATE_CHECKPOINTED: return "checkpointed";
    case CU_PROCESS_STATE_FAILED: return "failed";
    default: return "other";
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "probe") != 0 && argc < 3)) {
        fprintf(stderr, "usage: ferry-cuda probe | state PID | lock PID [TIMEOUT_MS] | checkpoint PID | restore PID | unlock PID\n");
        return 2;
    }
    const char *op = argv[1];
    int pid = strcmp(op, "probe") == 0 ? 0 : parse_pid(argv[2]);
    /* FERRY_LIBCUDA: the driver's library by path, where it is not on the loader's path (a node's
     * driver mounted into the agent's pod, charts/ferry agent.gpu.driverLibDir). */
    const char *libcuda = getenv("FERRY_LIBCUDA");
    lib = dlopen(libcuda && *libcuda ? libcuda : "libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "ferry-cuda: no CUDA driver on this node: %s\n", dlerror());
        return 3;
    }
    check(((init_fn)need("cuInit", 4))(0), "cuInit");
    if (strcmp(op, "probe") == 0) {
        probe();
        return 0;
    }
    if (strcmp(op, "state") == 0) {
        CUprocessState s;
        CUresult r = ((get_state_fn)need("cuCheckpointProcessGetState", 4))(pid, &s);
        /* A process that never used CUDA is not an error here: it has nothing to checkpoint. */
        if (r == CUDA_ERROR_NOT_FOUND) {
            printf("{\"pid\":%d,\"state\":\"none\"}\n", pid);
            return 0;
        }
        check(r, "cuCheckpointProcessGetState");
        printf("{\"pid\":%d,\"state\":\"%s\"}\n", pid, state_name(s));
    } else if (strcmp(op, "lock") == 0) {
        CUcheckpointLockArgs args;
        memset(&args, 0, sizeof args);
        args.timeoutMs = argc > 3 ? (unsigned int)strtoul(argv[3], NULL, 10) : 10000;
        check(((lock_fn)need("cuCheckpointProcessLock", 4))(pid, &args), "cuCheckpointProcessLock");
        printf("{\"pid\":%d,\"state\":\"locked\"}\n", pid);
    } else if (strcmp(op, "checkpoint") == 0) {
        check(((pid_op_fn)need("cuCheckpointProcessCheckpoint", 4))(pid, NULL), "cuCheckpointProcessCheckpoint");
        printf("{\"pid\":%d,\"state\":\"checkpointed\"}\n", pid);
    } else if (strcmp(op, "restore") == 0) {
        check(((pid_op_fn)need("cuCheckpointProcessRestore", 4))(pid, NULL), "cuCheckpointProcessRestore");
        printf("{\"pid\":%d,\"state\":\"locked\"}\n", pid);
    } else if (strcmp(op, "unlock") == 0) {
        check(((pid_op_fn)need("cuCheckpointProcessUnlock", 4))(pid, NULL), "cuCheckpointProcessUnlock");
        printf("{\"pid\":%d,\"state\":\"running\"}\n", pid);
    } else {
        fprintf(stderr, "ferry-cuda: unknown operation %s\n", op);
        return 2;
    }
    return 0;
}
