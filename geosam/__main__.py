import sys

from geosam.cli import main

sys.exit(main())
