from buildmatrix.cli import main

raise SystemExit(main())
