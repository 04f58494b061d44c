from pconv.cli import main

raise SystemExit(main())
