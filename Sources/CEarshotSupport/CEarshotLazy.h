#ifndef CEARSHOT_LAZY_H
#define CEARSHOT_LAZY_H
// (Private header of CEarshotSupport, included by CCairo and CMosquitto by its relative path.)
// Trampolines for a library opened on first use (see CEarshot_lazy_library in CEarshotSupport.h). A C file
// defines `FUNCTIONS(XR, XV)` listing each function as (return type, name, (parameters), (arguments)) — XR
// for functions that return a value, XV for void ones — then `CEARSHOT_LAZY_LIBRARY(FUNCTIONS, soname,
// package, purpose)`, which defines the symbol table, the slots, `static CEarshot_lazy_library lazy_lib` and
// one hidden function per entry with the library's own name and prototype that calls through its slot.
#include "include/CEarshotSupport.h"

#define CEARSHOT_LAZY_NAME(ret, name, params, args) #name,
#define CEARSHOT_LAZY_INDEX(ret, name, params, args) CEARSHOT_LAZY_IDX_##name,
#define CEARSHOT_LAZY_ENSURE() \
    if (__builtin_expect(__atomic_load_n(&lazy_lib.loaded, __ATOMIC_ACQUIRE) != 1, 0)) CEarshot_lazy_require(&lazy_lib)
#define CEARSHOT_LAZY_R(ret, name, params, args) \
    __attribute__((visibility("hidden"))) ret name params { \
        CEARSHOT_LAZY_ENSURE(); \
        return ((ret (*) params) lazy_slots[CEARSHOT_LAZY_IDX_##name]) args; \
    }
#define CEARSHOT_LAZY_V(ret, name, params, args) \
    __attribute__((visibility("hidden"))) void name params { \
        CEARSHOT_LAZY_ENSURE(); \
        ((void (*) params) lazy_slots[CEARSHOT_LAZY_IDX_##name]) args; \
    }

#define CEARSHOT_LAZY_LIBRARY(FUNCTIONS, soname_, package_, purpose_) \
    enum { FUNCTIONS(CEARSHOT_LAZY_INDEX, CEARSHOT_LAZY_INDEX) CEARSHOT_LAZY_COUNT }; \
    static const char *const lazy_symbols[] = { FUNCTIONS(CEARSHOT_LAZY_NAME, CEARSHOT_LAZY_NAME) }; \
    static void *lazy_slots[CEARSHOT_LAZY_COUNT]; \
    static CEarshot_lazy_library lazy_lib = { \
        .soname = soname_, .package = package_, .purpose = purpose_, \
        .symbols = lazy_symbols, .slots = lazy_slots, .count = CEARSHOT_LAZY_COUNT, .loaded = 0 }; \
    FUNCTIONS(CEARSHOT_LAZY_R, CEARSHOT_LAZY_V)

#endif
