"""Ways for a process to die: `%runmod --subprocess isolated_demo.crash -- segfault`."""

import ctypes
import os
import sys

how = sys.argv[1]
print(f"about to {how}", flush=True)
if how == "segfault":
    ctypes.string_at(0)  # reads address 0: SIGSEGV, as a broken C extension would
elif how == "exit":
    os._exit(7)  # ends the process at once: no cleanup, no result
else:
    raise ValueError(f"unknown way to fail: {how!r}")
