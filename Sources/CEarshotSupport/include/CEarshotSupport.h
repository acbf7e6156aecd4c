#ifndef CEARSHOT_SUPPORT_H
#define CEARSHOT_SUPPORT_H
#include <pthread.h>
#include <sys/eventfd.h>

/// pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module does not define.
int CEarshot_pthread_setname(pthread_t thread, const char *name);

#endif
