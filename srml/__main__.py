import os
import sys

# `python -m srml` puts the current directory first on sys.path: a numpy.py or tqdm.py lying
# there must not shadow the real ones (user env modules are found by srml.task, after them).
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from srml.cli import main  # noqa: E402

sys.exit(main())
