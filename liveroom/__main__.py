import sys

from liveroom.cli import main

sys.exit(main())
