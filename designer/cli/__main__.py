"""``python -m designer.cli``: what ``torchrun -m designer.cli`` runs."""

from designer.cli import main

main()
