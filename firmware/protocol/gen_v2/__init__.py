"""The builders of protocol 2's golden vectors, one module per vector file.

:mod:`.bus` records exchanges between a host and reference boards on one bus; the others
build ``frames.json``, ``rules.json``, ``timing.json``, ``commands.json`` and
``update.json``. ``../gen_vectors_v2.py`` writes them.
"""
