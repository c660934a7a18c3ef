/*
 * cecho.c - trivial single-threaded epoll WebSocket echo/broadcast server.
 *
 * Used ONLY as evidence that the load client is not the bottleneck: it does
 * close to the minimum work a server can do (no UTF-8 validation, no
 * message reassembly: frames are echoed one by one as they arrive), so the
 * numbers the load client reaches against it are an upper bound of what the
 * client can measure. It is not a general-purpose server.
 *
 *   path /broadcast : every frame received is sent to every /broadcast client
 *   any other path  : every data frame is echoed back with the same opcode
 *
 * Build: gcc -O2 -o cecho cecho.c          Run: cecho --port 9001
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <unistd.h>
#include "wscommon.h"

typedef struct {
    int fd;
    int open;          /* handshake done */
    int bcast;         /* on /broadcast */
    int bidx;          /* index in subs[] */
    int epout;
    int close_after_flush;
    bbuf in, out;
} sconn;

static int epfd;
static sconn **tab;    /* by fd */
static int tabcap;
static int *subs;
static int nsubs, subcap;
static bbuf bframe;    /* broadcast frame scratch */

static void ep_set(sconn *c, uint32_t ev, int op)
{
    struct epoll_event e = { .events = ev, .data.fd = c->fd };
    epoll_ctl(epfd, op, c->fd, &e);
}

static void sconn_close(sconn *c)
{
    if (c->bcast && c->open) {
        int last = subs[--nsubs];
        subs[c->bidx] = last;
        tab[last]->bidx = c->bidx;
    }
    close(c->fd);
    tab[c->fd] = NULL;
    free(c->in.p);
    free(c->out.p);
    free(c);
}

/* returns -1 if the connection was closed */
static int sconn_flush(sconn *c)
{
    while (bbuf_pending(&c->out) > 0) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, bbuf_pending(&c->out), MSG_NOSIGNAL);
        if (n > 0) { c->out.off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->epout) { c->epout = 1; ep_set(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD); }
            return 0;
        }
        sconn_close(c);
        return -1;
    }
    c->out.off = c->out.len = 0;
    if (c->epout) { c->epout = 0; ep_set(c, EPOLLIN, EPOLL_CTL_MOD); }
    if (c->close_after_flush) { sconn_close(c); return -1; }
    return 0;
}

static void out_append(sconn *c, const void *p, size_t n)
{
    memcpy(bbuf_reserve(&c->out, n), p, n);
    c->out.len += n;
}

/* returns -1 if closed, 0 if more data is needed, 1 if the handshake is done */
static int do_handshake(sconn *c)
{
    size_t n = bbuf_pending(&c->in);
    unsigned char *p = c->in.p + c->in.off;
    unsigned char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end) {
        if (n > 8192) { sconn_close(c); return -1; }
        return 0;
    }
    size_t hl = (size_t)(end - p) + 4;
    char head[8200];
    memcpy(head, p, hl - 2);   /* keep the last header's CRLF */
    head[hl - 2] = 0;
    c->in.off += hl;
    if (strncmp(head, "GET ", 4) != 0) { sconn_close(c); return -1; }
    const char *path = head + 4;
    c->bcast = strncmp(path, "/broadcast", 10) == 0 && (path[10] == ' ' || path[10] == '?');
    const char *key;
    size_t kl;
    if (!http_find_header(head, "Sec-WebSocket-Key", &key, &kl) || kl > 64) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        out_append(c, bad, sizeof bad - 1);
        c->close_after_flush = 1;
        sconn_flush(c);
        return -1;
    }
    char acc[29];
    ws_accept_for_key(key, kl, acc);
    char resp[256];
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
    out_append(c, resp, (size_t)rl);
    c->open = 1;
    if (c->bcast) {
        if (nsubs == subcap) { subcap = subcap ? subcap * 2 : 1024; subs = xrealloc(subs, sizeof(int) * (size_t)subcap); }
        c->bidx = nsubs;
        subs[nsubs++] = c->fd;
    }
    return 1;
}

/* Parse and answer all complete frames in c->in. Returns -1 if closed. */
static int do_frames(sconn *c)
{
    for (;;) {
        size_t n = bbuf_pending(&c->in);
        unsigned char *p = c->in.p + c->in.off;
        if (n < 2) return 0;
        if (!(p[1] & 0x80)) { sconn_close(c); return -1; }  /* client frames must be masked */
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (n < 4) return 0;
            len = ((uint64_t)p[2] << 8) | p[3];
            hl = 4;
        } else if (len == 127) {
            if (n < 10) return 0;
            len = 0;
            for (int i = 2; i < 10; i++) len = (len << 8) | p[i];
            hl = 10;
        }
        if (len > (64u << 20)) { sconn_close(c); return -1; }
        const unsigned char *key = p + hl;
        hl += 4;
        if (n < hl + len) {
            /* make room for the whole frame */
            bbuf_reserve(&c->in, hl + len - n);
            return 0;
        }
        int op = p[0] & 0x0f;
        const unsigned char *pay = p + hl;
        unsigned char h[14];
        if (op == 8) {  /* close: echo the status code, then close TCP */
            size_t cl = len >= 2 ? 2 : 0;
            unsigned char code[2];
            ws_mask_copy(code, pay, cl, key, 0);
            size_t k = ws_frame_header(h, 8, cl, NULL);
            out_append(c, h, k);
            out_append(c, code, cl);
            c->in.off += hl + len;
            c->close_after_flush = 1;
            return sconn_flush(c) < 0 ? -1 : 0;
        }
        if (op == 9) {  /* ping -> pong */
            size_t k = ws_frame_header(h, 10, len, NULL);
            out_append(c, h, k);
            ws_mask_copy(bbuf_reserve(&c->out, len), pay, len, key, 0);
            c->out.len += len;
        } else if (op == 10) {
            /* pong: ignore */
        } else if (!c->bcast) {
            size_t k = ws_frame_header(h, op, len, NULL);
            h[0] = (unsigned char)((p[0] & 0x80) | op);   /* keep FIN */
            out_append(c, h, k);
            ws_mask_copy(bbuf_reserve(&c->out, len), pay, len, key, 0);
            c->out.len += len;
        } else {
            bframe.off = bframe.len = 0;
            size_t k = ws_frame_header(bbuf_reserve(&bframe, len + 14), op, len, NULL);
            bframe.p[0] = (unsigned char)((p[0] & 0x80) | op);
            ws_mask_copy(bframe.p + k, pay, len, key, 0);
            bframe.len = k + len;
            c->in.off += hl + len;
            for (int i = 0; i < nsubs; i++) {
                sconn *s = tab[subs[i]];
                out_append(s, bframe.p, bframe.len);
                if (s != c) {
                    int before = nsubs;
                    if (sconn_flush(s) < 0 && nsubs < before) i--;  /* subs[i] was replaced */
                }
            }
            continue;
        }
        c->in.off += hl + len;
    }
}

static void on_readable(sconn *c)
{
    unsigned char *w = bbuf_reserve(&c->in, 65536);
    size_t room = c->in.cap - c->in.len;
    ssize_t n = recv(c->fd, w, room, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) { sconn_close(c); return; }
    c->in.len += (size_t)n;
    if (!c->open) {
        int r = do_handshake(c);
        if (r <= 0) return;
    }
    if (do_frames(c) < 0) return;
    sconn_flush(c);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 9001;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else { fprintf(stderr, "usage: cecho [--host H] [--port P]\n"); return 2; }
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, host, &a.sin_addr);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) { perror("bind/listen"); return 1; }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = { .events = EPOLLIN, .data.fd = lfd };
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &le);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(epfd, evs, 512, -1);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (cfd >= tabcap) {
                        int nc = tabcap ? tabcap : 1024;
                        while (nc <= cfd) nc *= 2;
                        tab = xrealloc(tab, sizeof(sconn *) * (size_t)nc);
                        memset(tab + tabcap, 0, sizeof(sconn *) * (size_t)(nc - tabcap));
                        tabcap = nc;
                    }
                    sconn *c = calloc(1, sizeof *c);
                    if (!c) { close(cfd); continue; }
                    c->fd = cfd;
                    tab[cfd] = c;
                    ep_set(c, EPOLLIN, EPOLL_CTL_ADD);
                }
                continue;
            }
            sconn *c = fd < tabcap ? tab[fd] : NULL;
            if (!c) continue;
            if (evs[i].events & EPOLLOUT) { if (sconn_flush(c) < 0) continue; }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        }
    }
}
