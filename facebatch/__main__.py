from facebatch.cli import entry

entry()
