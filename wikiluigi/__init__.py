"""wikiluigi: MediaWiki wikis -> Markdown -> a GPT-2 model and its samples, as Luigi tasks.

`luigi --module wikiluigi <Task>` imports this package, which loads the shipped luigi.cfg defaults
under the user's own and registers every task. Nothing heavy (TensorFlow, pandoc) is imported here.
"""
from wikiluigi.config import load_package_defaults

load_package_defaults()

from wikiluigi.tasks import *  # noqa: E402,F401,F403  (registers the tasks with Luigi)
