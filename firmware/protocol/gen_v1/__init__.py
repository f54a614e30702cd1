"""The builders of protocol 1's golden vectors (``vectors/*.json``), one module per file:
:mod:`.frames`, :mod:`.rules`, :mod:`.commands`; ``../gen_vectors.py`` writes them."""
