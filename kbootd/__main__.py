from kbootd.cli.main import main

raise SystemExit(main())
