/*
 * wscommon.h - small helpers shared by the benchmark load client
 * (loadclient.c) and the trivial C echo server (cecho.c).
 *
 * Contents: SHA-1 (FIPS 180-4), base64 encoding, the RFC 6455
 * Sec-WebSocket-Accept computation, a xorshift PRNG, a monotonic clock,
 * a growable byte buffer and fast XOR masking.
 *
 * Everything is static so each program compiles as one translation unit:
 *   gcc -O2 -o loadclient loadclient.c
 */
#ifndef WSCOMMON_H
#define WSCOMMON_H

#define WSC_FN static __attribute__((unused))

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* SHA-1                                                                */
/* ------------------------------------------------------------------ */

typedef struct {
    uint32_t h[5];
    uint64_t total;         /* bytes hashed so far */
    unsigned char blk[64];  /* pending partial block */
    size_t blen;
} sha1_ctx;

WSC_FN inline uint32_t sha1_rol(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

WSC_FN void sha1_block(sha1_ctx *c, const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
               ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = sha1_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)      { f = (b & cc) | (~b & d);           k = 0x5A827999u; }
        else if (i < 40) { f = b ^ cc ^ d;                    k = 0x6ED9EBA1u; }
        else if (i < 60) { f = (b & cc) | (b & d) | (cc & d); k = 0x8F1BBCDCu; }
        else             { f = b ^ cc ^ d;                    k = 0xCA62C1D6u; }
        uint32_t t = sha1_rol(a, 5) + f + e + k + w[i];
        e = d; d = cc; cc = sha1_rol(b, 30); b = a; a = t;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e;
}

WSC_FN void sha1_init(sha1_ctx *c)
{
    c->h[0] = 0x67452301u; c->h[1] = 0xEFCDAB89u; c->h[2] = 0x98BADCFEu;
    c->h[3] = 0x10325476u; c->h[4] = 0xC3D2E1F0u;
    c->total = 0; c->blen = 0;
}

WSC_FN void sha1_update(sha1_ctx *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    c->total += len;
    while (len > 0) {
        size_t take = 64 - c->blen;
        if (take > len) take = len;
        memcpy(c->blk + c->blen, p, take);
        c->blen += take; p += take; len -= take;
        if (c->blen == 64) { sha1_block(c, c->blk); c->blen = 0; }
    }
}

WSC_FN void sha1_final(sha1_ctx *c, unsigned char out[20])
{
    uint64_t bits = c->total * 8;
    unsigned char pad = 0x80;
    sha1_update(c, &pad, 1);
    unsigned char zero = 0;
    while (c->blen != 56) sha1_update(c, &zero, 1);
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha1_update(c, lenb, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->h[i];
    }
}

/* ------------------------------------------------------------------ */
/* base64 (standard alphabet, with padding)                             */
/* ------------------------------------------------------------------ */

/* Writes 4*ceil(n/3) chars plus a NUL into out; returns the length. */
WSC_FN size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = tbl[(v >> 18) & 63]; out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];  out[o++] = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        out[o++] = tbl[(v >> 18) & 63]; out[o++] = tbl[(v >> 12) & 63];
        out[o++] = (i + 1 < n) ? tbl[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

/* RFC 6455 section 4.2.2: base64(SHA-1(key + GUID)); out gets 28 chars + NUL. */
WSC_FN void ws_accept_for_key(const char *key, size_t keylen, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    sha1_ctx c;
    unsigned char dig[20];
    sha1_init(&c);
    sha1_update(&c, key, keylen);
    sha1_update(&c, guid, sizeof(guid) - 1);
    sha1_final(&c, dig);
    b64_encode(dig, 20, out);
}

/* ------------------------------------------------------------------ */
/* PRNG, clock                                                          */
/* ------------------------------------------------------------------ */

static uint64_t rng_state __attribute__((unused)) = 0x9E3779B97F4A7C15ull;

WSC_FN void rng_seed(uint64_t s)
{
    rng_state = s ? s : 0x9E3779B97F4A7C15ull;
}

WSC_FN inline uint64_t rng_next(void)  /* xorshift64* */
{
    uint64_t x = rng_state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

WSC_FN inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* growable byte buffer                                                 */
/* ------------------------------------------------------------------ */

typedef struct {
    unsigned char *p;
    size_t off;  /* first unconsumed byte */
    size_t len;  /* end of valid data */
    size_t cap;
} bbuf;

WSC_FN void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) { fprintf(stderr, "out of memory (%zu bytes)\n", n); exit(3); }
    return q;
}

/* Make room for at least `need` more bytes at p+len; returns write pointer. */
WSC_FN unsigned char *bbuf_reserve(bbuf *b, size_t need)
{
    if (b->off > 0 && b->off == b->len) { b->off = b->len = 0; }
    if (b->len + need <= b->cap) return b->p + b->len;
    if (b->off > 0) {  /* compact first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off; b->off = 0;
        if (b->len + need <= b->cap) return b->p + b->len;
    }
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + need) nc *= 2;
    b->p = xrealloc(b->p, nc);
    b->cap = nc;
    return b->p + b->len;
}

WSC_FN inline size_t bbuf_pending(const bbuf *b) { return b->len - b->off; }

/* ------------------------------------------------------------------ */
/* masking: dst[i] = src[i] ^ key[(i + phase) % 4]                      */
/* ------------------------------------------------------------------ */

WSC_FN void ws_mask_copy(unsigned char *dst, const unsigned char *src, size_t n,
                         const unsigned char key[4], size_t phase)
{
    unsigned char k8[8];
    for (int i = 0; i < 8; i++) k8[i] = key[(i + phase) & 3];
    uint64_t m;
    memcpy(&m, k8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++) dst[i] = src[i] ^ k8[i & 7];
}

/* Writes a frame header (FIN set) into h; returns its length (2..14). */
WSC_FN size_t ws_frame_header(unsigned char *h, int opcode, uint64_t len,
                              const unsigned char *maskkey /* NULL: unmasked */)
{
    size_t n = 0;
    unsigned char mbit = maskkey ? 0x80 : 0;
    h[n++] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        h[n++] = mbit | (unsigned char)len;
    } else if (len < 65536) {
        h[n++] = mbit | 126;
        h[n++] = (unsigned char)(len >> 8); h[n++] = (unsigned char)len;
    } else {
        h[n++] = mbit | 127;
        for (int i = 7; i >= 0; i--) h[n++] = (unsigned char)(len >> (8 * i));
    }
    if (maskkey) { memcpy(h + n, maskkey, 4); n += 4; }
    return n;
}

/* Case-insensitive search for header `name` in an HTTP head (NUL-terminated).
 * On success sets *val and *vlen to the trimmed value and returns 1. */
WSC_FN int http_find_header(const char *head, const char *name, const char **val, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");
    while (p) {
        p += 2;
        if (p[0] == '\r' || p[0] == 0) break;
        const char *eol = strstr(p, "\r\n");
        if (!eol) break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *e = eol;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
            *val = v; *vlen = (size_t)(e - v);
            return 1;
        }
        p = eol;
    }
    return 0;
}

#endif
