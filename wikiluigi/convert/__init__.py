"""Stage 2, convert: a page's wikitext cleaned up, read and filtered into Markdown under processed/, each page
under its time and memory budget; the end-of-run summary of a manifest."""
