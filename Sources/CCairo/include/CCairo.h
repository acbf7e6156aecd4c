#ifndef CCAIRO_H
#define CCAIRO_H
// Cairo's API for `earshot spectrogram`. The binary does not link libcairo: cairo_lazy.c opens libcairo.so.2
// on first use, so the daemon never maps Cairo and its dependencies.
#include <cairo/cairo.h>

/// Opens libcairo.so.2 and resolves the functions Earshot calls (once; thread-safe). 1 when ready; 0 when
/// it is missing, with the reason (and the package to install) in `CEarshot_cairo_error()`. Call it before
/// any other cairo_* function.
int CEarshot_cairo_load(void);
const char *CEarshot_cairo_error(void);

#endif
