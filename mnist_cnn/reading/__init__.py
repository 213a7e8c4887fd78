"""Reading users' images: a photo, scan or drawing made to look like MNIST
(:mod:`.images`, :mod:`.ink`, :mod:`.mnist_format`), a number cut into digits
(:mod:`.segmentation`, :mod:`.numbers`), and the network's answers (:mod:`.predictions`)."""
