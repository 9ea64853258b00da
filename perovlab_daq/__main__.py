"""``python -m perovlab_daq``: the ``perovlab-daq`` command line, for when no script is on PATH."""

import sys

from perovlab_daq.cli import main

sys.exit(main())
