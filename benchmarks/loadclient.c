/*
 * loadclient.c - pipelining WebSocket load client for the wsserver benchmarks.
 *
 * One process, one thread, one epoll instance, non-blocking sockets.
 * It speaks just enough RFC 6455 to drive an echo / broadcast server:
 *   - client opening handshake (random Sec-WebSocket-Key, checks the
 *     "101" status line, "Upgrade: websocket" and Sec-WebSocket-Accept =
 *     base64(SHA-1(key + GUID)), SHA-1 implemented in wscommon.h);
 *   - masked client frames with a fresh pseudo-random masking key per frame;
 *   - a streaming frame parser for server frames (7, 16 and 64-bit lengths,
 *     fragmented messages, ping -> pong, close handshake), which never
 *     copies payloads: it only keeps the first bytes of each message to check
 *     the echoed sequence number.
 *
 * Scenarios (--scenario):
 *   echo      --conns N --inflight K --size S [--text]: every connection keeps
 *             K messages in flight; each echo received is checked (opcode,
 *             length, sequence number in the first bytes) and replaced by a
 *             new message. With N=1 K=1 this is request/response and the
 *             per-message latency is recorded.
 *   connect   --concurrency C: C slots, each repeatedly: TCP connect,
 *             handshake, echo one message, close handshake (client sends
 *             Close, waits for the server's Close and for the server to close
 *             the TCP connection), then starts over.
 *   idle      --conns N: opens --idle-warm connections (warm-up), settles,
 *             reads the server's VmRSS, opens N more (each does the handshake
 *             and one echo, then stays idle), settles, reads VmRSS again.
 *   broadcast --conns N --path /broadcast: N connections; connection 0 sends
 *             one message per round, the round ends when all N connections
 *             (including the sender) have received it.
 *
 * Timed scenarios run --warmup seconds, then measure for --duration seconds.
 * Every loop is bounded in time (--timeout hard limit) and in count.
 * Output: one JSON object on stdout. Exit status 0 if no error.
 *
 * Build: gcc -O2 -o loadclient loadclient.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <unistd.h>
#include <ctype.h>
#include "wscommon.h"

/* ------------------------------------------------------------------ */
/* configuration                                                        */
/* ------------------------------------------------------------------ */

enum { SC_ECHO, SC_CONNECT, SC_IDLE, SC_BCAST };

static struct {
    const char *host;
    int port;
    int scenario;
    const char *scenario_name;
    const char *path;
    int conns;          /* echo: connections; idle: idle conns; broadcast: subscribers */
    int inflight;       /* echo: messages in flight per connection */
    size_t size;        /* payload size */
    int text;           /* send text frames (ASCII payload) */
    double warmup;      /* seconds */
    double duration;    /* seconds */
    int concurrency;    /* connect: slots; idle/broadcast: max handshakes in progress */
    int idle_warm;      /* idle: warm-up connections opened before the first RSS read */
    double settle;      /* idle/broadcast: settle time (s) */
    int server_pid;     /* for VmRSS and CPU readings (0: none) */
    double timeout;     /* hard limit for the whole run (s) */
    uint64_t max_msgs;  /* echo: bound on messages measured */
    uint64_t max_cycles;/* connect: bound on cycles */
    long max_rounds;    /* broadcast: bound on rounds (warm-up and measured each) */
    int latency;        /* record per-message latency */
    double close_wait;  /* connect: how long to wait for the server's TCP close */
    int busy_poll;      /* spin on epoll_wait(timeout 0) instead of sleeping */
} cfg = {
    .host = "127.0.0.1", .port = 0, .scenario = SC_ECHO, .scenario_name = "echo",
    .path = "/", .conns = 1, .inflight = 1, .size = 64, .text = 0,
    .warmup = 1.0, .duration = 3.0, .concurrency = 32, .idle_warm = 100,
    .settle = 2.0, .server_pid = 0, .timeout = 0, .max_msgs = 1000000000ull,
    .max_cycles = 10000000ull, .max_rounds = 20000, .latency = -1, .close_wait = 2.0,
};

/* ------------------------------------------------------------------ */
/* connection state                                                     */
/* ------------------------------------------------------------------ */

enum { CS_FREE, CS_CONNECTING, CS_HS, CS_OPEN, CS_CLOSING, CS_WAIT_EOF, CS_DEAD };

#define CAPMAX 64  /* first bytes of each data message kept for checking */

typedef struct {
    int fd;
    int id;
    int state;
    int epout;              /* EPOLLOUT currently requested */
    bbuf out;
    /* handshake */
    char hs[4096];
    size_t hslen;
    char accept[32];
    /* frame parser */
    unsigned char hdr[14];
    int hlen, hneed, in_payload;
    uint64_t prem;          /* payload bytes remaining in current frame */
    int fop, ffin;          /* current frame opcode, fin */
    int mop;                /* opcode of the message being received (0: none) */
    uint64_t mlen;          /* bytes of the message so far */
    unsigned char cap[CAPMAX];
    size_t caplen;
    unsigned char ccap[125];/* control frame payload */
    size_t ccaplen;
    /* application */
    uint64_t seq_sent, seq_recv;
    uint64_t *ts;           /* latency: send time per in-flight slot */
    uint64_t t_start;       /* connect: cycle start */
    uint64_t t_close;       /* connect: when the server's Close arrived */
    int ready;              /* idle: echo done */
} conn_t;

static conn_t *conns;
static int nconns;
static int epfd;
static unsigned char *rbuf;
#define RBUF_SIZE (1 << 20)
static unsigned char *tmpl;   /* payload template */

/* phases */
enum { P_CONNECT, P_WARM, P_MEASURE, P_DONE,
       P_IDLE_WARM, P_IDLE_SETTLE1, P_IDLE_OPEN, P_IDLE_SETTLE2,
       P_BC_SETTLE };
static int phase = P_CONNECT;
static uint64_t t_begin, t_phase, t_meas_start, t_meas_end, t_deadline;

/* counters */
static uint64_t n_msgs, n_bytes;        /* echo: received echoes */
static uint64_t m_msgs0, m_bytes0;      /* snapshot at measurement start */
static uint64_t n_cycles, m_cycles0;    /* connect */
static uint64_t n_client_closed;        /* connect: server did not close TCP in time */
static uint64_t n_errors;
static char first_error[256];
static int fatal_errors = 1;            /* abort on first error */
static int n_open;                      /* connections in CS_OPEN (or ready) */
static int n_opening;                   /* handshakes in progress */
static int next_to_open;

/* latency samples (ns) */
static uint64_t *lat;
static size_t nlat, lat_cap;

/* CPU readings */
static double cpu_self0, cpu_self1;
static double cpu_srv0, cpu_srv1;

/* idle */
static long rss0_kib = -1, rss1_kib = -1, rss_start_kib = -1;

/* broadcast */
static uint64_t bc_round;               /* current round number */
static uint64_t bc_t_send;
static int bc_recv;                     /* receivers of the current round */
static long bc_rounds_warm, bc_rounds_meas;
static uint64_t bc_deliv_meas;
static uint64_t *fan;                   /* fan-out time per measured round (ns) */
static uint64_t *fan_first;             /* time to first receiver */

/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */

static void emit_result(void);

static void error_at(conn_t *c, const char *fmt, ...)
{
    n_errors++;
    if (!first_error[0]) {
        va_list ap;
        va_start(ap, fmt);
        int off = snprintf(first_error, sizeof first_error, "conn %d: ", c ? c->id : -1);
        vsnprintf(first_error + off, sizeof first_error - off, fmt, ap);
        va_end(ap);
    }
}

static double cpu_self(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_server(void)
{
    if (cfg.server_pid <= 0) return -1;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", cfg.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p += 2; /* state */
    /* fields after ')' : 3 state, 4 ppid, ..., 14 utime, 15 stime */
    unsigned long ut = 0, st = 0;
    int field = 3;
    char *tok = strtok(p, " ");
    while (tok) {
        if (field == 14) ut = strtoul(tok, NULL, 10);
        if (field == 15) { st = strtoul(tok, NULL, 10); break; }
        field++;
        tok = strtok(NULL, " ");
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long server_rss_kib(void)
{
    if (cfg.server_pid <= 0) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", cfg.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) { v = strtol(line + 6, NULL, 10); break; }
    }
    fclose(f);
    return v;
}

static void lat_add(uint64_t ns)
{
    if (nlat < lat_cap) lat[nlat++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)  /* v sorted; nearest-rank */
{
    if (n == 0) return -1;
    size_t k = (size_t)(p / 100.0 * n);
    if (k >= n) k = n - 1;
    return (double)v[k];
}

/* ------------------------------------------------------------------ */
/* output                                                               */
/* ------------------------------------------------------------------ */

static void ep_mod(conn_t *c, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.u32 = (uint32_t)c->id };
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0)
        error_at(c, "epoll_ctl mod: %s", strerror(errno));
}

static void conn_kill(conn_t *c)
{
    if (c->fd >= 0) close(c->fd);   /* also removes it from epoll */
    c->fd = -1;
    c->out.off = c->out.len = 0;
    c->epout = 0;
    c->state = CS_DEAD;
}

/* Write as much pending output as the socket takes. Returns -1 on error. */
static int conn_flush(conn_t *c)
{
    while (bbuf_pending(&c->out) > 0) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, bbuf_pending(&c->out), MSG_NOSIGNAL);
        if (n > 0) { c->out.off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->epout) { c->epout = 1; ep_mod(c, EPOLLIN | EPOLLOUT); }
            return 0;
        }
        error_at(c, "send: %s", n < 0 ? strerror(errno) : "0 bytes");
        conn_kill(c);
        return -1;
    }
    c->out.off = c->out.len = 0;
    if (c->epout) { c->epout = 0; ep_mod(c, EPOLLIN); }
    return 0;
}

/* Encode the sequence number that starts each payload (binary: 8 bytes LE,
 * text: 16 lowercase hex digits). Returns the number of bytes. */
static size_t seq_bytes(uint64_t seq, unsigned char *out)
{
    if (cfg.text) {
        static const char hx[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) out[i] = (unsigned char)hx[(seq >> (60 - 4 * i)) & 15];
        return 16;
    }
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(seq >> (8 * i));
    return 8;
}

/* Queue one masked data frame carrying `seq` at the start of the payload. */
static void queue_data(conn_t *c, uint64_t seq)
{
    size_t n = cfg.size;
    unsigned char *w = bbuf_reserve(&c->out, n + 14);
    uint64_t r = rng_next();
    unsigned char key[4];
    memcpy(key, &r, 4);
    size_t h = ws_frame_header(w, cfg.text ? 1 : 2, n, key);
    ws_mask_copy(w + h, tmpl, n, key, 0);
    unsigned char sb[16];
    size_t sl = seq_bytes(seq, sb);
    if (sl > n) sl = n;
    ws_mask_copy(w + h, sb, sl, key, 0);
    c->out.len += h + n;
}

static void queue_control(conn_t *c, int opcode, const unsigned char *payload, size_t n)
{
    unsigned char *w = bbuf_reserve(&c->out, n + 14);
    uint64_t r = rng_next();
    unsigned char key[4];
    memcpy(key, &r, 4);
    size_t h = ws_frame_header(w, opcode, n, key);
    ws_mask_copy(w + h, payload, n, key, 0);
    c->out.len += h + n;
}

static void queue_close(conn_t *c, int code)
{
    unsigned char p[2] = { (unsigned char)(code >> 8), (unsigned char)code };
    queue_control(c, 8, p, 2);
}

/* ------------------------------------------------------------------ */
/* connection setup                                                     */
/* ------------------------------------------------------------------ */

static struct sockaddr_in srv_addr;

static void conn_reset_parser(conn_t *c)
{
    c->hlen = 0; c->hneed = 2; c->in_payload = 0; c->prem = 0;
    c->mop = 0; c->mlen = 0; c->caplen = 0; c->ccaplen = 0;
}

static void send_handshake(conn_t *c);

static void conn_open(conn_t *c, uint64_t now)
{
    c->out.off = c->out.len = 0;
    c->hslen = 0;
    c->seq_sent = c->seq_recv = 0;
    c->ready = 0;
    c->epout = 0;
    conn_reset_parser(c);
    c->t_start = now;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        error_at(c, "socket: %s", strerror(errno));
        c->state = CS_DEAD;
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    n_opening++;
    int r = connect(c->fd, (struct sockaddr *)&srv_addr, sizeof srv_addr);
    struct epoll_event e = { .events = EPOLLOUT, .data.u32 = (uint32_t)c->id };
    if (r == 0) {
        e.events = EPOLLIN;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) < 0) { error_at(c, "epoll add: %s", strerror(errno)); conn_kill(c); n_opening--; return; }
        send_handshake(c);
        return;
    }
    if (errno != EINPROGRESS) {
        error_at(c, "connect: %s", strerror(errno));
        close(c->fd); c->fd = -1; c->state = CS_DEAD; n_opening--;
        return;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) < 0) { error_at(c, "epoll add: %s", strerror(errno)); conn_kill(c); n_opening--; return; }
    c->state = CS_CONNECTING;
}

static void send_handshake(conn_t *c)
{
    unsigned char raw[16];
    uint64_t a = rng_next(), b = rng_next();
    memcpy(raw, &a, 8); memcpy(raw + 8, &b, 8);
    char key[32];
    size_t kl = b64_encode(raw, 16, key);
    ws_accept_for_key(key, kl, c->accept);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%d\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n", cfg.path, cfg.host, cfg.port, key);
    memcpy(bbuf_reserve(&c->out, (size_t)n), req, (size_t)n);
    c->out.len += (size_t)n;
    c->state = CS_HS;
    if (c->epout) { c->epout = 0; }
    ep_mod(c, EPOLLIN);
    conn_flush(c);
}

/* ------------------------------------------------------------------ */
/* scenario callbacks                                                   */
/* ------------------------------------------------------------------ */

static void on_open(conn_t *c, uint64_t now);
static void on_message(conn_t *c, int op, uint64_t len, uint64_t now);
static void on_close_frame(conn_t *c, uint64_t now);
static void start_round(uint64_t now);

/* Returns 0 if the handshake is incomplete, 1 if complete, -1 on failure.
 * *used gets the number of bytes of `data` belonging to the HTTP head. */
static int handle_handshake(conn_t *c, const unsigned char *data, size_t n, size_t *used)
{
    size_t room = sizeof c->hs - 1 - c->hslen;
    size_t take = n < room ? n : room;
    memcpy(c->hs + c->hslen, data, take);
    size_t old = c->hslen;
    c->hslen += take;
    c->hs[c->hslen] = 0;
    char *end = strstr(c->hs, "\r\n\r\n");
    if (!end) {
        if (c->hslen >= sizeof c->hs - 1) { error_at(c, "handshake response too long"); return -1; }
        *used = take;
        return 0;
    }
    size_t headlen = (size_t)(end - c->hs) + 4;
    *used = headlen - old;
    end[2] = 0; /* keep the last header's CRLF for http_find_header */
    if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0) {
        char *eol = strstr(c->hs, "\r\n");
        if (eol) *eol = 0;
        error_at(c, "handshake: bad status line '%.80s'", c->hs);
        return -1;
    }
    const char *v;
    size_t vl;
    if (!http_find_header(c->hs, "Sec-WebSocket-Accept", &v, &vl)) {
        error_at(c, "handshake: no Sec-WebSocket-Accept"); return -1;
    }
    if (vl != strlen(c->accept) || memcmp(v, c->accept, vl) != 0) {
        error_at(c, "handshake: wrong Sec-WebSocket-Accept '%.*s' (want %s)", (int)vl, v, c->accept);
        return -1;
    }
    if (!http_find_header(c->hs, "Upgrade", &v, &vl) || vl != 9 || strncasecmp(v, "websocket", 9) != 0) {
        error_at(c, "handshake: missing 'Upgrade: websocket'"); return -1;
    }
    return 1;
}

static void handle_control(conn_t *c, uint64_t now)
{
    switch (c->fop) {
    case 9: /* ping -> pong */
        queue_control(c, 10, c->ccap, c->ccaplen);
        break;
    case 10: /* pong */
        break;
    case 8:
        on_close_frame(c, now);
        break;
    default:
        error_at(c, "unknown control opcode %d", c->fop);
        conn_kill(c);
    }
}

/* Streaming parser for server frames. */
static void feed(conn_t *c, const unsigned char *p, size_t n, uint64_t now)
{
    while (n > 0 && c->state != CS_DEAD) {
        if (!c->in_payload) {
            size_t take = (size_t)(c->hneed - c->hlen);
            if (take > n) take = n;
            memcpy(c->hdr + c->hlen, p, take);
            c->hlen += (int)take; p += take; n -= take;
            if (c->hlen < c->hneed) break;
            if (c->hneed == 2) {
                if (c->hdr[1] & 0x80) { error_at(c, "server frame is masked"); conn_kill(c); return; }
                int l7 = c->hdr[1] & 0x7f;
                if (l7 == 126) { c->hneed = 4; continue; }
                if (l7 == 127) { c->hneed = 10; continue; }
            }
            uint64_t len;
            int l7 = c->hdr[1] & 0x7f;
            if (l7 < 126) len = (uint64_t)l7;
            else if (l7 == 126) len = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
            else { len = 0; for (int i = 2; i < 10; i++) len = (len << 8) | c->hdr[i]; }
            if (c->hdr[0] & 0x70) { error_at(c, "RSV bits set (0x%02x)", c->hdr[0]); conn_kill(c); return; }
            c->ffin = (c->hdr[0] & 0x80) != 0;
            c->fop = c->hdr[0] & 0x0f;
            c->prem = len;
            if (c->fop & 8) {
                if (len > 125 || !c->ffin) { error_at(c, "bad control frame"); conn_kill(c); return; }
                c->ccaplen = 0;
            } else if (c->fop == 0) {
                if (!c->mop) { error_at(c, "unexpected continuation frame"); conn_kill(c); return; }
            } else if (c->fop == 1 || c->fop == 2) {
                if (c->mop) { error_at(c, "new message inside a fragmented one"); conn_kill(c); return; }
                c->mop = c->fop; c->mlen = 0; c->caplen = 0;
            } else {
                error_at(c, "reserved opcode %d", c->fop); conn_kill(c); return;
            }
            c->in_payload = 1;
        } else {
            size_t take = c->prem < n ? (size_t)c->prem : n;
            if (c->fop & 8) {
                memcpy(c->ccap + c->ccaplen, p, take);
                c->ccaplen += take;
            } else {
                if (c->caplen < CAPMAX && p) {
                    size_t k = CAPMAX - c->caplen;
                    if (k > take) k = take;
                    memcpy(c->cap + c->caplen, p, k);
                    c->caplen += k;
                }
                c->mlen += take;
            }
            c->prem -= take; n -= take;
            if (p) p += take;
        }
        if (c->in_payload && c->prem == 0) {
            /* frame complete */
            c->in_payload = 0; c->hlen = 0; c->hneed = 2;
            if (c->fop & 8) {
                handle_control(c, now);
            } else if (c->ffin) {
                int op = c->mop;
                uint64_t len = c->mlen;
                c->mop = 0;
                on_message(c, op, len, now);
            }
        }
    }
}

/* Inside a large data frame whose first bytes were already kept, the rest of
 * the payload is dropped in the kernel (recv with MSG_TRUNC does not copy TCP
 * data to user space): the client only checks the first bytes of a message. */
static int conn_discard(conn_t *c)
{
    if (!(c->state == CS_OPEN && c->in_payload && !(c->fop & 8) && c->caplen >= CAPMAX &&
          c->prem >= 16384))
        return 0;
    ssize_t n = recv(c->fd, NULL, c->prem, MSG_TRUNC | MSG_DONTWAIT);
    if (n <= 0) return 0;   /* EAGAIN, EOF or error: let the normal path see it */
    feed(c, NULL, (size_t)n, now_ns());
    if (c->state != CS_DEAD && c->fd >= 0) conn_flush(c);
    return 1;
}

static void conn_readable(conn_t *c)
{
    if (conn_discard(c)) return;
    /* large messages: read little (headers + first bytes), drop the rest */
    size_t want = (cfg.size >= 16384 && c->state == CS_OPEN) ? 4096 : RBUF_SIZE;
    ssize_t n = recv(c->fd, rbuf, want, 0);
    uint64_t now = now_ns();
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (c->state == CS_WAIT_EOF && (errno == ECONNRESET)) { n = 0; }
        else {
            error_at(c, "recv: %s (state %d)", strerror(errno), c->state);
            if (c->state == CS_HS) n_opening--;
            conn_kill(c);
            return;
        }
    }
    if (n == 0) {
        if (c->state == CS_WAIT_EOF) {
            on_close_frame(c, now);   /* EOF after the close handshake: cycle done */
            return;
        }
        error_at(c, "server closed the connection (state %d)", c->state);
        if (c->state == CS_HS) n_opening--;
        if (c->state == CS_OPEN) n_open--;
        conn_kill(c);
        return;
    }
    const unsigned char *p = rbuf;
    size_t len = (size_t)n;
    if (c->state == CS_HS) {
        size_t used = 0;
        int r = handle_handshake(c, p, len, &used);
        if (r < 0) { n_opening--; conn_kill(c); return; }
        if (r == 0) return;
        p += used; len -= used;
        n_opening--;
        c->state = CS_OPEN;
        on_open(c, now);
    }
    if (len > 0 && c->state != CS_DEAD) feed(c, p, len, now);
    if (c->state != CS_DEAD && c->fd >= 0) conn_flush(c);
}

/* ------------------------------------------------------------------ */
/* scenarios                                                            */
/* ------------------------------------------------------------------ */

static void echo_send(conn_t *c)
{
    if (cfg.latency) c->ts[c->seq_sent % (uint64_t)cfg.inflight] = now_ns();
    queue_data(c, c->seq_sent++);
}

static int check_echo(conn_t *c, int op, uint64_t len)
{
    int want_op = cfg.text ? 1 : 2;
    if (op != want_op) { error_at(c, "echo has opcode %d, want %d", op, want_op); return -1; }
    if (len != cfg.size) { error_at(c, "echo has %llu bytes, want %zu", (unsigned long long)len, cfg.size); return -1; }
    unsigned char sb[16];
    size_t sl = seq_bytes(c->seq_recv, sb);
    if (sl > cfg.size) sl = cfg.size;
    if (c->caplen < sl || memcmp(c->cap, sb, sl) != 0) {
        error_at(c, "echo carries the wrong sequence number (want %llu)", (unsigned long long)c->seq_recv);
        return -1;
    }
    c->seq_recv++;
    return 0;
}

static void on_open(conn_t *c, uint64_t now)
{
    (void)now;
    switch (cfg.scenario) {
    case SC_ECHO:
    case SC_BCAST:
        n_open++;
        break;
    case SC_CONNECT:
    case SC_IDLE:
        echo_send(c);
        break;
    }
}

static void on_message(conn_t *c, int op, uint64_t len, uint64_t now)
{
    switch (cfg.scenario) {
    case SC_ECHO:
        if (check_echo(c, op, len) < 0) { conn_kill(c); return; }
        if (cfg.latency && phase == P_MEASURE)
            lat_add(now - c->ts[(c->seq_recv - 1) % (uint64_t)cfg.inflight]);
        n_msgs++;
        n_bytes += len;
        if (phase == P_WARM || phase == P_MEASURE) echo_send(c);
        break;
    case SC_CONNECT:
        if (c->state != CS_OPEN) { error_at(c, "message after close"); conn_kill(c); return; }
        if (check_echo(c, op, len) < 0) { conn_kill(c); return; }
        queue_close(c, 1000);
        c->state = CS_CLOSING;
        break;
    case SC_IDLE:
        if (c->ready) { error_at(c, "unexpected message on idle connection"); conn_kill(c); return; }
        if (check_echo(c, op, len) < 0) { conn_kill(c); return; }
        c->ready = 1;
        n_open++;
        break;
    case SC_BCAST: {
        uint64_t r = 0;
        if (op != 2 || len != cfg.size || c->caplen < 8) { error_at(c, "bad broadcast message (op %d, %llu bytes)", op, (unsigned long long)len); conn_kill(c); return; }
        for (int i = 0; i < 8; i++) r |= (uint64_t)c->cap[i] << (8 * i);
        if (r != bc_round) { error_at(c, "broadcast round %llu received during round %llu", (unsigned long long)r, (unsigned long long)bc_round); conn_kill(c); return; }
        if (bc_recv == 0 && phase == P_MEASURE) fan_first[bc_rounds_meas] = now - bc_t_send;
        bc_recv++;
        if (phase == P_MEASURE) bc_deliv_meas++;
        if (bc_recv == cfg.conns) {
            if (phase == P_MEASURE) {
                fan[bc_rounds_meas++] = now - bc_t_send;
                t_meas_end = now;
            } else {
                bc_rounds_warm++;
            }
            start_round(now);
        }
        break;
    }
    }
}

static void slot_restart(conn_t *c, uint64_t now)
{
    conn_kill(c);
    if (phase == P_WARM || phase == P_MEASURE) conn_open(c, now);
}

static void on_close_frame(conn_t *c, uint64_t now)
{
    if (cfg.scenario == SC_CONNECT) {
        if (c->state == CS_CLOSING) {
            /* got the server's Close: wait for it to close TCP */
            c->state = CS_WAIT_EOF;
            c->t_close = now;
            return;
        }
        if (c->state == CS_WAIT_EOF) {
            /* EOF: full cycle done */
            n_cycles++;
            if (phase == P_MEASURE) lat_add(now - c->t_start);
            slot_restart(c, now);
            return;
        }
    }
    error_at(c, "unexpected Close frame from server (state %d)", c->state);
    if (c->state == CS_OPEN) n_open--;
    conn_kill(c);
}

/* ------------------------------------------------------------------ */
/* phase machine                                                        */
/* ------------------------------------------------------------------ */

static void measure_begin(uint64_t now)
{
    phase = P_MEASURE;
    t_meas_start = now;
    m_msgs0 = n_msgs; m_bytes0 = n_bytes; m_cycles0 = n_cycles;
    cpu_self0 = cpu_self();
    cpu_srv0 = cpu_server();
}

static void measure_end(uint64_t now)
{
    if (cfg.scenario != SC_BCAST) t_meas_end = now;
    cpu_self1 = cpu_self();
    cpu_srv1 = cpu_server();
    phase = P_DONE;
}

static void start_round(uint64_t now)
{
    if (phase == P_WARM &&
        (now >= t_phase + (uint64_t)(cfg.warmup * 1e9) || bc_rounds_warm >= cfg.max_rounds)) {
        measure_begin(now);
        t_meas_end = now;
    }
    if (phase == P_MEASURE &&
        (now >= t_meas_start + (uint64_t)(cfg.duration * 1e9) || bc_rounds_meas >= cfg.max_rounds)) {
        measure_end(now);
        return;
    }
    conn_t *s = &conns[0];
    if (s->state != CS_OPEN) { error_at(s, "broadcast sender is not open"); return; }
    bc_round++;
    bc_recv = 0;
    bc_t_send = now_ns();
    queue_data(s, bc_round);
    conn_flush(s);
}

/* idle / broadcast: open connections up to `target`, with at most
 * cfg.concurrency handshakes (+ first echo) in progress. */
static void open_more(int target, uint64_t now)
{
    while (next_to_open < target && next_to_open - n_open < cfg.concurrency) {
        conn_t *c = &conns[next_to_open++];
        conn_open(c, now);
        if (c->state == CS_DEAD) break;
    }
}

static uint64_t last_scan;

static void tick(uint64_t now)
{
    if (now > t_deadline) {
        error_at(NULL, "hard timeout (%.0f s) in phase %d", cfg.timeout, phase);
        if (phase == P_MEASURE) measure_end(now);
        phase = P_DONE;
        return;
    }
    if (n_errors && (fatal_errors || n_errors > 1000)) {
        if (phase == P_MEASURE) measure_end(now);
        phase = P_DONE;
        return;
    }
    uint64_t warm_ns = (uint64_t)(cfg.warmup * 1e9), dur_ns = (uint64_t)(cfg.duration * 1e9);
    uint64_t settle_ns = (uint64_t)(cfg.settle * 1e9);
    switch (cfg.scenario) {
    case SC_ECHO:
        if (phase == P_CONNECT && n_open == cfg.conns) {
            for (int i = 0; i < nconns; i++) {
                for (int k = 0; k < cfg.inflight; k++) echo_send(&conns[i]);
                conn_flush(&conns[i]);
            }
            phase = P_WARM;
            t_phase = now;
        } else if (phase == P_WARM && now >= t_phase + warm_ns) {
            measure_begin(now);
        } else if (phase == P_MEASURE &&
                   (now >= t_meas_start + dur_ns || n_msgs - m_msgs0 >= cfg.max_msgs)) {
            measure_end(now);
        }
        break;
    case SC_CONNECT:
        if (phase == P_WARM && now >= t_phase + warm_ns) measure_begin(now);
        else if (phase == P_MEASURE &&
                 (now >= t_meas_start + dur_ns || n_cycles - m_cycles0 >= cfg.max_cycles)) {
            measure_end(now);
            break;
        }
        if (now - last_scan > 5000000ull) {
            last_scan = now;
            for (int i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];
                if (c->state == CS_WAIT_EOF && now - c->t_close > (uint64_t)(cfg.close_wait * 1e9)) {
                    n_client_closed++;
                    n_cycles++;
                    if (phase == P_MEASURE) lat_add(now - c->t_start);
                    slot_restart(c, now);
                } else if (c->state == CS_DEAD) {
                    slot_restart(c, now);
                } else if (c->state != CS_WAIT_EOF && now - c->t_start > 10000000000ull) {
                    error_at(c, "connection cycle stuck for 10 s (state %d)", c->state);
                    slot_restart(c, now);
                }
            }
        }
        break;
    case SC_IDLE:
        if (phase == P_IDLE_WARM) {
            open_more(cfg.idle_warm, now);
            if (n_open == cfg.idle_warm) { phase = P_IDLE_SETTLE1; t_phase = now; }
        } else if (phase == P_IDLE_SETTLE1 && now >= t_phase + settle_ns) {
            rss0_kib = server_rss_kib();
            phase = P_IDLE_OPEN;
            t_meas_start = now;
            cpu_self0 = cpu_self();
            cpu_srv0 = cpu_server();
        } else if (phase == P_IDLE_OPEN) {
            open_more(nconns, now);
            if (n_open == nconns) { phase = P_IDLE_SETTLE2; t_phase = now; t_meas_end = now; cpu_self1 = cpu_self(); cpu_srv1 = cpu_server(); }
        } else if (phase == P_IDLE_SETTLE2 && now >= t_phase + settle_ns) {
            rss1_kib = server_rss_kib();
            int alive = 0;
            for (int i = 0; i < nconns; i++) alive += conns[i].state == CS_OPEN;
            if (alive != nconns) error_at(NULL, "%d of %d idle connections died", nconns - alive, nconns);
            phase = P_DONE;
        }
        break;
    case SC_BCAST:
        if (phase == P_CONNECT) {
            open_more(nconns, now);
            if (n_open == nconns) { phase = P_BC_SETTLE; t_phase = now; }
        } else if (phase == P_BC_SETTLE && now >= t_phase + settle_ns) {
            phase = P_WARM;
            t_phase = now;
            start_round(now);
        } else if ((phase == P_WARM || phase == P_MEASURE) && now > bc_t_send + 10000000000ull) {
            error_at(NULL, "broadcast round %llu incomplete after 10 s: %d of %d received",
                     (unsigned long long)bc_round, bc_recv, cfg.conns);
        }
        break;
    }
}

/* ------------------------------------------------------------------ */
/* result                                                               */
/* ------------------------------------------------------------------ */

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') { putchar('\\'); putchar(*s); }
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static void emit_result(void)
{
    double secs = (t_meas_end > t_meas_start) ? (t_meas_end - t_meas_start) / 1e9 : 0;
    printf("{\"scenario\": ");
    json_str(cfg.scenario_name);
    printf(", \"ok\": %s, \"errors\": %llu, \"error\": ", n_errors ? "false" : "true",
           (unsigned long long)n_errors);
    json_str(first_error);
    printf(", \"seconds\": %.4f", secs);
    double cs = cpu_self1 - cpu_self0, sv = cpu_srv1 - cpu_srv0;
    if (secs > 0) {
        printf(", \"client_cpu_pct\": %.1f", 100.0 * cs / secs);
        if (cfg.server_pid > 0 && cpu_srv0 >= 0 && cpu_srv1 >= 0)
            printf(", \"server_cpu_pct\": %.1f", 100.0 * sv / secs);
    }
    if (nlat) qsort(lat, nlat, sizeof *lat, cmp_u64);
    switch (cfg.scenario) {
    case SC_ECHO: {
        uint64_t m = n_msgs - m_msgs0, b = n_bytes - m_bytes0;
        printf(", \"conns\": %d, \"inflight\": %d, \"size\": %zu, \"text\": %s",
               cfg.conns, cfg.inflight, cfg.size, cfg.text ? "true" : "false");
        printf(", \"msgs\": %llu, \"bytes\": %llu", (unsigned long long)m, (unsigned long long)b);
        if (secs > 0) printf(", \"msgs_per_s\": %.1f, \"mb_per_s\": %.2f", m / secs, b / secs / 1e6);
        if (nlat)
            printf(", \"samples\": %zu, \"lat_p50_us\": %.2f, \"lat_p90_us\": %.2f, \"lat_p99_us\": %.2f, \"lat_max_us\": %.2f",
                   nlat, pct(lat, nlat, 50) / 1e3, pct(lat, nlat, 90) / 1e3, pct(lat, nlat, 99) / 1e3,
                   lat[nlat - 1] / 1e3);
        break;
    }
    case SC_CONNECT: {
        uint64_t m = n_cycles - m_cycles0;
        printf(", \"concurrency\": %d, \"cycles\": %llu, \"client_closed\": %llu", cfg.concurrency,
               (unsigned long long)m, (unsigned long long)n_client_closed);
        if (secs > 0) printf(", \"handshakes_per_s\": %.1f", m / secs);
        if (nlat) printf(", \"cycle_p50_us\": %.1f, \"cycle_p99_us\": %.1f",
                         pct(lat, nlat, 50) / 1e3, pct(lat, nlat, 99) / 1e3);
        break;
    }
    case SC_IDLE:
        printf(", \"conns\": %d, \"warm_conns\": %d, \"rss_start_kib\": %ld, \"rss_before_kib\": %ld, \"rss_after_kib\": %ld",
               cfg.conns, cfg.idle_warm, rss_start_kib, rss0_kib, rss1_kib);
        if (rss0_kib >= 0 && rss1_kib >= 0)
            printf(", \"kib_per_conn\": %.3f", (double)(rss1_kib - rss0_kib) / cfg.conns);
        if (secs > 0) printf(", \"opened_per_s\": %.1f", cfg.conns / secs);
        break;
    case SC_BCAST: {
        printf(", \"conns\": %d, \"size\": %zu, \"rounds\": %ld, \"warm_rounds\": %ld, \"deliveries\": %llu",
               cfg.conns, cfg.size, bc_rounds_meas, bc_rounds_warm, (unsigned long long)bc_deliv_meas);
        if (secs > 0) printf(", \"deliveries_per_s\": %.1f", (double)cfg.conns * bc_rounds_meas / secs);
        if (bc_rounds_meas > 0) {
            qsort(fan, (size_t)bc_rounds_meas, sizeof *fan, cmp_u64);
            qsort(fan_first, (size_t)bc_rounds_meas, sizeof *fan_first, cmp_u64);
            printf(", \"fanout_p50_us\": %.1f, \"fanout_p99_us\": %.1f, \"first_p50_us\": %.1f",
                   pct(fan, bc_rounds_meas, 50) / 1e3, pct(fan, bc_rounds_meas, 99) / 1e3,
                   pct(fan_first, bc_rounds_meas, 50) / 1e3);
        }
        break;
    }
    }
    printf("}\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* main                                                                 */
/* ------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
        "usage: loadclient --port P --scenario echo|connect|idle|broadcast [options]\n"
        "  --host H (127.0.0.1)  --path /x (/)  --conns N  --inflight K  --size BYTES  --text\n"
        "  --warmup S  --duration S  --concurrency C  --idle-warm N  --settle S\n"
        "  --server-pid PID  --timeout S  --max-msgs N  --max-cycles N  --max-rounds N\n"
        "  --latency 0|1  --close-wait S  --busy-poll 0|1\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (OPT("--host")) cfg.host = v;
        else if (OPT("--port")) cfg.port = atoi(v);
        else if (OPT("--scenario")) {
            cfg.scenario_name = v;
            if (!strcmp(v, "echo")) cfg.scenario = SC_ECHO;
            else if (!strcmp(v, "connect")) cfg.scenario = SC_CONNECT;
            else if (!strcmp(v, "idle")) cfg.scenario = SC_IDLE;
            else if (!strcmp(v, "broadcast")) cfg.scenario = SC_BCAST;
            else usage();
        }
        else if (OPT("--path")) cfg.path = v;
        else if (OPT("--conns")) cfg.conns = atoi(v);
        else if (OPT("--inflight")) cfg.inflight = atoi(v);
        else if (OPT("--size")) cfg.size = (size_t)strtoull(v, NULL, 10);
        else if (strcmp(a, "--text") == 0) cfg.text = 1;
        else if (OPT("--warmup")) cfg.warmup = atof(v);
        else if (OPT("--duration")) cfg.duration = atof(v);
        else if (OPT("--concurrency")) cfg.concurrency = atoi(v);
        else if (OPT("--idle-warm")) cfg.idle_warm = atoi(v);
        else if (OPT("--settle")) cfg.settle = atof(v);
        else if (OPT("--server-pid")) cfg.server_pid = atoi(v);
        else if (OPT("--timeout")) cfg.timeout = atof(v);
        else if (OPT("--max-msgs")) cfg.max_msgs = strtoull(v, NULL, 10);
        else if (OPT("--max-cycles")) cfg.max_cycles = strtoull(v, NULL, 10);
        else if (OPT("--max-rounds")) cfg.max_rounds = atol(v);
        else if (OPT("--latency")) cfg.latency = atoi(v);
        else if (OPT("--close-wait")) cfg.close_wait = atof(v);
        else if (OPT("--busy-poll")) cfg.busy_poll = atoi(v);
        else { fprintf(stderr, "unknown or incomplete option %s\n", a); usage(); }
#undef OPT
    }
    if (cfg.port <= 0 || cfg.conns < 1 || cfg.inflight < 1 || cfg.concurrency < 1 ||
        cfg.size > (64u << 20) || cfg.warmup < 0 || cfg.duration <= 0 || cfg.max_rounds < 1)
        usage();
    if (cfg.scenario == SC_BCAST) {
        cfg.text = 0;
        if (cfg.size < 8) cfg.size = 8;
    }
    if (cfg.latency < 0) cfg.latency = (cfg.scenario == SC_ECHO && cfg.conns == 1 && cfg.inflight == 1);
    if (cfg.scenario == SC_CONNECT) { cfg.latency = 0; fatal_errors = 0; }
    if (cfg.timeout <= 0) cfg.timeout = cfg.warmup + cfg.duration + 2 * cfg.settle + 60;

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    rng_seed(now_ns() ^ ((uint64_t)getpid() << 32));

    memset(&srv_addr, 0, sizeof srv_addr);
    srv_addr.sin_family = AF_INET;
    srv_addr.sin_port = htons((uint16_t)cfg.port);
    if (inet_pton(AF_INET, cfg.host, &srv_addr.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", cfg.host); return 2; }

    switch (cfg.scenario) {
    case SC_ECHO: nconns = cfg.conns; break;
    case SC_CONNECT: nconns = cfg.concurrency; break;
    case SC_IDLE: nconns = cfg.idle_warm + cfg.conns; break;
    case SC_BCAST: nconns = cfg.conns; break;
    }
    conns = calloc((size_t)nconns, sizeof *conns);
    rbuf = malloc(RBUF_SIZE);
    tmpl = malloc(cfg.size + 16);
    if (!conns || !rbuf || !tmpl) { fprintf(stderr, "out of memory\n"); return 3; }
    for (size_t i = 0; i < cfg.size; i++)
        tmpl[i] = cfg.text ? (unsigned char)('a' + i % 26) : (unsigned char)(rng_next() >> 56);
    for (int i = 0; i < nconns; i++) {
        conns[i].id = i;
        conns[i].fd = -1;
        conns[i].state = CS_FREE;
        if (cfg.latency) conns[i].ts = calloc((size_t)cfg.inflight, sizeof(uint64_t));
    }
    if (cfg.latency) { lat_cap = 8u << 20; lat = malloc(lat_cap * sizeof *lat); }
    if (cfg.scenario == SC_CONNECT) { lat_cap = 4u << 20; lat = malloc(lat_cap * sizeof *lat); }
    if (cfg.scenario == SC_BCAST) {
        fan = calloc((size_t)cfg.max_rounds + 1, sizeof *fan);
        fan_first = calloc((size_t)cfg.max_rounds + 1, sizeof *fan_first);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) { perror("epoll_create1"); return 3; }

    t_begin = now_ns();
    t_deadline = t_begin + (uint64_t)(cfg.timeout * 1e9);
    rss_start_kib = server_rss_kib();
    switch (cfg.scenario) {
    case SC_ECHO:
        for (int i = 0; i < nconns; i++) conn_open(&conns[i], t_begin);
        phase = P_CONNECT;
        break;
    case SC_CONNECT:
        phase = P_WARM;
        t_phase = t_begin;
        for (int i = 0; i < nconns; i++) conn_open(&conns[i], t_begin);
        break;
    case SC_IDLE:
        phase = P_IDLE_WARM;
        break;
    case SC_BCAST:
        phase = P_CONNECT;
        break;
    }

    struct epoll_event evs[512];
    while (phase != P_DONE) {
        tick(now_ns());
        if (phase == P_DONE) break;
        int n = epoll_wait(epfd, evs, 512, cfg.busy_poll ? 0 : 2);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 3;
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = &conns[evs[i].data.u32];
            if (c->fd < 0) continue;
            if (c->state == CS_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    error_at(c, "connect: %s", strerror(err));
                    n_opening--;
                    conn_kill(c);
                    continue;
                }
                send_handshake(c);
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (conn_flush(c) < 0) continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_readable(c);
        }
    }
    emit_result();
    return n_errors ? 1 : 0;
}
