/* The baseline path: every kernel compiled for the build's default instruction set
 * (SSE2 on x86-64), which every CPU that imports fastinit runs. */
#define FI_PATH_SUFFIX baseline
#include "fi_path.inc"
