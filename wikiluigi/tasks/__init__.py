"""The Luigi tasks: parameters, requires() and output() over the plain functions of the package."""
from wikiluigi.tasks.process import Convert, ProcessPage, ProcessPages, Wikipedia
from wikiluigi.tasks.scrape import DeriveManifest, FetchPage, FetchPages, Scrape

__all__ = ["Convert", "DeriveManifest", "FetchPage", "FetchPages", "ProcessPage", "ProcessPages", "Scrape",
           "Wikipedia"]
