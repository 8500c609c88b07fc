from cappuccino_daemon.cli import main

raise SystemExit(main())
