/*
 * The ISA macros that GCC's target pragma defines for the AVX-512 paths, for the
 * builds that set their instruction set another way: Clang's target attribute, which
 * defines none, and the emulated AVX-512 (fi_emulate.h). The kernels choose their
 * intrinsic branches by them; fi_path_avx512.inc adds __AVX512VBMI__ and
 * __AVX512BF16__ for the paths that have them.
 */
#ifndef FI_AVX512_MACROS_H
#define FI_AVX512_MACROS_H

#define __AVX__ 1
#define __AVX2__ 1
#define __F16C__ 1
#define __AVX512F__ 1
#define __AVX512DQ__ 1
#define __AVX512BW__ 1
#define __AVX512VL__ 1

#endif /* FI_AVX512_MACROS_H */
