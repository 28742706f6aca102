"""The ``hwnas`` subcommands: each module holds its commands' parsers (``parser_NAME``) beside what they run
(``cmd_NAME``); hwnas.app.cli puts them together."""
