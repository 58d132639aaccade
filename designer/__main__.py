"""``python -m designer``: the ``mpdesign`` command (as ``python -m designer.cli``)."""

from designer.cli import main

main()
