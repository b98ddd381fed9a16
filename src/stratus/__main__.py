import sys

from stratus.cli import main

sys.exit(main())
