# OpenMP shim: the flag and the runtime calls cdropout needs, with serial stand-ins when
# the extension is built without OpenMP (no compiler support, or CDROPOUT_NO_OPENMP=1).
# Cython's own `openmp` module would #include <omp.h> unconditionally.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define CDR_OPENMP 1
    #else
    #define CDR_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    #endif
    """
    bint CDR_OPENMP
    int omp_get_max_threads() noexcept nogil
