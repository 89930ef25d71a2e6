/*
 * loadgen: a closed-loop load generator for echo servers, one thread, epoll.
 *
 *   loadgen --port N [--host 127.0.0.1] [--conns C] [--size S] [--depth D]
 *           [--warmup SECONDS] [--duration SECONDS] [--server-pid PID]
 *   loadgen --port N --conns C --size S --depth D --messages M      (exact count, then exit)
 *   loadgen --port N --probe [--timeout SECONDS]                     (wait until it accepts)
 *
 * C connections each keep D messages of S bytes in flight: a new message is sent for every one
 * that comes back whole, so the load follows the server (closed loop). The echoed stream is
 * checked byte for byte against what was sent. After the warm-up the counters are reset and the
 * run is measured for --duration seconds. With --messages, every connection sends exactly M
 * messages and the program exits once all have come back (no warm-up, no clock): callgrind
 * counts the server's instructions for a known amount of work that way; if nothing comes back
 * for 60 s, it gives up with exit status 1 rather than hang.
 *
 * One line of key=value fields goes to stdout (see print_result). Round-trip latency is measured
 * from the moment a message is queued to the moment its last byte is back; with depth 1 that is
 * the ping-pong round trip, with a deeper pipeline it includes the wait behind earlier messages.
 * With --server-pid, the server's CPU time (utime + stime from /proc/PID/stat) over the measured
 * window and its peak RSS (VmHWM from /proc/PID/status) are reported too.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "latency_histogram.h"

#define PATTERN_PERIOD 251u            /* a prime: a shifted or repeated chunk does not match */
#define IO_CHUNK (256u * 1024u)        /* largest read or write at once */
#define STALL_NS (60ull * 1000000000u) /* --messages: give up when nothing came back for this long */

struct options {
    const char *host;
    int port;
    int conns;
    size_t size;
    int depth;
    double warmup_s;
    double duration_s;
    long messages; /* > 0: exact-count mode */
    int server_pid;
    int probe;
    double timeout_s;
};

struct conn {
    int fd;
    int want_out;          /* EPOLLOUT registered */
    uint64_t sent_bytes;   /* stream offset of the next byte to write */
    uint64_t queued_bytes; /* stream offset up to which messages are queued */
    uint64_t recv_bytes;   /* stream offset of the next byte to read */
    long msgs_queued;      /* messages queued so far (exact-count mode stops at M) */
    long msgs_done;
    uint64_t *queued_at;   /* ring of depth entries: when each in-flight message was queued */
};

static unsigned char pattern[PATTERN_PERIOD + IO_CHUNK];
static unsigned char rbuf[IO_CHUNK];

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "loadgen: %s%s%s (see the comment at the top of bench/loadgen.c)\n", msg,
            arg ? ": " : "", arg ? arg : "");
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double parse_double(const char *name, const char *s, double min)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < min)
        usage_error(name, s);
    return v;
}

static long parse_long(const char *name, const char *s, long min)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min)
        usage_error(name, s);
    return v;
}

static struct options parse_args(int argc, char **argv)
{
    struct options o = {"127.0.0.1", 0, 1, 64, 1, 1.0, 5.0, 0, 0, 0, 10.0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--probe")) {
            o.probe = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage_error("missing value or unknown flag", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) o.host = v;
        else if (!strcmp(a, "--port")) o.port = (int)parse_long("bad --port", v, 1);
        else if (!strcmp(a, "--conns")) o.conns = (int)parse_long("bad --conns", v, 1);
        else if (!strcmp(a, "--size")) o.size = (size_t)parse_long("bad --size", v, 1);
        else if (!strcmp(a, "--depth")) o.depth = (int)parse_long("bad --depth", v, 1);
        else if (!strcmp(a, "--warmup")) o.warmup_s = parse_double("bad --warmup", v, 0);
        else if (!strcmp(a, "--duration")) o.duration_s = parse_double("bad --duration", v, 0.01);
        else if (!strcmp(a, "--messages")) o.messages = parse_long("bad --messages", v, 1);
        else if (!strcmp(a, "--server-pid")) o.server_pid = (int)parse_long("bad --server-pid", v, 1);
        else if (!strcmp(a, "--timeout")) o.timeout_s = parse_double("bad --timeout", v, 0.01);
        else usage_error("unknown flag", a);
    }
    if (o.port == 0 || o.port > 65535)
        usage_error("--port N (1-65535) is required", NULL);
    if (o.size * (size_t)o.depth > (size_t)64 << 20)
        usage_error("--size times --depth is over 64 MiB", NULL);
    return o;
}

static struct sockaddr_in server_address(const struct options *o)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        usage_error("--host must be an IPv4 address", o->host);
    return sa;
}

/* --probe: connect until the server accepts (or the timeout passes); the runner's readiness check. */
static int probe(const struct options *o)
{
    struct sockaddr_in sa = server_address(o);
    uint64_t deadline = now_ns() + (uint64_t)(o->timeout_s * 1e9);
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket");
        int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
        close(fd);
        if (rc == 0)
            return 0;
        if (now_ns() > deadline) {
            fprintf(stderr, "loadgen: nothing accepts on %s:%d after %.1f s\n", o->host, o->port,
                    o->timeout_s);
            return 1;
        }
        struct timespec ts = {0, 10 * 1000 * 1000}; /* retry interval, not a synchronisation */
        nanosleep(&ts, NULL);
    }
}

static void set_events(int ep, struct conn *c, int want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data = {.ptr = c}};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->want_out = want_out;
}

/* Write as much of the queued stream as the socket takes; ask for EPOLLOUT if it is full. */
static void flush(int ep, struct conn *c)
{
    while (c->sent_bytes < c->queued_bytes) {
        uint64_t left = c->queued_bytes - c->sent_bytes;
        size_t n = left < IO_CHUNK ? (size_t)left : IO_CHUNK;
        ssize_t w = send(c->fd, pattern + c->sent_bytes % PATTERN_PERIOD, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN)
                break;
            die("send");
        }
        c->sent_bytes += (uint64_t)w;
    }
    set_events(ep, c, c->sent_bytes < c->queued_bytes);
}

static void queue_message(struct conn *c, const struct options *o, uint64_t now)
{
    c->queued_at[c->msgs_queued % o->depth] = now;
    c->queued_bytes += o->size;
    c->msgs_queued++;
}

struct counters {
    uint64_t msgs;
    uint64_t bytes;
    struct latency_histogram lat;
};

/* Read what the server echoed, check it, and queue one new message per message completed. */
static void on_readable(int ep, struct conn *c, const struct options *o, uint64_t now,
                        struct counters *k)
{
    ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
    if (r < 0) {
        if (errno == EAGAIN)
            return;
        die("recv");
    }
    if (r == 0) {
        fprintf(stderr, "loadgen: the server closed a connection\n");
        exit(1);
    }
    if (c->recv_bytes + (uint64_t)r > c->sent_bytes ||
        memcmp(rbuf, pattern + c->recv_bytes % PATTERN_PERIOD, (size_t)r) != 0) {
        fprintf(stderr, "loadgen: the echo differs from what was sent (stream offset %llu)\n",
                (unsigned long long)c->recv_bytes);
        exit(1);
    }
    uint64_t before = c->recv_bytes / o->size;
    c->recv_bytes += (uint64_t)r;
    uint64_t done = c->recv_bytes / o->size - before;
    k->bytes += (uint64_t)r;
    for (uint64_t i = 0; i < done; i++) {
        latency_histogram_add(&k->lat, now - c->queued_at[c->msgs_done % o->depth]);
        c->msgs_done++;
        k->msgs++;
        if (o->messages == 0 || c->msgs_queued < o->messages)
            queue_message(c, o, now);
    }
    if (done)
        flush(ep, c);
}

static struct conn *open_connections(int ep, const struct options *o)
{
    struct sockaddr_in sa = server_address(o);
    struct conn *conns = calloc((size_t)o->conns, sizeof *conns);
    if (!conns)
        die("calloc");
    for (int i = 0; i < o->conns; i++) {
        struct conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            die("socket");
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            die("connect");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        c->queued_at = calloc((size_t)o->depth, sizeof *c->queued_at);
        if (!c->queued_at)
            die("calloc");
        struct epoll_event ev = {.events = EPOLLIN, .data = {.ptr = c}};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
    }
    return conns;
}

/* CPU time (user + system, seconds) of a process, from /proc/PID/stat; -1 if unreadable. */
static double process_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long utime, stime;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                     &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Peak resident set size (VmHWM, KiB) of a process; -1 if unreadable. */
static long process_hwm_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void print_result(const struct options *o, const struct counters *k, double seconds,
                         double server_cpu_s, long server_hwm_kib)
{
    double msgs_per_s = (double)k->msgs / seconds;
    printf("loadgen conns=%d size=%zu depth=%d seconds=%.3f msgs=%llu msgs_per_s=%.1f "
           "mib_per_s=%.2f p50_us=%.1f p99_us=%.1f",
           o->conns, o->size, o->depth, seconds, (unsigned long long)k->msgs, msgs_per_s,
           (double)k->bytes / seconds / (1024.0 * 1024.0),
           (double)latency_histogram_quantile(&k->lat, 0.50) / 1e3,
           (double)latency_histogram_quantile(&k->lat, 0.99) / 1e3);
    if (o->server_pid) {
        double per_msg = server_cpu_s >= 0 && k->msgs ? server_cpu_s * 1e9 / (double)k->msgs : -1;
        printf(" server_cpu_s=%.2f server_cpu_ns_per_msg=%.0f server_hwm_kib=%ld", server_cpu_s,
               per_msg, server_hwm_kib);
    }
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct options o = parse_args(argc, argv);
    if (o.probe)
        return probe(&o);
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(i % PATTERN_PERIOD);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct conn *conns = open_connections(ep, &o);
    static struct counters k; /* the histogram is large: keep it off the stack */
    uint64_t start = now_ns();
    for (int i = 0; i < o.conns; i++) {
        for (int d = 0; d < o.depth && (o.messages == 0 || d < o.messages); d++)
            queue_message(&conns[i], &o, start);
        flush(ep, &conns[i]);
    }

    const int exact = o.messages > 0;
    const uint64_t total = (uint64_t)o.messages * (uint64_t)o.conns;
    uint64_t measure_from = start + (uint64_t)(o.warmup_s * 1e9);
    uint64_t stop_at = measure_from + (uint64_t)(o.duration_s * 1e9);
    int measuring = exact || o.warmup_s == 0;
    if (exact)
        measure_from = start;
    double cpu_at_start = measuring && o.server_pid ? process_cpu_s(o.server_pid) : 0;
    uint64_t msgs_seen = 0, last_progress = start;

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, exact ? 1000 : 10);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        uint64_t now = now_ns(); /* one reading per batch of events */
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(ep, c, &o, now, &k);
            if (events[i].events & EPOLLOUT)
                flush(ep, c);
        }
        if (exact) {
            if (k.msgs == total)
                break;
            if (k.msgs != msgs_seen) {
                msgs_seen = k.msgs;
                last_progress = now;
            } else if (now - last_progress > STALL_NS) {
                fprintf(stderr, "loadgen: nothing came back for 60 s (%llu of %llu messages)\n",
                        (unsigned long long)k.msgs, (unsigned long long)total);
                return 1;
            }
            continue;
        }
        if (!measuring && now >= measure_from) {
            memset(&k, 0, sizeof k);
            measure_from = now;
            stop_at = now + (uint64_t)(o.duration_s * 1e9);
            measuring = 1;
            cpu_at_start = o.server_pid ? process_cpu_s(o.server_pid) : 0;
        }
        if (measuring && now >= stop_at)
            break;
    }
    uint64_t end = now_ns();
    double server_cpu = o.server_pid ? process_cpu_s(o.server_pid) - cpu_at_start : 0;
    long hwm = o.server_pid ? process_hwm_kib(o.server_pid) : 0;
    print_result(&o, &k, (double)(end - measure_from) / 1e9, server_cpu, hwm);
    for (int i = 0; i < o.conns; i++) {
        close(conns[i].fd);
        free(conns[i].queued_at);
    }
    free(conns);
    close(ep);
    return 0;
}
