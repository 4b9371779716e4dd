"""Speed comparisons of dlcourse with its peers (run `python -m benchmarks`).

Every library runs single-threaded: numpy's BLAS and PyTorch's thread pools,
interleaved call by call on a 2-core machine, otherwise spin against each
other and the timings measure the contention instead of the libraries.
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
