import sys

from hostctl.cli import main

sys.exit(main())
