from pconv.apps.cli import main

raise SystemExit(main())
