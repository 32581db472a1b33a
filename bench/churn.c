/*
 * Short-flow generator for `bench/run.sh churn`: R new UDP flows per second for D seconds, each
 * a new socket bound to its own source port that sends exactly one datagram and is closed.
 *
 *   churn -r RATE -d SECONDS -s SRC_IPV4 -t DST_IPV4 [-z PAYLOAD] [-l LOG]
 *   churn -w LOG     watch: the namespace's conntrack table size, every 1 ms until SIGTERM
 *
 * Tuples: source port 10000 + i % 50000, destination port 20000 + (i / 50000) % 100, so no
 * tuple repeats within 5,000,000 flows and every flow is a new conntrack entry (the kernel's own
 * choice of ephemeral port would reuse ports, and with them live entries, after ~28k flows).
 *
 * Pacing: every 1 ms (absolute CLOCK_MONOTONIC deadlines) it catches up to RATE * elapsed
 * flows. When it cannot keep up it runs flat out, and the achieved rate says so; it always stops
 * after SECONDS of wall time.
 *
 * Ground truth: conntrack counts the layer-3 length of each packet it sees, so a datagram that
 * sendto() accepted in full is 20 (IPv4 header, no options) + 8 (UDP) + PAYLOAD bytes in the
 * original direction of its entry. A sendto() that fails (for example EPERM when conntrack drops
 * the packet because its table is full) is counted under send_failures and is not in the truth.
 *
 * With -l, the file gets one line per 1 ms tick, "CLOCK_REALTIME_ns flows_sent", so that the
 * flows sent in any wall-clock window can be computed afterwards.
 *
 * Prints one line of key=value on stdout at the end.
 *
 * Watch mode writes "CLOCK_REALTIME_ns entries" to LOG whenever net.netfilter.nf_conntrack_count
 * changes (a sysctl read: unlike a dump, it neither costs the kernel a table walk nor evicts
 * expired entries, so watching does not change when entries are destroyed).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SPORT_BASE 10000
#define SPORTS 50000
#define DPORT_BASE 20000
#define DPORTS 100
#define L3_OVERHEAD (20 + 8)

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static uint64_t ns_of(const struct timespec *t) {
    return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

static uint64_t now_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return ns_of(&t);
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s -r RATE -d SECONDS -s SRC_IPV4 -t DST_IPV4 [-z PAYLOAD] [-l LOG]\n"
            "       %s -w LOG\n",
            argv0, argv0);
    exit(2);
}

static int watch(const char *log_path) {
    FILE *log = fopen(log_path, "w");
    int count = open("/proc/sys/net/netfilter/nf_conntrack_count", O_RDONLY | O_CLOEXEC);
    if (!log || count < 0) {
        perror("churn: watch");
        return 1;
    }
    setvbuf(log, NULL, _IOFBF, 1 << 20);
    long last = -1;
    const struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
    while (!stop) {
        /* A fresh read at offset 0 each time: the sysctl is rendered anew on every read. */
        char buf[32];
        ssize_t len = pread(count, buf, sizeof buf - 1, 0);
        if (len > 0) {
            buf[len] = 0;
            long n = strtol(buf, NULL, 10);
            if (n != last) {
                fprintf(log, "%llu %ld\n", (unsigned long long)now_ns(CLOCK_REALTIME), n);
                last = n;
            }
        }
        nanosleep(&ms, NULL);
    }
    fclose(log);
    close(count);
    return 0;
}

int main(int argc, char **argv) {
    double rate = 0, seconds = 0;
    const char *src = NULL, *dst = NULL, *log_path = NULL, *watch_path = NULL;
    long payload_len = 128;
    int opt;
    while ((opt = getopt(argc, argv, "r:d:s:t:z:l:w:")) != -1) {
        switch (opt) {
        case 'r': rate = atof(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 's': src = optarg; break;
        case 't': dst = optarg; break;
        case 'z': payload_len = atol(optarg); break;
        case 'l': log_path = optarg; break;
        case 'w': watch_path = optarg; break;
        default: usage(argv[0]);
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (watch_path) return watch(watch_path);
    if (rate <= 0 || seconds <= 0 || !src || !dst || payload_len < 1 || payload_len > 1400)
        usage(argv[0]);

    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, src, &from.sin_addr) != 1 || inet_pton(AF_INET, dst, &to.sin_addr) != 1) {
        fprintf(stderr, "churn: addresses must be IPv4\n");
        return 2;
    }
    char *payload = malloc((size_t)payload_len);
    if (!payload) return 1;
    memset(payload, 'c', (size_t)payload_len);

    FILE *log = NULL;
    if (log_path) {
        log = fopen(log_path, "w");
        if (!log) {
            perror("churn: log");
            return 1;
        }
        setvbuf(log, NULL, _IOFBF, 1 << 20);
    }

    const uint64_t total = (uint64_t)(rate * seconds + 0.5);
    const uint64_t duration_ns = (uint64_t)(seconds * 1e9);
    uint64_t attempts = 0, sent = 0, send_failures = 0, socket_failures = 0, bind_failures = 0;
    int last_errno = 0;

    struct timespec start_ts;
    clock_gettime(CLOCK_MONOTONIC, &start_ts);
    const uint64_t start = ns_of(&start_ts);
    const uint64_t start_real = now_ns(CLOCK_REALTIME);
    uint64_t elapsed = 0;
    if (log) fprintf(log, "%llu 0\n", (unsigned long long)start_real);

    while (!stop) {
        elapsed = now_ns(CLOCK_MONOTONIC) - start;
        if (elapsed >= duration_ns) {
            /* On pace, the flows due within the last tick are still owed: send them, so that
             * RATE * SECONDS flows go out. Behind pace, stop on time. */
            if (attempts + (uint64_t)(rate / 1000) + 1 < total || attempts >= total) break;
            elapsed = duration_ns;
        }
        /* Flow i is due at i / RATE seconds, so by `elapsed` flows 0..floor(elapsed * RATE). */
        uint64_t due = (uint64_t)((double)elapsed * rate / 1e9) + 1;
        if (due > total) due = total;
        while (attempts < due && !stop) {
            /* Flat out, a batch can be long: stop on time, not on the batch's end. */
            if ((attempts & 255) == 255 && elapsed < duration_ns &&
                now_ns(CLOCK_MONOTONIC) - start >= duration_ns)
                break;
            uint64_t i = attempts++;
            from.sin_port = htons((uint16_t)(SPORT_BASE + i % SPORTS));
            to.sin_port = htons((uint16_t)(DPORT_BASE + (i / SPORTS) % DPORTS));
            int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                socket_failures++;
                last_errno = errno;
                continue;
            }
            if (bind(fd, (struct sockaddr *)&from, sizeof from) != 0) {
                bind_failures++;
                last_errno = errno;
                close(fd);
                continue;
            }
            ssize_t n = sendto(fd, payload, (size_t)payload_len, 0, (struct sockaddr *)&to, sizeof to);
            if (n == payload_len) {
                sent++;
            } else {
                send_failures++;
                last_errno = n < 0 ? errno : EMSGSIZE;
            }
            close(fd);
        }
        if (log) fprintf(log, "%llu %llu\n", (unsigned long long)now_ns(CLOCK_REALTIME),
                         (unsigned long long)sent);
        if (elapsed >= duration_ns) break;
        /* Next 1 ms deadline after now; ticks missed while running flat out are skipped. */
        uint64_t next = ((now_ns(CLOCK_MONOTONIC) - start) / 1000000 + 1) * 1000000;
        struct timespec deadline = {.tv_sec = (time_t)((start + next) / 1000000000ull),
                                    .tv_nsec = (long)((start + next) % 1000000000ull)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) == EINTR && !stop) {
        }
    }
    const uint64_t end = now_ns(CLOCK_MONOTONIC);
    const uint64_t end_real = now_ns(CLOCK_REALTIME);
    if (log) {
        fprintf(log, "%llu %llu\n", (unsigned long long)end_real, (unsigned long long)sent);
        fclose(log);
    }
    const double took = (double)(end - start) / 1e9;
    const uint64_t per_flow = (uint64_t)payload_len + L3_OVERHEAD;
    printf("flows=%llu achieved=%.0f target_rate=%.0f duration_s=%.3f attempts=%llu "
           "send_failures=%llu bind_failures=%llu socket_failures=%llu last_errno=%s "
           "l3_bytes_per_flow=%llu sent_bytes=%llu start_ns=%llu end_ns=%llu\n",
           (unsigned long long)sent, (double)sent / took, rate, took, (unsigned long long)attempts,
           (unsigned long long)send_failures, (unsigned long long)bind_failures,
           (unsigned long long)socket_failures, last_errno ? strerrorname_np(last_errno) : "none",
           (unsigned long long)per_flow, (unsigned long long)(sent * per_flow),
           (unsigned long long)start_real, (unsigned long long)end_real);
    return 0;
}
