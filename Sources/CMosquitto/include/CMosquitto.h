#ifndef CMOSQUITTO_H
#define CMOSQUITTO_H
// Eclipse Mosquitto's client API for the `mqtt` sink. The binary does not link libmosquitto:
// mosquitto_lazy.c opens libmosquitto.so.1 when the sink starts, so a daemon without `mqtt` never maps it.
#include <mosquitto.h>

/// Opens libmosquitto.so.1 and resolves its functions (once; thread-safe). 1 when ready; 0 when it is
/// missing, with the reason (and the package to install) in `CEarshot_mosquitto_error()`. Call it before any
/// other mosquitto_* function.
int CEarshot_mosquitto_load(void);
const char *CEarshot_mosquitto_error(void);

#endif
