"""The Luigi tasks: parameters, requires() and output() over the plain functions of the package."""
from wikiluigi.tasks.model import BaseModel, Generate, Train, TrainingSet
from wikiluigi.tasks.process import Convert, ProcessPage, ProcessPages, Wikipedia
from wikiluigi.tasks.refresh import Refresh
from wikiluigi.tasks.scrape import DeriveManifest, FetchPage, FetchPages, Scrape, SplitDump

__all__ = ["BaseModel", "Convert", "DeriveManifest", "FetchPage", "FetchPages", "Generate", "ProcessPage",
           "ProcessPages", "Refresh", "Scrape", "SplitDump", "Train", "TrainingSet", "Wikipedia"]
