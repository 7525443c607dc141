"""A run that takes too long: `%runmod --subprocess --timeout 1 isolated_demo.slow`."""

import time

print("working...", flush=True)
time.sleep(600)
