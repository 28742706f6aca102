"""The command line and the demo: they parse arguments, call the library and print its typed results."""
