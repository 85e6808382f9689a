"""``facebatch release``: every gate into one folder (run), what it writes (manifest), re-checking it later (check)."""
