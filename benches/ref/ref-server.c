// ref-server: the C reference echo server of benches/compare-ref.sh. THREADS blocking threads
// share one listener on 127.0.0.1; each accepts a connection and serves it to its end before
// the next (the kernel wakes one waiting accept() per connection).
//
//   ref-server [-p PORT] [-t THREADS] [-f BYTES] [-b BACKLOG] [-d MAX_SECONDS]
//
// -p 0 (the default) lets the kernel pick the port. Once listening, the server prints
// `port=N` on stdout (flushed), so a script can wait for that line and read the port.
// The server echoes what it reads; then, as tcpbench's embedded server does:
//   (default)  waits for the client's FIN (or RST), then closes       --server-close wait
//   -f BYTES   closes first, once BYTES were echoed (the client's       --server-close first
//              requests times their payload): its FIN goes before the client's.
// The listener has SO_REUSEADDR, as tcpbench's has; the backlog is 1024 as tcpbench's.
// The process ends by itself after MAX_SECONDS (default 120, by alarm()).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int listener;
static long long close_after = -1;  // -f: bytes to echo before closing first; -1: wait

// Echoes until EOF, an error, or `close_after` bytes; then the close of the policy.
static void serve(int fd, char *buf, size_t cap) {
    long long echoed = 0;
    while (close_after < 0 || echoed < close_after) {
        size_t want = cap;
        if (close_after >= 0 && (long long)want > close_after - echoed) want = (size_t)(close_after - echoed);
        ssize_t n = read(fd, buf, want);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // the client's FIN, or its RST
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return (void)close(fd);
            off += w;
        }
        echoed += n;
    }
    close(fd);
}

static void *worker(void *arg) {
    (void)arg;
    static __thread char buf[65536];
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED) usleep(1000);  // EMFILE and the like
            continue;
        }
        serve(fd, buf, sizeof buf);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int port = 0, threads = 2, backlog = 1024, max_seconds = 120, o;
    while ((o = getopt(argc, argv, "p:t:f:b:d:")) != -1) {
        switch (o) {
        case 'p': port = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'f': close_after = atoll(optarg); break;
        case 'b': backlog = atoi(optarg); break;
        case 'd': max_seconds = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-p PORT] [-t THREADS] [-f BYTES] [-b BACKLOG] [-d MAX_SECONDS]\n", argv[0]);
            return 2;
        }
    }
    if (port < 0 || port > 65535 || threads < 1 || threads > 4096 || max_seconds < 1) {
        fprintf(stderr, "ref-server: -p 0..65535, -t 1..4096, -d at least 1\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)max_seconds);
    listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, backlog) < 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &len) < 0) {
        perror("ref-server: listen");
        return 1;
    }
    printf("port=%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    pthread_t t;
    for (int i = 0; i < threads; i++) pthread_create(&t, NULL, worker, NULL);
    for (;;) pause();
}
