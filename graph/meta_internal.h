/* Between graph/meta.c and the model file code (graph/modelio_save.c, graph/modelio_read.c): not part of the public interface. */
#ifndef UR_META_INTERNAL_H
#define UR_META_INTERNAL_H

#include "graph/ur_train.h"

/* 1 if key has 1 to UR_META_KEY_MAX bytes. */
int ur_meta_key_ok(const char *key);
/* A record as it is stored in a file: key, type and the value's bytes (a number as 8
 * little-endian bytes in num, which value then points to: do not copy the struct). */
typedef struct ur_meta_record {
    const char *key;
    ur_meta_type type;
    const unsigned char *value;
    size_t len;
    unsigned char num[8];
} ur_meta_record;
/* Fills r with record k. 0, or -1 when k is out of range. */
int ur_meta_raw(const ur_meta *m, int k, ur_meta_record *r);
/* Exchanges the contents of a and b. */
void ur_meta_swap(ur_meta *a, ur_meta *b);

#endif
