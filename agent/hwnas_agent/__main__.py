import sys

from hwnas_agent.cli import main

sys.exit(main())
