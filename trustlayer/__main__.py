"""``python -m trustlayer`` runs the ``trustlayer`` command."""

from trustlayer.cli import main

main()
