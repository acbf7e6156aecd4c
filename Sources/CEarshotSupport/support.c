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

void CEarshot_real_fft_power(const float *z, const float *c, const float *s, float *power, long m) {
    // k = 0 and k = m: Z[0] = E[0] + O[0] with E, O real
    power[0] = (z[0] + z[1]) * (z[0] + z[1]);
    power[m] = (z[0] - z[1]) * (z[0] - z[1]);
    // Bins k and m − k share their terms: with T = e^(−iπk/m)·O[k], X[k] = E[k] + T and
    // X[m − k] = conj(E[k] − T), so one pass over k ≤ m/2 writes both.
    long k = 1;
#if defined(__SSE__)
    const __m128 half = _mm_set1_ps(0.5f);
    // bins k … k+3 and m−k−3 … m−k (loaded from m−k−3 upwards and reversed), while the two do not meet
    for (; 2 * k + 6 < m; k += 4) {
        __m128 a0 = _mm_loadu_ps(z + 2 * k), a1 = _mm_loadu_ps(z + 2 * k + 4);
        __m128 ar = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128 ai = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
        long j = m - k - 3;
        __m128 b0 = _mm_loadu_ps(z + 2 * j), b1 = _mm_loadu_ps(z + 2 * j + 4);
        __m128 br = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
        __m128 bi = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
        br = _mm_shuffle_ps(br, br, _MM_SHUFFLE(0, 1, 2, 3));
        bi = _mm_shuffle_ps(bi, bi, _MM_SHUFFLE(0, 1, 2, 3));
        __m128 er = _mm_mul_ps(_mm_add_ps(ar, br), half), ei = _mm_mul_ps(_mm_sub_ps(ai, bi), half);
        __m128 orr = _mm_mul_ps(_mm_add_ps(ai, bi), half), oi = _mm_mul_ps(_mm_sub_ps(br, ar), half);
        __m128 cc = _mm_loadu_ps(c + k), ss = _mm_loadu_ps(s + k);
        __m128 tr = _mm_add_ps(_mm_mul_ps(cc, orr), _mm_mul_ps(ss, oi));
        __m128 ti = _mm_sub_ps(_mm_mul_ps(cc, oi), _mm_mul_ps(ss, orr));
        __m128 pr = _mm_add_ps(er, tr), pi = _mm_add_ps(ei, ti);
        __m128 qr = _mm_sub_ps(er, tr), qi = _mm_sub_ps(ei, ti);
        _mm_storeu_ps(power + k, _mm_add_ps(_mm_mul_ps(pr, pr), _mm_mul_ps(pi, pi)));
        __m128 q = _mm_add_ps(_mm_mul_ps(qr, qr), _mm_mul_ps(qi, qi));
        _mm_storeu_ps(power + j, _mm_shuffle_ps(q, q, _MM_SHUFFLE(0, 1, 2, 3)));
    }
#endif
    for (; k <= m - k; k++) {
        long j = m - k;
        float ar = z[2 * k], ai = z[2 * k + 1], br = z[2 * j], bi = z[2 * j + 1];
        float er = (ar + br) * 0.5f, ei = (ai - bi) * 0.5f;
        float orr = (ai + bi) * 0.5f, oi = (br - ar) * 0.5f;
        float tr = c[k] * orr + s[k] * oi;
        float ti = c[k] * oi - s[k] * orr;
        power[j] = (er - tr) * (er - tr) + (ei - ti) * (ei - ti);
        power[k] = (er + tr) * (er + tr) + (ei + ti) * (ei + ti);
    }
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

#include <sys/epoll.h>

int CEarshot_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int CEarshot_epoll_ctl(int epfd, int op, int fd, unsigned int events) {
    struct epoll_event ev = {.events = events, .data = {.fd = fd}};
    return epoll_ctl(epfd, op, fd, &ev);
}

int CEarshot_epoll_wait(int epfd, int *fds, unsigned int *events, int max, int timeout_ms) {
    struct epoll_event ev[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, ev, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = ev[i].data.fd;
        events[i] = ev[i].events;
    }
    return n;
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

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;

int CEarshot_lazy_load(CEarshot_lazy_library *lib) {
    int state = __atomic_load_n(&lib->loaded, __ATOMIC_ACQUIRE);
    if (state != 0) return state == 1;
    pthread_mutex_lock(&lazy_lock);
    if (lib->loaded == 0) {
        int ok = 0;
        void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *why = dlerror();
            snprintf(lib->error, sizeof lib->error, "cannot load %s (%s): %s needs it; install the %s package",
                     lib->soname, why ? why : "not found", lib->purpose, lib->package);
        } else {
            ok = 1;
            for (unsigned long i = 0; i < lib->count; i++) {
                lib->slots[i] = dlsym(h, lib->symbols[i]);
                if (!lib->slots[i]) {
                    snprintf(lib->error, sizeof lib->error, "%s has no %s (too old?): %s needs a newer %s package",
                             lib->soname, lib->symbols[i], lib->purpose, lib->package);
                    ok = 0;
                    break;
                }
            }
            if (!ok) dlclose(h);  // otherwise stays open for the life of the process
        }
        __atomic_store_n(&lib->loaded, ok ? 1 : -1, __ATOMIC_RELEASE);
    }
    int loaded = lib->loaded;
    pthread_mutex_unlock(&lazy_lock);
    return loaded == 1;
}

const char *CEarshot_lazy_error(CEarshot_lazy_library *lib) {
    return __atomic_load_n(&lib->loaded, __ATOMIC_ACQUIRE) == -1 ? lib->error : "";
}

void CEarshot_lazy_require(CEarshot_lazy_library *lib) {
    if (CEarshot_lazy_load(lib)) return;
    fprintf(stderr, "earshot: %s\n", lib->error);
    abort();
}
