#define _GNU_SOURCE
#include <pthread.h>
#include <malloc.h>
#include <sys/socket.h>
#include "CEarshotSupport.h"

int CEarshot_pthread_setname(pthread_t thread, const char *name) {
    return pthread_setname_np(thread, name);
}

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

void CEarshot_sqrt_f32(const float *x, float *y, long n) {
    long i = 0;
#if defined(__SSE__)
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(y + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] = __builtin_sqrtf(x[i]);
}

int CEarshot_peer_uid(int fd, unsigned int *uid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *uid = cred.uid;
    return 0;
}

int CEarshot_malloc_trim(void) {
    return malloc_trim(0);
}

#include <sys/mman.h>

int CEarshot_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

#include <stdarg.h>
#include <stdio.h>

static CEarshot_alsa_error_sink alsa_error_sink;

void CEarshot_alsa_set_error_sink(CEarshot_alsa_error_sink sink) {
    __atomic_store_n(&alsa_error_sink, sink, __ATOMIC_RELEASE);
}

static void alsa_error_handler(const char *file, int line, const char *function, int err, const char *fmt, ...) {
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt ? fmt : "", ap);
    va_end(ap);
    CEarshot_alsa_error_sink sink = __atomic_load_n(&alsa_error_sink, __ATOMIC_ACQUIRE);
    if (sink) sink(file ? file : "", line, function ? function : "", err, message);
}

void *CEarshot_alsa_error_handler(void) { return (void *)alsa_error_handler; }
