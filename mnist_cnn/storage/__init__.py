"""Files and runs: safe reading and atomic writing (:mod:`.files`), the MNIST files
(:mod:`.mnist_data`), weights files (:mod:`.weights_file`) and run folders (:mod:`.runs`)."""
