import sys

from societal.cli import main

sys.exit(main())
