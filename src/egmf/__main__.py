"""``python -m egmf ...`` (and ``accelerate launch -m egmf train ...``) runs the ``egmf`` command."""

from egmf.cli.main import main

main()
