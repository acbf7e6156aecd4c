#ifndef CEARSHOT_SUPPORT_H
#define CEARSHOT_SUPPORT_H
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>

/// pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module does not define.
int CEarshot_pthread_setname(pthread_t thread, const char *name);

/// y[i] = sqrt(x[i]) for i < n, with SSE `sqrtps` where available. Swift's `Float.squareRoot()` keeps
/// the libm errno path (a `sqrtf` call for negative inputs), which blocks vectorization.
/// For x ≥ 0 (a negative x gives NaN). Real-time safe.
void CEarshot_sqrt_f32(const float *x, float *y, long n);

/// Power spectrum of a real sequence x[0 ..< 2m] from the complex FFT of length m of its sample pairs,
/// z[n] = x[2n] + i·x[2n+1] (`z`: m interleaved (re, im) floats pairs): for k = 0 … m,
/// X[k] = E[k] + e^(−iπk/m)·O[k] with E[k] = (Z[k] + conj Z[m−k]) / 2, O[k] = (Z[k] − conj Z[m−k]) / 2i,
/// and power[k] = |X[k]|² (m + 1 values). `c[k]`, `s[k]` = cos, sin(πk/m) for k < m. m ≥ 1. SSE where
/// available. Real-time safe.
void CEarshot_real_fft_power(const float *z, const float *c, const float *s, float *power, long m);

/// The uid of the process at the other end of a connected Unix socket (`SO_PEERCRED`, which needs
/// _GNU_SOURCE for `struct ucred`). Returns 0 and sets *uid, or -1 with errno.
int CEarshot_peer_uid(int fd, unsigned int *uid);

/// glibc `malloc_trim(0)` (not in Swift's Glibc module): returns freed heap to the system.
int CEarshot_malloc_trim(void);

/// epoll without Swift importing `struct epoll_event` (packed on x86-64, with a union): the data of every
/// registration is the descriptor itself.
/// `CEarshot_epoll_ctl`: `op` is EPOLL_CTL_ADD/MOD/DEL, `events` EPOLLIN | EPOLLOUT | EPOLLET…; 0 or -1 and errno.
int CEarshot_epoll_create(void);
int CEarshot_epoll_ctl(int epfd, int op, int fd, unsigned int events);
/// `epoll_wait` for at most `max` (≤ 64) events: their descriptors in `fds`, their events in `events`.
/// Returns the count, or -1 and errno.
int CEarshot_epoll_wait(int epfd, int *fds, unsigned int *events, int max, int timeout_ms);

/// memfd_create(name, MFD_CLOEXEC) (needs _GNU_SOURCE): a memory-backed regular file. -1 and errno on failure.
int CEarshot_memfd_create(const char *name);

/// Receives one formatted libasound error line (see `CEarshot_alsa_error_handler`).
typedef void (*CEarshot_alsa_error_sink)(const char *file, int line, const char *function, int err,
                                         const char *message);

/// Sets (or clears with NULL) where `CEarshot_alsa_error_handler` delivers its lines.
void CEarshot_alsa_set_error_sink(CEarshot_alsa_error_sink sink);

/// A `snd_lib_error_handler_t` (variadic, so Swift cannot write one): formats the message with
/// `vsnprintf` into a 512-byte stack buffer (truncated, no allocation) and passes it to the sink.
/// Returned as `void *` for `snd_lib_error_set_handler`, which EarshotCapture calls.
void *CEarshot_alsa_error_handler(void);

/// A shared library opened on first use with `dlopen` (Cairo for `earshot spectrogram`, libmosquitto for the
/// `mqtt` sink), so that the daemon does not map and relocate them, and their dependencies, at every start.
/// `CCairo` and `CMosquitto` define the library's functions the Swift code calls as trampolines through
/// `slots` (hidden symbols: never exported, never interposed).
typedef struct CEarshot_lazy_library {
    const char *soname;          ///< e.g. "libcairo.so.2"
    const char *package;         ///< the Debian package that ships it, for the error message
    const char *purpose;         ///< what needs it, for the error message
    const char *const *symbols;  ///< `count` function names
    void **slots;                ///< `count` addresses, filled by `CEarshot_lazy_load`
    unsigned long count;
    int loaded;                  ///< 1 once every symbol is resolved (atomic), -1 when loading failed
    char error[512];
} CEarshot_lazy_library;

/// Opens the library and resolves every symbol, once (thread-safe). Returns 1 when loaded, 0 when the library
/// or one of its functions is missing; `CEarshot_lazy_error` then says which, and what to install.
int CEarshot_lazy_load(CEarshot_lazy_library *lib);

/// The reason `CEarshot_lazy_load` failed ("" when it did not).
const char *CEarshot_lazy_error(CEarshot_lazy_library *lib);

/// Called by a trampoline: loads the library if needed; when it cannot be loaded prints the reason and
/// aborts (callers check `…_load()` before the first call, so this is reached only by a missing check).
void CEarshot_lazy_require(CEarshot_lazy_library *lib);

#endif
