/*
 * echo_epoll: the floor for echo servers on readiness: one thread, level-triggered epoll,
 * read then write back, nothing else.
 *
 *   echo_epoll --port N
 *
 * Listens on 127.0.0.1:N. Each readable connection gets one recv into a shared buffer and one
 * send of what came; if the socket takes less, the rest is kept for that connection, which then
 * waits for EPOLLOUT and is not read until it is drained (so a client that does not read cannot
 * make the server buffer without bound). SIGINT or SIGTERM ends it cleanly (exit status 0), so
 * that tools that report at exit (callgrind) do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo_common.h"

#define BUF_SIZE (256 * 1024) /* as much as asyncio reads at once (max_size) */

struct conn {
    int fd;
    char *pending; /* bytes the socket did not take yet, or NULL */
    size_t pending_off, pending_len;
};

static char buf[BUF_SIZE];

static void close_conn(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pending);
    free(c);
}

static void watch(int ep, int op, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data = {.ptr = c}};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0)
        echo_die("epoll_ctl");
}

/* Send data; keep what the socket did not take. Returns -1 if the connection failed. */
static int send_or_keep(int ep, struct conn *c, const char *data, size_t len)
{
    ssize_t w = send(c->fd, data, len, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN)
            return -1;
        w = 0;
    }
    if ((size_t)w == len)
        return 0;
    c->pending = malloc(len - (size_t)w);
    if (!c->pending)
        echo_die("malloc");
    memcpy(c->pending, data + w, len - (size_t)w);
    c->pending_off = 0;
    c->pending_len = len - (size_t)w;
    watch(ep, EPOLL_CTL_MOD, c, EPOLLOUT);
    return 0;
}

static int on_readable(int ep, struct conn *c)
{
    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
    if (r < 0)
        return errno == EAGAIN ? 0 : -1;
    if (r == 0)
        return -1;
    return send_or_keep(ep, c, buf, (size_t)r);
}

static int on_writable(int ep, struct conn *c)
{
    ssize_t w = send(c->fd, c->pending + c->pending_off, c->pending_len, MSG_NOSIGNAL);
    if (w < 0)
        return errno == EAGAIN ? 0 : -1;
    c->pending_off += (size_t)w;
    c->pending_len -= (size_t)w;
    if (c->pending_len == 0) {
        free(c->pending);
        c->pending = NULL;
        watch(ep, EPOLL_CTL_MOD, c, EPOLLIN);
    }
    return 0;
}

static void on_accept(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == ECONNABORTED)
                return;
            echo_die("accept4");
        }
        echo_set_nodelay(fd);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            echo_die("calloc");
        c->fd = fd;
        watch(ep, EPOLL_CTL_ADD, c, EPOLLIN);
    }
}

int main(int argc, char **argv)
{
    int port = echo_parse_port(argc, argv, "echo_epoll");
    int lfd = echo_listen(port, SOCK_NONBLOCK);
    int sfd = echo_signalfd();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        echo_die("epoll_create1");
    /* The listening socket and the signalfd are told apart by their (NULL) conn pointers. */
    struct epoll_event ev = {.events = EPOLLIN, .data = {.u64 = 1}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        echo_die("epoll_ctl");
    ev.data.u64 = 2;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) < 0)
        echo_die("epoll_ctl");

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            echo_die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.u64 == 1) {
                on_accept(ep, lfd);
                continue;
            }
            if (events[i].data.u64 == 2)
                return 0; /* SIGINT or SIGTERM */
            struct conn *c = events[i].data.ptr;
            int rc = c->pending ? on_writable(ep, c) : on_readable(ep, c);
            if (rc < 0)
                close_conn(ep, c);
        }
    }
}
