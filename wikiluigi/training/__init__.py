"""Stage 4, training: the loop every backend shares, the run folder, its report, and samples."""
