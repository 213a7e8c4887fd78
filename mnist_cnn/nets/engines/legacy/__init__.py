"""The ``lasagne`` engine: the real Theano 0.8.2 and Lasagne 0.1, run in a legacy
interpreter (:mod:`.environment` builds it; :mod:`.engine` drives :mod:`.program` there)."""
