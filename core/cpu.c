/* CPU features for the SIMD kernels' dispatch, from CPUID and XGETBV, with
 * environment switches that force the portable paths (so CI can test them on
 * any machine). It must never report a feature whose registers the OS does
 * not save, and never depend on compiler built-ins a compiler may lack. */
#include "tracemark/core.h"

#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

enum { BIT_AVX2, BIT_FMA, BIT_F16C, BIT_AVXVNNI, BIT_AVX512F, BIT_AVX512BW, BIT_AVX512VL, BIT_AVX512VNNI };

static unsigned detect(void) {
    unsigned a, b, c, d, max = __get_cpuid_max(0, NULL), bits = 0;
    if (max < 1) return 0;
    __cpuid(1, a, b, c, d);
    bool osxsave = c >> 27 & 1, avx = c >> 28 & 1, fma = c >> 12 & 1, f16c = c >> 29 & 1;
    if (!osxsave || !avx) return 0;
    uint64_t xcr0 = read_xcr0();
    bool ymm = (xcr0 & 0x6) == 0x6, zmm = ymm && (xcr0 & 0xE0) == 0xE0;
    if (!ymm) return 0;
    if (fma) bits |= 1u << BIT_FMA;
    if (f16c) bits |= 1u << BIT_F16C;
    if (max < 7) return bits;
    __cpuid_count(7, 0, a, b, c, d);
    if (b >> 5 & 1) bits |= 1u << BIT_AVX2;
    if (zmm) {
        if (b >> 16 & 1) bits |= 1u << BIT_AVX512F;
        if (b >> 30 & 1) bits |= 1u << BIT_AVX512BW;
        if (b >> 31 & 1) bits |= 1u << BIT_AVX512VL;
        if (c >> 11 & 1) bits |= 1u << BIT_AVX512VNNI;
    }
    unsigned max7 = a;
    if (max7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if (a >> 4 & 1) bits |= 1u << BIT_AVXVNNI;
    }
    return bits;
}

static unsigned allowed(void) {
    /* Read once: the dispatch must not change under a running program. */
    static int cached = -1;
    if (cached >= 0) return (unsigned)cached;
    unsigned bits = detect();
    if (getenv("TM_NO_AVX2")) bits = 0;
    if (getenv("TM_NO_AVX512"))
        bits &= ~(1u << BIT_AVX512F | 1u << BIT_AVX512BW | 1u << BIT_AVX512VL | 1u << BIT_AVX512VNNI);
    if (getenv("TM_NO_VNNI")) bits &= ~(1u << BIT_AVXVNNI | 1u << BIT_AVX512VNNI);
    cached = (int)bits;
    return bits;
}

bool tm_cpu_has(tm_cpu_feature feature) {
    static const int bit[] = {
        [TM_CPU_AVX2] = BIT_AVX2,       [TM_CPU_FMA] = BIT_FMA,           [TM_CPU_F16C] = BIT_F16C,
        [TM_CPU_AVXVNNI] = BIT_AVXVNNI, [TM_CPU_AVX512F] = BIT_AVX512F,   [TM_CPU_AVX512BW] = BIT_AVX512BW,
        [TM_CPU_AVX512VL] = BIT_AVX512VL, [TM_CPU_AVX512VNNI] = BIT_AVX512VNNI,
    };
    if ((unsigned)feature >= sizeof bit / sizeof bit[0]) return false;
    return allowed() >> bit[feature] & 1;
}
#else
bool tm_cpu_has(tm_cpu_feature feature) {
    (void)feature;
    return false;
}
#endif

const char *tm_cpu_kernel_path(void) {
    if (tm_cpu_has(TM_CPU_AVX512F)) return "avx512";
    if (tm_cpu_has(TM_CPU_AVX2) && tm_cpu_has(TM_CPU_FMA)) return "avx2";
    return "portable";
}
