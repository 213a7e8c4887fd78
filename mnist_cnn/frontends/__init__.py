"""What people use: the command line (:mod:`.cli`), the drawing page (:mod:`.drawing_page`),
the figures (:mod:`.figures`) and the benchmark (:mod:`.bench`)."""
