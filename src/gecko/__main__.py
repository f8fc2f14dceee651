import sys

from gecko.cli import main

sys.exit(main())
