"""``python -m perovlab_daq.cli``: the ``perovlab-daq`` command line."""

import sys

from perovlab_daq.cli import main

sys.exit(main())
