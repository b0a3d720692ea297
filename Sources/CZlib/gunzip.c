#include "czlib.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int bs_gunzip(const uint8_t *src, size_t src_len, size_t max_out, uint8_t **out, size_t *out_len,
              char *err, size_t err_len) {
    *out = NULL;
    *out_len = 0;
    z_stream s;
    memset(&s, 0, sizeof s);
    /* 15 + 32: largest window, detect the gzip or zlib header automatically. */
    if (inflateInit2(&s, 15 + 32) != Z_OK) {
        snprintf(err, err_len, "zlib could not start: %s", s.msg ? s.msg : "inflateInit2 failed");
        return -1;
    }
    size_t cap = src_len * 4 + 1024, len = 0;
    if (cap > max_out && max_out > 0) cap = max_out;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        inflateEnd(&s);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    size_t consumed = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= max_out) {
                snprintf(err, err_len, "decompresses to more than %zu bytes", max_out);
                free(buf);
                inflateEnd(&s);
                return -1;
            }
            size_t next = cap * 2 > max_out ? max_out : cap * 2;
            uint8_t *grown = realloc(buf, next);
            if (!grown) {
                snprintf(err, err_len, "out of memory");
                free(buf);
                inflateEnd(&s);
                return -1;
            }
            buf = grown;
            cap = next;
        }
        size_t in_chunk = src_len - consumed > 0x40000000u ? 0x40000000u : src_len - consumed;
        size_t out_chunk = cap - len > 0x40000000u ? 0x40000000u : cap - len;
        s.next_in = (Bytef *)(src + consumed);
        s.avail_in = (uInt)in_chunk;
        s.next_out = buf + len;
        s.avail_out = (uInt)out_chunk;
        int rc = inflate(&s, Z_NO_FLUSH);
        consumed += in_chunk - s.avail_in;
        len += out_chunk - s.avail_out;
        if (rc == Z_STREAM_END) {
            /* Another gzip member may follow (as `cat a.gz b.gz` makes); trailing zero padding is ignored. */
            while (consumed < src_len && src[consumed] == 0) consumed++;
            if (consumed >= src_len) break;
            if (inflateReset(&s) != Z_OK) {
                snprintf(err, err_len, "zlib could not restart after a gzip member");
                free(buf);
                inflateEnd(&s);
                return -1;
            }
            continue;
        }
        if (rc == Z_BUF_ERROR && consumed >= src_len && s.avail_out > 0) {
            snprintf(err, err_len, "truncated gzip data (the stream ends after %zu compressed bytes)", src_len);
            free(buf);
            inflateEnd(&s);
            return -1;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            snprintf(err, err_len, "corrupt gzip data: %s", s.msg ? s.msg : "inflate failed");
            free(buf);
            inflateEnd(&s);
            return -1;
        }
    }
    inflateEnd(&s);
    *out = buf;
    *out_len = len;
    return 0;
}
