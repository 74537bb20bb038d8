"""Stage 1, sources: manifests, the derived manifest (the category walk), the API client, dumps and their
split, and the fetch stage that writes each page's wikitext under raw/."""
