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

/// The uid of the process at the other end of a connected Unix socket (`SO_PEERCRED`, which needs
/// _GNU_SOURCE for `struct ucred`). Returns 0 and sets *uid, or -1 with errno.
int CEarshot_peer_uid(int fd, unsigned int *uid);

/// glibc `malloc_trim(0)` (not in Swift's Glibc module): returns freed heap to the system.
int CEarshot_malloc_trim(void);

#endif
