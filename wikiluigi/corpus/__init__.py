"""Stage 3, corpus: the training set of a manifest set (validation pages, text and JSON Lines) and the
vocabulary that turns it into tokens."""
