from buildmatrix._entry import main

raise SystemExit(main())
