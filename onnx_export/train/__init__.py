"""Training the compact default compressor (LLMLingua-2 recipe, needs the ``[train]`` extra)."""
