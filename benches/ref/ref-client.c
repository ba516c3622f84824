// ref-client: the C reference client of benches/compare-ref.sh. Blocking threads, one flow
// each, churning connections to ref-server on loopback as fast as the kernel lets them: the
// plainest way to drive connect/accept/close, the yardstick for tcpbench's own overhead.
//
//   ref-client -p PORT [-c FLOWS] [-d SECONDS] [-m MODE] [-s PAYLOAD] [-r REQUESTS] [-B]
//
// One connection: socket(), connect(), REQUESTS echoes of PAYLOAD bytes (write, read them
// back), then the close of MODE, tcpbench's --close of the same name:
//   client         shutdown(SHUT_WR), read to the server's FIN, close   TIME_WAIT: client
//   client-nowait  close right after the last echo                      TIME_WAIT: client
//   server         read to the server's FIN (it closes first), close     TIME_WAIT: server
//                  (run ref-server with -f PAYLOAD*REQUESTS)
//   rst            SO_LINGER {1, 0}, close: an RST                       no TIME_WAIT
// `-m client -r 0` is tcpbench's --requests 0 (connect, shutdown, EOF, close).
// -B binds each socket to an explicit source port, cycled through 2000..31999 (below the
// ephemeral range) by all threads, with SO_REUSEADDR: tcpbench's --port-strategy explicit.
//
// Each connection is timed from socket() to close() returning (tcpbench's `total`) into a
// per-thread histogram of 1%-wide buckets, merged at the end. A failed connection is counted
// by errno and not timed. The run stops by itself after SECONDS (alarm() ends it 30 s later
// whatever happens), and prints one key=value line.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// Bucket b holds [GROWTH^b, GROWTH^(b+1)) ns: 1% wide, up to 10^11 ns.
#define GROWTH 1.01
#define BUCKETS 2600
#define PORT_LO 2000
#define PORT_HI 31999

enum mode { CLIENT, CLIENT_NOWAIT, SERVER, RST };
static const char *mode_names[] = {"client", "client-nowait", "server", "rst"};

static struct {
    int port, flows, seconds, payload, requests, explicit_ports;
    enum mode mode;
} opt = {0, 1, 10, 1, 1, 0, CLIENT};

static struct sockaddr_in server;
static atomic_int stop;
static atomic_uint next_port;

// One flow's tallies: written by its thread only, read by main after the join.
struct flow {
    pthread_t thread;
    uint64_t count, sum_ns, max_ns;
    uint64_t eaddrnotavail, eaddrinuse, econnrefused, econnreset, etimedout, short_read, other;
    uint64_t hist[BUCKETS];
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void count_error(struct flow *f, int e) {
    switch (e) {
    case EADDRNOTAVAIL: f->eaddrnotavail++; break;
    case EADDRINUSE: f->eaddrinuse++; break;
    case ECONNREFUSED: f->econnrefused++; break;
    case ECONNRESET: case EPIPE: f->econnreset++; break;
    case ETIMEDOUT: f->etimedout++; break;
    case EPROTO: f->short_read++; break;
    default: f->other++;
    }
}

// Reads until `want` bytes came (want > 0) or until EOF (want == 0). 0 on success, else an
// errno (EPROTO for an early EOF or for bytes where EOF was due).
static int read_all(int fd, char *buf, size_t cap, size_t want) {
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf, want ? (want - got < cap ? want - got : cap) : cap);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return want ? EPROTO : 0;
        if (!want) return EPROTO;
        got += (size_t)n;
        if (got == want) return 0;
    }
}

// One connection's life; 0 on success, else the errno that ended it.
static int cycle(int fd, const char *request, char *buf, size_t cap) {
    if (opt.explicit_ports) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        unsigned span = PORT_HI - PORT_LO + 1;
        local.sin_port = htons((uint16_t)(PORT_LO + atomic_fetch_add(&next_port, 1) % span));
        if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) return errno;
    }
    if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0) return errno;
    for (int i = 0; i < opt.requests; i++) {
        if (write(fd, request, (size_t)opt.payload) != opt.payload) return errno ? errno : EPROTO;
        int e = read_all(fd, buf, cap, (size_t)opt.payload);
        if (e) return e;
    }
    switch (opt.mode) {
    case CLIENT:
        if (shutdown(fd, SHUT_WR) < 0) return errno;
        return read_all(fd, buf, cap, 0);
    case SERVER:
        return read_all(fd, buf, cap, 0);
    case RST: {
        struct linger lg = {1, 0};
        return setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0 ? errno : 0;
    }
    case CLIENT_NOWAIT:
        return 0;
    }
    return 0;
}

static void *flow_main(void *arg) {
    struct flow *f = arg;
    size_t cap = opt.payload < 65536 ? 65536 : (size_t)opt.payload;
    char *buf = malloc(cap), *request = malloc((size_t)opt.payload + 1);
    for (int i = 0; i < opt.payload; i++) request[i] = (char)('a' + i % 26);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t t0 = now_ns();
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            count_error(f, errno);
            usleep(1000);
            continue;
        }
        int e = cycle(fd, request, buf, cap);
        close(fd);
        if (e) {
            count_error(f, e);
            // The port range is full: give TIME_WAIT a moment instead of spinning.
            if (e == EADDRNOTAVAIL) usleep(1000);
            continue;
        }
        uint64_t d = now_ns() - t0;
        // Only connections that ended inside the measured window count.
        if (atomic_load_explicit(&stop, memory_order_relaxed)) break;
        f->count++;
        f->sum_ns += d;
        if (d > f->max_ns) f->max_ns = d;
        int b = d > 1 ? (int)(log((double)d) / log(GROWTH)) : 0;
        f->hist[b < BUCKETS ? b : BUCKETS - 1]++;
    }
    free(buf);
    free(request);
    return NULL;
}

// The whole machine's busy and total jiffies, from /proc/stat's first line.
static void cpu_jiffies(unsigned long long *busy, unsigned long long *total) {
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    *busy = *total = 0;
    if (!f) return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++) *total += v[i];
        *busy = *total - v[3] - v[4];  // less idle and iowait
    }
    fclose(f);
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s -p PORT [-c FLOWS] [-d SECONDS] [-m client|client-nowait|server|rst] "
            "[-s PAYLOAD] [-r REQUESTS] [-B]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv) {
    int o;
    while ((o = getopt(argc, argv, "p:c:d:m:s:r:B")) != -1) {
        switch (o) {
        case 'p': opt.port = atoi(optarg); break;
        case 'c': opt.flows = atoi(optarg); break;
        case 'd': opt.seconds = atoi(optarg); break;
        case 's': opt.payload = atoi(optarg); break;
        case 'r': opt.requests = atoi(optarg); break;
        case 'B': opt.explicit_ports = 1; break;
        case 'm': {
            int found = 0;
            for (int m = CLIENT; m <= RST; m++)
                if (!strcmp(optarg, mode_names[m])) opt.mode = (enum mode)m, found = 1;
            if (!found) {
                fprintf(stderr, "ref-client: -m %s: use client, client-nowait, server or rst\n", optarg);
                return 2;
            }
            break;
        }
        default: return usage(argv[0]);
        }
    }
    if (opt.port <= 0 || opt.port > 65535 || opt.flows < 1 || opt.flows > 4096 || opt.seconds < 1 ||
        opt.payload < 1 || opt.requests < 0)
        return usage(argv[0]);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)opt.seconds + 30);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)opt.port);
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    atomic_store(&next_port, (unsigned)(now_ns() / 1000));

    struct flow *flows = calloc((size_t)opt.flows, sizeof *flows);
    unsigned long long busy0, total0, busy1, total1;
    cpu_jiffies(&busy0, &total0);
    uint64_t start = now_ns();
    for (int i = 0; i < opt.flows; i++) pthread_create(&flows[i].thread, NULL, flow_main, &flows[i]);
    struct timespec left = {.tv_sec = opt.seconds};
    while (nanosleep(&left, &left) < 0 && errno == EINTR) {}
    atomic_store(&stop, 1);
    uint64_t end = now_ns();
    cpu_jiffies(&busy1, &total1);

    static uint64_t hist[BUCKETS];
    struct flow all = {0};
    for (int i = 0; i < opt.flows; i++) {
        struct flow *f = &flows[i];
        pthread_join(f->thread, NULL);
        all.count += f->count;
        all.sum_ns += f->sum_ns;
        if (f->max_ns > all.max_ns) all.max_ns = f->max_ns;
        all.eaddrnotavail += f->eaddrnotavail;
        all.eaddrinuse += f->eaddrinuse;
        all.econnrefused += f->econnrefused;
        all.econnreset += f->econnreset;
        all.etimedout += f->etimedout;
        all.short_read += f->short_read;
        all.other += f->other;
        for (int b = 0; b < BUCKETS; b++) hist[b] += f->hist[b];
    }
    // A percentile is its bucket's geometric middle (within 0.5% of the value).
    const double quantiles[] = {0.50, 0.90, 0.99, 0.999};
    double us[4] = {0};
    for (int k = 0; k < 4 && all.count; k++) {
        uint64_t rank = (uint64_t)ceil(quantiles[k] * (double)all.count), seen = 0;
        for (int b = 0; b < BUCKETS; b++) {
            seen += hist[b];
            if (seen >= rank) {
                us[k] = pow(GROWTH, b + 0.5) / 1000.0;
                break;
            }
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double secs = (double)(end - start) / 1e9;
    uint64_t errors = all.eaddrnotavail + all.eaddrinuse + all.econnrefused + all.econnreset +
                      all.etimedout + all.short_read + all.other;
    printf("mode=%s flows=%d payload=%d requests=%d explicit_ports=%d secs=%.2f count=%llu tps=%.0f "
           "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f "
           "errors=%llu eaddrnotavail=%llu eaddrinuse=%llu econnrefused=%llu econnreset=%llu "
           "etimedout=%llu short_read=%llu other=%llu client_cpu_s=%.2f machine_busy_pct=%.1f\n",
           mode_names[opt.mode], opt.flows, opt.payload, opt.requests, opt.explicit_ports, secs,
           (unsigned long long)all.count, (double)all.count / secs, us[0], us[1], us[2], us[3],
           (double)all.max_ns / 1000.0, all.count ? (double)all.sum_ns / 1000.0 / (double)all.count : 0.0,
           (unsigned long long)errors, (unsigned long long)all.eaddrnotavail,
           (unsigned long long)all.eaddrinuse, (unsigned long long)all.econnrefused,
           (unsigned long long)all.econnreset, (unsigned long long)all.etimedout,
           (unsigned long long)all.short_read, (unsigned long long)all.other, cpu_s,
           total1 > total0 ? 100.0 * (double)(busy1 - busy0) / (double)(total1 - total0) : 0.0);
    free(flows);
    return 0;
}
