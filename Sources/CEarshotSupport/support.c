#define _GNU_SOURCE
#include <pthread.h>
#include "CEarshotSupport.h"

int CEarshot_pthread_setname(pthread_t thread, const char *name) {
    return pthread_setname_np(thread, name);
}
