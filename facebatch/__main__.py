import sys

from facebatch.cli import main

sys.exit(main())
