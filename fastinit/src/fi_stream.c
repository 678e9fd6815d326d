/* Cursors: allocated by the executor, one per thread, bound to one fill at a time. */
#include "fi_stream.h"

const int64_t fi_block_elements = FI_BLOCK;

fi_cursor *fi_cursor_new(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, sizeof(fi_cursor)) != 0) return NULL;
    ((fi_cursor *)p)->valid = 0;
    ((fi_cursor *)p)->job = -1;
    return (fi_cursor *)p;
}

void fi_cursor_free(fi_cursor *c) { free(c); }

/* Gives the cursor to fill number `job` of the executor's pass. */
void fi_cursor_bind(fi_cursor *c, int64_t job)
{
    if (c->job != job) {
        c->job = job;
        c->valid = 0;
    }
}
