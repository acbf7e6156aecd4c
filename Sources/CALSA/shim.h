#include <alsa/asoundlib.h>

/// `snd_lib_error_set_handler` takes a variadic function pointer, which Swift cannot spell: pass it as a
/// `void *` (EarshotCapture passes `CEarshot_alsa_error_handler()`; NULL restores libasound's default).
static inline int CEarshotALSA_set_error_handler(void *handler) {
    return snd_lib_error_set_handler((snd_lib_error_handler_t)handler);
}
