"""What every layer uses: errors, JSON and atomic file I/O, the plugin registry, rank and error metrics. Imports nothing else of hwnas."""
