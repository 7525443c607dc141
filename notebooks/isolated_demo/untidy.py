"""A module that changes its process: environment, sys.path, working directory, a handler."""

import os
import signal
import sys

os.environ["UNTIDY"] = "1"
sys.path.append("/somewhere/else")
os.chdir(os.path.dirname(__file__))
signal.signal(signal.SIGINT, signal.SIG_IGN)  # in a kernel this would disable interrupts
print("changed the environment, sys.path, the working directory and SIGINT")
