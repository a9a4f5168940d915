"""What files are written with, without torch: the command line and the downloads need it too."""
import os

UMASK = os.umask(0o022)  # the process's umask (reading it means setting it), restored on the next line
os.umask(UMASK)
