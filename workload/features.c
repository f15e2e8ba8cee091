/*
 * The kernel-feature workload: one process tree that holds, at once, the objects of the 2009
 * checkpoint/restart feature list, each in a known state. On SIGUSR1 it checks every one and writes
 * a line per feature to DIR/features.txt ("name PASS" or "name FAIL why"), then "done". Checks do
 * not consume state, so they can run before and after a migration. Static, run in a container.
 * Usage: features [--dir /data]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static volatile sig_atomic_t verify_requested;
static void on_usr1(int s) { (void)s; verify_requested = 1; }

static const char *dir = "/data";
static char out[8192];
static size_t outlen;

/* From <linux/mempolicy.h>, which a static musl-free build may lack. */
#define MPOL_PREFERRED_ 1
#define MPOL_BIND_ 2
#define MPOL_F_ADDR_ (1 << 1)
static int numa_task_ok, numa_map_ok;
static char *numa_map;

static void report(const char *name, int ok, const char *why) {
    outlen += (size_t)snprintf(out + outlen, sizeof out - outlen, "%s %s%s%s\n", name, ok ? "PASS" : "FAIL", ok ? "" : " ", ok ? "" : why);
}

static char path_buf[4096];
static const char *at(const char *name) { snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name); return path_buf; }

/* Objects, set up once. */
static int pipefd[2], fifofd, sk_stream[2], sk_dgram[2], sk_seq[2], efd, tfd, sfd, ifd, epfd;
static int flockfd, plockfd, ghostfd, shmid, semid, msqid, memfd, nullfd, zerofd, urandfd;
static char *shm, *memmap;
static volatile uint64_t *shared_anon;
static volatile uint64_t thread_counter;
static pid_t child;
static timer_t ptimer;
static int tcp_client, tcp_server, udp_a, udp_b;
static char *huge, *remapped;
static int mounted;

static const char PIPE_DATA[] = "pipe-data-123";
static const char SOCK_DATA[] = "queued-socket-data";

static void *thread_main(void *arg) { (void)arg; for (;;) { thread_counter++; usleep(1000); } return NULL; }

static int peek_equals(int fd, const char *want) {
    char buf[64] = {0};
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_PEEK | MSG_DONTWAIT);
    return n == (ssize_t)strlen(want) && !memcmp(buf, want, (size_t)n);
}

/* Reads what a pipe-like fd holds, then writes it back, so the check leaves the state as it was. */
static int pipe_holds(int rfd, int wfd, const char *want) {
    char buf[64] = {0};
    ssize_t n = read(rfd, buf, sizeof buf - 1);
    if (n > 0 && write(wfd, buf, (size_t)n) != n) return 0;
    return n == (ssize_t)strlen(want) && !memcmp(buf, want, (size_t)n);
}

static void setup(void) {
    char buf[64];
    if (pipe2(pipefd, O_NONBLOCK) || write(pipefd[1], PIPE_DATA, strlen(PIPE_DATA)) < 0) perror("pipe");
    unlink(at("fifo"));
    if (mkfifo(at("fifo"), 0600)) perror("mkfifo");
    fifofd = open(at("fifo"), O_RDWR | O_NONBLOCK);
    if (write(fifofd, PIPE_DATA, strlen(PIPE_DATA)) < 0) perror("fifo");
    socketpair(AF_UNIX, SOCK_STREAM, 0, sk_stream);
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sk_dgram);
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sk_seq);
    send(sk_stream[0], SOCK_DATA, strlen(SOCK_DATA), 0);
    send(sk_dgram[0], SOCK_DATA, strlen(SOCK_DATA), 0);
    send(sk_seq[0], SOCK_DATA, strlen(SOCK_DATA), 0);
    efd = eventfd(42, EFD_NONBLOCK);
    tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = { { 1, 0 }, { 1000, 0 } };
    timerfd_settime(tfd, 0, &its, NULL);
    sigset_t set; sigemptyset(&set); sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sfd = signalfd(-1, &set, SFD_NONBLOCK);
    raise(SIGUSR2); /* stays pending: the check only looks */
    int w = open(at("watched"), O_WRONLY | O_CREAT | O_TRUNC, 0600); close(w);
    ifd = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(ifd, at("watched"), IN_MODIFY);
    epfd = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = efd };
    epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev);
    flockfd = open(at("flock"), O_RDWR | O_CREAT, 0600);
    flock(flockfd, LOCK_EX);
    plockfd = open(at("plock"), O_RDWR | O_CREAT, 0600);
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
    fcntl(plockfd, F_SETLK, &fl);
    ghostfd = open(at("ghost"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (write(ghostfd, "ghost-data", 10) != 10) perror("ghost");
    unlink(at("ghost"));
    shmid = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    shm = shmat(shmid, NULL, 0);
    strcpy(shm, "sysv-shm-data");
    semid = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    semctl(semid, 0, SETVAL, 7);
    msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    struct { long type; char text[16]; } msg = { 1, "sysv-msg" };
    msgsnd(msqid, &msg, sizeof msg.text, 0);
    memfd = memfd_create("ferry-memfd", 0);
    if (ftruncate(memfd, 4096)) perror("memfd");
    memmap = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    strcpy(memmap, "memfd-data");
    shared_anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    nullfd = open("/dev/null", O_WRONLY);
    zerofd = open("/dev/zero", O_RDONLY);
    urandfd = open("/dev/urandom", O_RDONLY);
    cpu_set_t cpus; CPU_ZERO(&cpus); CPU_SET(0, &cpus);
    sched_setaffinity(0, sizeof cpus, &cpus);
    /* A NUMA memory policy for the task (prefer node 0) and one for a mapping (bind to node 0),
     * through the raw system calls: no libnuma in a static test binary. */
    unsigned long node0 = 1;
    numa_task_ok = syscall(SYS_set_mempolicy, MPOL_PREFERRED_, &node0, 8 * sizeof node0) == 0;
    numa_map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    numa_map_ok = syscall(SYS_mbind, numa_map, 4096, MPOL_BIND_, &node0, 8 * sizeof node0, 0) == 0;
    strcpy(numa_map, "numa-bound");
    struct sigevent sev = { .sigev_notify = SIGEV_NONE };
    timer_create(CLOCK_MONOTONIC, &sev, &ptimer);
    struct itimerspec pts = { { 0, 0 }, { 1000, 0 } };
    timer_settime(ptimer, 0, &pts, NULL);
    /* An established TCP connection over the container's loopback, with data queued both ways,
       and a pair of bound UDP sockets. */
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(7777), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int lst = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1; setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lst, (struct sockaddr *)&addr, sizeof addr) || listen(lst, 1)) perror("tcp listen");
    tcp_client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(tcp_client, (struct sockaddr *)&addr, sizeof addr)) perror("tcp connect");
    tcp_server = accept(lst, NULL, NULL);
    close(lst);
    send(tcp_client, SOCK_DATA, strlen(SOCK_DATA), 0);
    send(tcp_server, SOCK_DATA, strlen(SOCK_DATA), 0);
    udp_a = socket(AF_INET, SOCK_DGRAM, 0);
    udp_b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in ua = addr, ub = addr;
    ua.sin_port = htons(7778); ub.sin_port = htons(7779);
    if (bind(udp_a, (struct sockaddr *)&ua, sizeof ua) || bind(udp_b, (struct sockaddr *)&ub, sizeof ub)) perror("udp bind");
    connect(udp_a, (struct sockaddr *)&ub, sizeof ub);
    /* A mount made after start (the container's own mount tree), with a file in it. */
    mkdir("/mnt/ferry-tmp", 0700);
    mounted = mount("ferry-tmp", "/mnt/ferry-tmp", "tmpfs", 0, "size=1m") == 0;
    if (mounted) { int mf = open("/mnt/ferry-tmp/in-mount", O_WRONLY | O_CREAT, 0600); if (write(mf, "mounted", 7) != 7) perror("mount file"); close(mf); }
    /* A hugetlb mapping, where the kernel offers huge pages. */
    huge = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (huge == MAP_FAILED) huge = NULL; else strcpy(huge, "huge-page-data");
    /* A mapping rearranged with remap_file_pages: page 0 of the window shows page 3 of the file. */
    int rf = open(at("remap"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    for (int p = 0; p < 4; p++) { char page[4096]; memset(page, 'a' + p, sizeof page); if (write(rf, page, sizeof page) != sizeof page) perror("remap file"); }
    remapped = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rf, 0);
    if (remapped == MAP_FAILED || remap_file_pages(remapped, 4096, 0, 3, 0)) remapped = NULL;
    close(rf);
    pthread_t th; pthread_create(&th, NULL, thread_main, NULL);
    /* A child in its own session, sharing the socketpair and the shared mapping. */
    child = fork();
    if (child == 0) {
        setsid();
        for (;;) { (*shared_anon)++; usleep(1000); }
    }
    (void)buf;
}

static void check(void) {
    char buf[64];
    outlen = 0;
    report("pipe", pipe_holds(pipefd[0], pipefd[1], PIPE_DATA), "unread data lost");
    report("fifo", pipe_holds(fifofd, fifofd, PIPE_DATA), "unread data lost");
    report("unix-stream", peek_equals(sk_stream[1], SOCK_DATA), "queued data lost");
    report("unix-dgram", peek_equals(sk_dgram[1], SOCK_DATA), "queued data lost");
    report("unix-seqpacket", peek_equals(sk_seq[1], SOCK_DATA), "queued data lost");
    uint64_t v = 0;
    int ok = read(efd, &v, 8) == 8 && v == 42;
    if (v && write(efd, &v, 8) != 8) ok = 0;
    report("eventfd", ok, "counter lost");
    struct itimerspec its;
    report("timerfd", timerfd_gettime(tfd, &its) == 0 && its.it_interval.tv_sec == 1 && its.it_value.tv_sec > 0, "timer disarmed");
    sigset_t pend; sigpending(&pend);
    report("signalfd", sigismember(&pend, SIGUSR2) == 1, "pending signal lost");
    int w = open(at("watched"), O_WRONLY | O_APPEND);
    ok = w >= 0 && write(w, "x", 1) == 1;
    close(w);
    usleep(20000);
    char ibuf[4096];
    report("inotify", ok && read(ifd, ibuf, sizeof ibuf) > 0, "watch lost");
    struct epoll_event ev;
    report("epoll", epoll_wait(epfd, &ev, 1, 100) == 1 && ev.data.fd == efd, "registration lost");
    pid_t p = fork();
    if (p == 0) {
        int fd = open(at("flock"), O_RDWR);
        _exit(flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK ? 0 : 1);
    }
    int st = 1; waitpid(p, &st, 0);
    report("flock", WIFEXITED(st) && WEXITSTATUS(st) == 0, "lock lost");
    p = fork();
    if (p == 0) {
        int fd = open(at("plock"), O_RDWR);
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
        _exit(fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_WRLCK ? 0 : 1);
    }
    waitpid(p, &st, 0);
    report("posix-lock", WIFEXITED(st) && WEXITSTATUS(st) == 0, "lock lost");
    struct stat gs;
    ok = pread(ghostfd, buf, 10, 0) == 10 && !memcmp(buf, "ghost-data", 10) && fstat(ghostfd, &gs) == 0 && gs.st_nlink == 0;
    report("unlinked-file", ok, "contents or link count wrong");
    report("sysv-shm", shm && !strcmp(shm, "sysv-shm-data"), "segment lost");
    report("sysv-sem", semctl(semid, 0, GETVAL) == 7, "value lost");
    struct msqid_ds mq;
    report("sysv-msg", msgctl(msqid, IPC_STAT, &mq) == 0 && mq.msg_qnum == 1, "queued message lost");
    report("memfd", !strcmp(memmap, "memfd-data"), "mapping lost");
    uint64_t a = *shared_anon; usleep(20000);
    report("shared-anon-mapping", *shared_anon > a, "child no longer shares the mapping");
    uint64_t t = thread_counter; usleep(20000);
    report("threads", thread_counter > t, "thread stopped");
    report("session", getsid(child) == child && getpgid(child) == child, "child session lost");
    report("shared-fds", kill(child, 0) == 0 && peek_equals(sk_stream[1], SOCK_DATA), "child or shared socket lost");
    cpu_set_t cpus; CPU_ZERO(&cpus);
    {
        int mode = -1, vmode = -1;
        unsigned long mask = 0, vmask = 0;
        syscall(SYS_get_mempolicy, &mode, &mask, 8 * sizeof mask, NULL, 0);
        syscall(SYS_get_mempolicy, &vmode, &vmask, 8 * sizeof vmask, numa_map, MPOL_F_ADDR_);
        if (!numa_task_ok || !numa_map_ok)
            outlen += (size_t)snprintf(out + outlen, sizeof out - outlen, "numa-policy SKIP the kernel refused set_mempolicy/mbind\n");
        else
            report("numa-policy",
                   mode == MPOL_PREFERRED_ && mask == 1 && vmode == MPOL_BIND_ && vmask == 1 && !strcmp(numa_map, "numa-bound"),
                   mode != MPOL_PREFERRED_ ? "task memory policy lost" : "mapping memory policy lost");
    }
    report("cpu-affinity", sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) == 1 && CPU_ISSET(0, &cpus), "affinity lost");
    struct itimerspec pts;
    report("posix-timer", timer_gettime(ptimer, &pts) == 0 && pts.it_value.tv_sec > 0 && pts.it_value.tv_sec <= 1000, "timer lost");
    /* TCP: the queued data survived, and the connection still carries new data both ways. */
    ok = peek_equals(tcp_server, SOCK_DATA) && peek_equals(tcp_client, SOCK_DATA);
    report("tcp-established", ok, "queued data lost");
    ok = send(tcp_client, "+", 1, 0) == 1;
    char tb[64]; ssize_t got = 0;
    for (int i = 0; ok && i < 50 && got < (ssize_t)strlen(SOCK_DATA) + 1; i++) {
        ssize_t n = recv(tcp_server, tb + got, sizeof tb - (size_t)got, MSG_DONTWAIT);
        if (n > 0) got += n; else usleep(10000);
    }
    /* Put back what was read: the server now holds the queued data again, the client's "+" consumed. */
    if (got > 1) send(tcp_client, tb, (size_t)got - 1, 0);
    usleep(20000);
    report("tcp-live", ok && got == (ssize_t)strlen(SOCK_DATA) + 1 && tb[got - 1] == '+', "connection does not carry new data (loopback down?)");
    ok = send(udp_a, "u", 1, 0) == 1;
    char ubuf[4] = {0}; ssize_t un = -1;
    for (int i = 0; ok && i < 50 && un < 0; i++) { un = recv(udp_b, ubuf, sizeof ubuf, MSG_DONTWAIT); if (un < 0) usleep(10000); }
    report("udp", ok && un == 1 && ubuf[0] == 'u', "bound UDP sockets do not carry datagrams");
    char mb[16] = {0};
    int mf = open("/mnt/ferry-tmp/in-mount", O_RDONLY);
    ok = mounted && mf >= 0 && read(mf, mb, 7) == 7 && !strcmp(mb, "mounted");
    if (mf >= 0) close(mf);
    report("own-mount", ok, "the mount made inside the container, or its file, is gone");
    if (huge) report("hugetlb", !strcmp(huge, "huge-page-data"), "huge page contents lost");
    else outlen += (size_t)snprintf(out + outlen, sizeof out - outlen, "hugetlb SKIP the kernel offers no huge pages\n");
    report("remap-file-pages", remapped && remapped[0] == 'd' && remapped[4096] == 'b' && remapped[12288] == 'd', "page order lost");
    unsigned char z[16] = {1};
    ok = read(zerofd, z, sizeof z) == sizeof z && z[0] == 0 && z[15] == 0 && write(nullfd, "x", 1) == 1 && read(urandfd, z, sizeof z) == sizeof z;
    report("devices", ok, "/dev/null, /dev/zero or /dev/urandom lost");
    outlen += (size_t)snprintf(out + outlen, sizeof out - outlen, "done\n");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", at("features.txt"));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0 && write(fd, out, outlen) == (ssize_t)outlen) { close(fd); rename(tmp, at("features.txt")); }
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    setup();
    int r = open(at("ready"), O_WRONLY | O_CREAT | O_TRUNC, 0644); close(r);
    for (;;) {
        if (verify_requested) { verify_requested = 0; check(); }
        usleep(10000);
    }
}
