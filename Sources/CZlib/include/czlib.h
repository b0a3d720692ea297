#ifndef BITSWITCH_CZLIB_H
#define BITSWITCH_CZLIB_H
#include <stddef.h>
#include <stdint.h>

/// Decompresses a gzip (or zlib) stream, including several concatenated gzip members, into a malloc'd buffer.
/// Returns 0 on success (*out owned by the caller, free() it; *out_len bytes), or -1 with a message in err.
/// max_out bounds the decompressed size (a corrupt or hostile file cannot make it allocate without limit).
int bs_gunzip(const uint8_t *src, size_t src_len, size_t max_out, uint8_t **out, size_t *out_len,
              char *err, size_t err_len);

#endif
