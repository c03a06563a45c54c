"""Lambda entry points: thin, one call into the domain each."""

import os

# The functions use no pydantic plugin: skip pydantic's plugin discovery, which reads the entry
# points of every installed distribution when the first model is built (a few ms of cold start).
# PYDANTIC_DISABLE_PLUGINS is pydantic's documented switch; set it in the function's environment
# (e.g. to "" for all plugins) to have plugins again. Set here, before any handler builds a model.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
