from synthvu_core.cli import main

raise SystemExit(main())
