import sys

from tracec_runtime.serve.main import main

sys.exit(main())
