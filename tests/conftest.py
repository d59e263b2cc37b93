import os

# GPU kernels are exercised on the CPU through numba's CUDA simulator (CI has no GPU).
# It must be chosen before numba is imported; an explicit NUMBA_ENABLE_CUDASIM=0 wins.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
