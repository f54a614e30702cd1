"""Command groups of the ``hostctl`` command line, one module each."""
