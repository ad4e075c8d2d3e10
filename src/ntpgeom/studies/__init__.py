"""Studies built from many runs: parameter grids (:mod:`.grid`) and the linear model
(:mod:`.linear`)."""
