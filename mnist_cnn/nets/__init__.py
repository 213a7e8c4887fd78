"""The network, described once (:mod:`.spec`), its random streams (:mod:`.mrg`), and the
engines that compute it (:mod:`.engines`)."""
