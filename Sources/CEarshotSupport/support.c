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
