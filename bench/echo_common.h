/*
 * What the C echo servers of bench/ share: the command line, the listening socket, and the
 * signalfd that lets them end cleanly on SIGINT or SIGTERM.
 */
#ifndef TULIP_BENCH_ECHO_COMMON_H
#define TULIP_BENCH_ECHO_COMMON_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

static inline void echo_die(const char *what)
{
    fprintf(stderr, "echo server: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* `prog --port N`: the only argument. */
static inline int echo_parse_port(int argc, char **argv, const char *prog)
{
    if (argc == 3 && strcmp(argv[1], "--port") == 0) {
        char *end;
        long port = strtol(argv[2], &end, 10);
        if (*argv[2] && !*end && port > 0 && port < 65536)
            return (int)port;
    }
    fprintf(stderr, "usage: %s --port N (1-65535)\n", prog);
    exit(2);
}

/* A listening TCP socket on 127.0.0.1:port; extra_flags go to socket() (SOCK_NONBLOCK). */
static inline int echo_listen(int port, int extra_flags)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | extra_flags, 0);
    if (fd < 0)
        echo_die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        echo_die("bind");
    if (listen(fd, SOMAXCONN) < 0)
        echo_die("listen");
    return fd;
}

/* Echo servers answer small messages at once, as asyncio's transports do (TCP_NODELAY). */
static inline void echo_set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* SIGINT and SIGTERM, blocked and readable from the returned fd. */
static inline int echo_signalfd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        echo_die("sigprocmask");
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        echo_die("signalfd");
    return fd;
}

#endif
