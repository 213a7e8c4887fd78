"""Training a network: the run's settings (:mod:`.settings`), the epoch loop
(:mod:`.loop`), its checkpoints (:mod:`.checkpoint`) and the augmentation
(:mod:`.augment`)."""
