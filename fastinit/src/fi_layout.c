/* The store fence the executor calls once per thread after its pieces. */
#include "fi_layout.h"

void fi_store_fence(void)
{
#ifdef FI_X86
    _mm_sfence();
#endif
}
