#ifndef CEARSHOT_SUPPORT_H
#define CEARSHOT_SUPPORT_H
#include <pthread.h>
#include <sys/eventfd.h>

/// pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module does not define.
int CEarshot_pthread_setname(pthread_t thread, const char *name);

/// y[i] = sqrt(x[i]) for i < n, with SSE `sqrtps` where available. Swift's `Float.squareRoot()` keeps
/// the libm errno path (a `sqrtf` call for negative inputs), which blocks vectorization.
/// For x ≥ 0 (a negative x gives NaN). Real-time safe.
void CEarshot_sqrt_f32(const float *x, float *y, long n);

#endif
