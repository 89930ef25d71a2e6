/*
 * echo_uring: the floor for echo servers on completions: one thread, liburing, multishot accept,
 * multishot recv into a provided buffer ring, send straight from the received buffer.
 *
 *   echo_uring --port N
 *
 * Listens on 127.0.0.1:N. The kernel picks a buffer from the ring for each receive; the buffer
 * goes back to the ring once it has been echoed. A connection has at most one send in flight,
 * the others wait in its queue: two sends in flight on one stream socket may complete out of
 * order (one goes async on EAGAIN, the next one does not). If the ring runs dry, the kernel ends
 * the multishot recv with -ENOBUFS; the connection re-arms once buffers come back. SIGINT or
 * SIGTERM ends it cleanly (exit status 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "echo_common.h"

#define NBUFS 128 /* a power of two (buffer ring) */
#define BUF_SIZE (64 * 1024) /* a bulk message per buffer; echo_epoll reads up to 256 KiB */
#define BGID 0
#define NO_BUF 0xffff

enum { UD_ACCEPT = 1, UD_SIGNAL = 2 };  /* user_data of the two non-connection operations */
enum { OP_RECV = 0, OP_SEND = 1 };      /* low bit of a connection's user_data */

struct conn {
    int fd;
    int recv_armed, send_busy, eof, starved;
    unsigned head, tail; /* queue of received buffers to echo, linked by next_buf[] */
    size_t head_off;     /* bytes of the head buffer already sent */
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static unsigned next_buf[NBUFS], buf_len[NBUFS];
static unsigned free_bufs;
static struct conn *starved[4096];
static unsigned n_starved;

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
        if (!sqe)
            echo_die("io_uring_get_sqe");
    }
    return sqe;
}

static void recycle(unsigned bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), 0);
    io_uring_buf_ring_advance(br, 1);
    free_bufs++;
}

static void setup_buffers(void)
{
    size_t ring_size = NBUFS * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED)
        echo_die("mmap");
    bufs = malloc((size_t)NBUFS * BUF_SIZE);
    if (!bufs)
        echo_die("malloc");
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)br;
    reg.ring_entries = NBUFS;
    reg.bgid = BGID;
    int rc = io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc < 0) {
        errno = -rc;
        echo_die("io_uring_register_buf_ring");
    }
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < NBUFS; i++)
        recycle(i);
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
    c->recv_armed = 1;
}

static void send_head(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    unsigned bid = c->head;
    io_uring_prep_send(sqe, c->fd, bufs + (size_t)bid * BUF_SIZE + c->head_off,
                       buf_len[bid] - c->head_off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
    c->send_busy = 1;
}

/* Free the connection once nothing of it is in flight; its queued buffers go back to the ring. */
static void maybe_free(struct conn *c)
{
    if (!c->eof || c->recv_armed || c->send_busy || c->starved)
        return;
    while (c->head != NO_BUF) {
        unsigned bid = c->head;
        c->head = next_buf[bid];
        recycle(bid);
    }
    close(c->fd);
    free(c);
}

static void on_recv(struct conn *c, struct io_uring_cqe *cqe)
{
    int more = cqe->flags & IORING_CQE_F_MORE;
    if (!more)
        c->recv_armed = 0;
    if (cqe->res > 0) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        free_bufs--;
        buf_len[bid] = (unsigned)cqe->res;
        next_buf[bid] = NO_BUF;
        if (c->head == NO_BUF) {
            c->head = bid;
            c->head_off = 0;
        } else {
            next_buf[c->tail] = bid;
        }
        c->tail = bid;
        if (!c->send_busy)
            send_head(c);
        if (!more)
            arm_recv(c);
        return;
    }
    if (cqe->res == -ENOBUFS) {
        if (n_starved == sizeof starved / sizeof starved[0])
            echo_die("too many connections waiting for buffers");
        c->starved = 1;
        starved[n_starved++] = c;
        return;
    }
    c->eof = 1; /* end of stream or error: echo what is queued, then close */
    maybe_free(c);
}

static void on_send(struct conn *c, struct io_uring_cqe *cqe)
{
    c->send_busy = 0;
    if (cqe->res < 0) {
        /* The peer is gone: drop what is queued; shutdown ends the multishot recv too. */
        c->eof = 1;
        shutdown(c->fd, SHUT_RDWR);
        maybe_free(c);
        return;
    }
    c->head_off += (size_t)cqe->res;
    if (c->head_off == buf_len[c->head]) {
        unsigned bid = c->head;
        c->head = next_buf[bid];
        c->head_off = 0;
        recycle(bid);
    }
    if (c->head != NO_BUF)
        send_head(c);
    else
        maybe_free(c);
}

static void on_accept(int lfd, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) { /* the kernel ended the multishot accept: re-arm */
        struct io_uring_sqe *sqe = get_sqe();
        io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, UD_ACCEPT);
    }
    if (cqe->res < 0)
        return;
    echo_set_nodelay(cqe->res);
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        echo_die("calloc");
    c->fd = cqe->res;
    c->head = NO_BUF;
    arm_recv(c);
}

/* Connections that ran out of buffers receive again once some came back. */
static void rearm_starved(void)
{
    while (n_starved && free_bufs) {
        struct conn *c = starved[--n_starved];
        c->starved = 0;
        if (c->eof)
            maybe_free(c);
        else
            arm_recv(c);
    }
}

static void init_ring(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* One thread submits and reaps: let the kernel run completion work only when we wait. */
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(4096, &ring, &p) == 0)
        return;
    memset(&p, 0, sizeof p); /* an older kernel: no flags */
    int rc = io_uring_queue_init_params(4096, &ring, &p);
    if (rc < 0) {
        errno = -rc;
        echo_die("io_uring_queue_init");
    }
}

int main(int argc, char **argv)
{
    int port = echo_parse_port(argc, argv, "echo_uring");
    int lfd = echo_listen(port, 0);
    int sfd = echo_signalfd();
    init_ring();
    setup_buffers();

    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD_ACCEPT);
    sqe = get_sqe();
    io_uring_prep_poll_add(sqe, sfd, POLLIN);
    io_uring_sqe_set_data64(sqe, UD_SIGNAL);

    for (;;) {
        int rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR) {
            errno = -rc;
            echo_die("io_uring_submit_and_wait");
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            seen++;
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            if (ud == UD_ACCEPT) {
                on_accept(lfd, cqe);
            } else if (ud == UD_SIGNAL) {
                io_uring_queue_exit(&ring);
                return 0;
            } else {
                struct conn *c = (struct conn *)(uintptr_t)(ud & ~(uint64_t)1);
                if ((ud & 1) == OP_SEND)
                    on_send(c, cqe);
                else
                    on_recv(c, cqe);
            }
        }
        io_uring_cq_advance(&ring, seen);
        rearm_starved();
    }
}
